/**
 * Property test of the chip as a state machine: random sequences of SM messages (right and
 * wrong SM, fresh and stale counters, re-deliveries, handovers, cancels, profile commands,
 * garbage) against the PROTOCOL.md invariants: refusals change nothing, every signed answer
 * verifies under the chip certificate, the assignment moves only by a HandoverResult, counters
 * only grow within an assignment, repeats get identical bytes, and the saved state is the state.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, test } from 'node:test';
import fc from 'fast-check';
import {
  answerTransferRequest,
  cancelPermission,
  confirmProfileSwitch,
  smOf,
  type TestSm,
  transferPermissionMessage,
} from '../../test/support/sm-messages.ts';
import { decodeMessage } from '../protocol/asn1/decode-any.ts';
import { encodeGetChipInfo } from '../protocol/asn1/info.ts';
import { encodeProfileRollback } from '../protocol/asn1/profile.ts';
import type { Outcome } from '../protocol/asn1/results.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { parseCertificate } from '../protocol/pki/certificate.ts';
import { UnknownCommand } from './processor.ts';
import { fromB64, fromHex } from './state.ts';
import { createTestChip, createTestPki, TEST_SM_IDS, testEid } from './testing.ts';

const pki = createTestPki('p256');
after(() => pki.remove());
const sms: TestSm[] = TEST_SM_IDS.map((id) => smOf(pki, id));
const EID = testEid(pki);
const ICCID_A = '89490200000000000011';
const ICCID_B = '89490200000000000022';

type Action =
  | {
      kind: 'permit';
      byAssigned: boolean;
      to: number;
      counter: 'next' | 'same' | 'stale';
      withSwitch: boolean;
    }
  | { kind: 'repeatPermit' }
  | { kind: 'execute'; variant: 'good' | 'wrongSigner' }
  | { kind: 'repeatExecute' }
  | { kind: 'cancel'; byAssigned: boolean; fresh: boolean }
  | { kind: 'info' }
  | { kind: 'rollback' }
  | { kind: 'confirm'; fresh: boolean }
  | { kind: 'garbage'; bytes: Uint8Array };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('permit' as const),
      byAssigned: fc.constantFrom(true, true, true, false),
      to: fc.integer({ min: 0, max: 2 }),
      counter: fc.constantFrom('next' as const, 'next' as const, 'same' as const, 'stale' as const),
      withSwitch: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'repeatPermit' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('execute' as const),
      variant: fc.constantFrom('good' as const, 'good' as const, 'wrongSigner' as const),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'repeatExecute' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('cancel' as const),
      byAssigned: fc.boolean(),
      fresh: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'info' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'rollback' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('confirm' as const), fresh: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  },
);

test('random command sequences keep the chip invariants', () => {
  const reached = new Set<string>();
  fc.assert(
    fc.property(fc.array(actionArb, { minLength: 1, maxLength: 25 }), (actions) => {
      const chip = createTestChip(pki, {
        profiles: [
          { iccid: ICCID_A, state: 'enabled' },
          { iccid: ICCID_B, state: 'disabled' },
        ],
      });
      const chipKey = createPublicKey({
        key: Buffer.from(parseCertificate(fromB64(chip.state.chipCertificate)).spki),
        format: 'der',
        type: 'spki',
      });
      // What a well-behaved SM side remembers.
      let lastPermission: Uint8Array | undefined;
      let lastPermissionAnswer: Uint8Array | undefined;
      let lastExecute: { command: Uint8Array; answer: Uint8Array } | undefined;

      for (const action of actions) {
        const before = chip.processor.state;
        const saves = chip.store.saves;
        const assigned = sms.find((s) => s.smId === before.assignment.smId)!;
        const other = sms.find((s) => s !== assigned)!;
        let command: Uint8Array;
        let expected: Outcome | 'TransferRequest' | 'HandoverResult' | 'ChipInfo' | undefined;

        switch (action.kind) {
          case 'permit': {
            const by = action.byAssigned ? assigned : other;
            const delta = { next: 1, same: 0, stale: -1 }[action.counter];
            const counterValue = Math.max(1, before.assignment.counter + delta);
            command = transferPermissionMessage(by, sms[action.to]!, {
              eid: EID,
              counterValue,
              ...(action.withSwitch && {
                profileSwitch: { disableIccid: ICCID_A, enableIccid: ICCID_B, rollbackOnFailure: true },
              }),
            });
            if (!action.byAssigned) expected = 'notCurrentSm';
            else if (counterValue <= before.assignment.counter) expected = 'replay';
            else if (before.pending) expected = 'pendingExists';
            else expected = 'TransferRequest';
            lastPermission = command;
            break;
          }
          case 'repeatPermit':
            if (!lastPermission) continue;
            command = lastPermission;
            break;
          case 'execute': {
            if (!before.pending) continue;
            const newSm = sms.find((s) => s.smId === before.pending!.newSmId)!;
            const answer = answerTransferRequest(newSm, fromB64(before.pending.transferRequest), {
              ...(action.variant === 'wrongSigner' && { signWith: other.privateKey }),
            });
            command = answer.command;
            // Signed by `other`: still valid when `other` happens to be the new SM.
            expected = action.variant === 'good' || other === newSm ? 'HandoverResult' : 'badSignature';
            break;
          }
          case 'repeatExecute':
            if (!lastExecute) continue;
            command = lastExecute.command;
            break;
          case 'cancel': {
            const by = action.byAssigned ? assigned : other;
            const permissionId = before.pending ? fromHex(before.pending.permissionId) : new Uint8Array(16);
            const counterValue = Math.max(1, before.assignment.counter + (action.fresh ? 1 : 0));
            command = cancelPermission(by, { permissionId, eid: EID, counterValue });
            if (!action.byAssigned) expected = 'notCurrentSm';
            else if (counterValue <= before.assignment.counter) expected = 'replay';
            else expected = before.pending ? 'ok' : 'noPending';
            break;
          }
          case 'info':
            command = encodeGetChipInfo();
            expected = 'ChipInfo';
            break;
          case 'rollback':
            command = encodeProfileRollback();
            expected = before.unconfirmedSwitch ? 'ok' : 'noPending';
            break;
          case 'confirm': {
            const counterValue = Math.max(1, before.assignment.counter + (action.fresh ? 1 : 0));
            command = confirmProfileSwitch(assigned, { eid: EID, counterValue });
            if (counterValue <= before.assignment.counter) expected = 'replay';
            else expected = before.unconfirmedSwitch ? 'ok' : 'noPending';
            break;
          }
          case 'garbage':
            command = action.bytes;
            break;
        }

        let result: ReturnType<typeof chip.processor.execute>;
        try {
          result = chip.processor.execute(command);
        } catch (e) {
          assert.ok(e instanceof UnknownCommand, String(e));
          assert.deepEqual(chip.processor.state, before);
          continue;
        }
        const after = chip.processor.state;
        reached.add(
          `${result.repeated ? 'repeated ' : ''}${result.answer === 'ChipResult' ? result.outcome : result.answer}`,
        );

        // Every signed answer verifies under the chip certificate.
        const decoded = decodeMessage(result.response);
        if (decoded.type === 'ChipInfo') {
          assert.equal(decoded.value.assignedSmId, before.assignment.smId);
          assert.equal(decoded.value.counter, before.assignment.counter);
        } else {
          assert.ok(
            decoded.type === 'ChipResult' ||
              decoded.type === 'TransferRequest' ||
              decoded.type === 'HandoverResult',
          );
          assert.ok(ecdsaVerify(chipKey, decoded.value.dataRaw, decoded.value.signature), decoded.type);
        }
        if (expected !== undefined && !result.repeated) {
          const got = result.answer === 'ChipResult' ? result.outcome : result.answer;
          assert.equal(got, expected, action.kind);
        }

        // Refusals and repeats change nothing and write nothing.
        if (result.outcome !== 'ok' || result.repeated || result.answer === 'ChipInfo') {
          assert.deepEqual(after, before);
          assert.equal(chip.store.saves, saves);
        } else {
          assert.equal(chip.store.saves, saves + 1);
        }
        assert.deepEqual(chip.store.load(), after, 'the saved state is the state');

        // The assignment moves only by a fresh HandoverResult (then the counter restarts at 0);
        // otherwise the counter only grows.
        if (result.answer === 'HandoverResult' && !result.repeated) {
          assert.equal(after.assignment.smId, before.pending?.newSmId);
          assert.equal(after.assignment.counter, 0);
          assert.equal(after.pending, undefined);
        } else {
          assert.equal(after.assignment.smId, before.assignment.smId);
          assert.equal(after.assignment.smCertificate, before.assignment.smCertificate);
          assert.ok(after.assignment.counter >= before.assignment.counter, 'counters only grow');
        }
        if (after.pending) assert.ok(after.pending.counterValue <= after.assignment.counter);

        // Fresh from a repeatPermit too: after a handover back to the same SM its counter restarts
        // at 0, so its old permission is accepted again (see the note in the chip's report).
        if (result.answer === 'TransferRequest' && !result.repeated) lastPermissionAnswer = result.response;
        if (action.kind === 'repeatPermit' && result.answer === 'TransferRequest' && result.repeated) {
          assert.deepEqual(
            result.response,
            lastPermissionAnswer,
            'a repeated permission gets the same TransferRequest',
          );
        }
        if (action.kind === 'execute' && result.answer === 'HandoverResult') {
          lastExecute = { command, answer: result.response };
        }
        if (
          action.kind === 'repeatExecute' &&
          lastExecute &&
          after.lastResult?.command === Buffer.from(command).toString('base64')
        ) {
          assert.equal(result.repeated, true);
          assert.deepEqual(
            result.response,
            lastExecute.answer,
            'a repeated handover gets the same HandoverResult',
          );
        }
        // Only the assigned SM's profile switch can be pending confirmation.
        if (after.unconfirmedSwitch)
          assert.equal(after.lastHandoverPermissionId, after.unconfirmedSwitch.permissionId);
      }
    }),
    { numRuns: 100 },
  );
  // The sequences did reach the interesting places.
  for (const r of [
    'TransferRequest',
    'HandoverResult',
    'repeated TransferRequest',
    'repeated HandoverResult',
    'ok',
    'notCurrentSm',
    'replay',
    'pendingExists',
    'noPending',
    'badSignature',
  ]) {
    assert.ok(reached.has(r), `never reached: ${r} (reached: ${[...reached].join(', ')})`);
  }
});
