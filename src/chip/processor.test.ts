/**
 * The chip's commands (PROTOCOL.md §6.2, §6.4, §5.5, §7): every outcome in the spec's order of
 * checks, each refusal a ChipResult that verifies under the chip certificate with no state
 * change, idempotent re-delivery, and the commit.
 */
import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import {
  answerTransferRequest,
  cancelPermission,
  confirmProfileSwitch,
  handoverCommand,
  smOf,
  type TestSm,
  transferPermissionMessage,
} from '../../test/support/sm-messages.ts';
import { decodeHandoverResult } from '../protocol/asn1/handover.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import { encodeProfileRollback } from '../protocol/asn1/profile.ts';
import { decodeTransferRequest } from '../protocol/asn1/request.ts';
import { type ChipResult, decodeChipResult, OUTCOMES, type Outcome } from '../protocol/asn1/results.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { generateKeyPair } from '../protocol/crypto/keys.ts';
import { ctx, priv } from '../protocol/der/tag.ts';
import { constructed, octets } from '../protocol/der/writer.ts';
import { makeEid } from '../protocol/eid.ts';
import { receiptValid } from '../protocol/handover-keys.ts';
import { parseCertificate } from '../protocol/pki/certificate.ts';
import { processCommand, UnknownCommand } from './processor.ts';
import { type ChipState, fromB64, fromHex, toHex } from './state.ts';
import { createTestChip, createTestPki, type TestChip, testEid } from './testing.ts';

const pki = createTestPki('p256');
const bpPki = createTestPki('brainpoolP256r1', ['sm-bp.example']);
after(() => {
  pki.remove();
  bpPki.remove();
});
const alpha = smOf(pki, 'sm-alpha.example');
const beta = smOf(pki, 'sm-beta.example');
const gamma = smOf(pki, 'sm-gamma.example');
const bpSm = smOf(bpPki, 'sm-bp.example');
const EID = testEid(pki);
const ICCID_OLD = '89490200001234567890';
const ICCID_NEW = '8949020000765432109';

const seen = new Set<Outcome>();

function chipKey(state: ChipState): KeyObject {
  return createPublicKey({
    key: Buffer.from(parseCertificate(fromB64(state.chipCertificate)).spki),
    format: 'der',
    type: 'spki',
  });
}

/** Runs a command that must be refused: signed ChipResult, nothing changed, nothing saved. */
function refused(
  chip: TestChip,
  command: Uint8Array,
  outcome: Outcome,
  permissionId?: Uint8Array,
): ChipResult {
  const before = chip.processor.state;
  const saves = chip.store.saves;
  const r = chip.processor.execute(command);
  assert.equal(r.answer, 'ChipResult');
  assert.equal(r.outcome, outcome);
  const result = decodeChipResult(r.response);
  assert.ok(ecdsaVerify(chipKey(before), result.dataRaw, result.signature), 'ChipResult signature');
  assert.equal(result.data.outcome, outcome);
  assert.equal(result.data.eid, before.eid);
  assert.equal(result.data.assignedSmId, before.assignment.smId);
  assert.deepEqual(result.data.permissionId, permissionId);
  assert.deepEqual(chip.processor.state, before, 'state unchanged');
  assert.equal(chip.store.saves, saves, 'nothing saved');
  assert.deepEqual(chip.store.load(), before);
  seen.add(outcome);
  return result;
}

function okResult(chip: TestChip, command: Uint8Array, permissionId?: Uint8Array): ChipResult {
  const before = chip.processor.state;
  const r = chip.processor.execute(command);
  assert.equal(r.outcome, 'ok');
  const result = decodeChipResult(r.response);
  assert.ok(ecdsaVerify(chipKey(before), result.dataRaw, result.signature));
  assert.equal(result.data.outcome, 'ok');
  assert.deepEqual(result.data.permissionId, permissionId);
  seen.add('ok');
  return result;
}

interface Permitted {
  readonly message: Uint8Array;
  readonly permissionId: Uint8Array;
  readonly requestBytes: Uint8Array;
}

/** Loads a permission that must be accepted and checks the TransferRequest. */
function permit(
  chip: TestChip,
  current: TestSm,
  next: TestSm,
  counterValue: number,
  extra: Partial<Parameters<typeof transferPermissionMessage>[2]> = {},
): Permitted {
  const permissionId = new Uint8Array(randomBytes(16));
  const message = transferPermissionMessage(current, next, {
    eid: chip.processor.state.eid,
    counterValue,
    permissionId,
    ...extra,
  });
  const before = chip.processor.state;
  const r = chip.processor.execute(message);
  assert.equal(r.answer, 'TransferRequest', `expected a TransferRequest, got ${r.outcome}`);
  const request = decodeTransferRequest(r.response);
  assert.ok(ecdsaVerify(chipKey(before), request.dataRaw, request.signature), 'TransferRequest signature');
  assert.equal(request.data.newSmId, next.smId);
  assert.equal(request.data.chipChallenge.length, 16);
  assert.deepEqual(request.chipCertificate, fromB64(before.chipCertificate));
  assert.deepEqual(request.eumCertificate, fromB64(before.eumCertificate));
  assert.deepEqual(request.currentSmCertificate, fromB64(before.assignment.smCertificate));
  // The permission inside is the one received, byte for byte.
  const inner = decodeTransferRequest(r.response).data.permission.raw;
  assert.ok(Buffer.from(message).includes(Buffer.from(inner)));
  const after = chip.processor.state;
  assert.equal(after.assignment.counter, counterValue);
  assert.equal(after.pending?.permissionId, toHex(permissionId));
  assert.equal(after.pending?.chipChallenge, toHex(request.data.chipChallenge));
  return { message, permissionId, requestBytes: r.response };
}

/** Executes the handover the new SM answers to `requestBytes`; checks the HandoverResult and the commit. */
function commit(chip: TestChip, next: TestSm, p: Permitted) {
  const before = chip.processor.state;
  const answer = answerTransferRequest(next, p.requestBytes);
  const r = chip.processor.execute(answer.command);
  assert.equal(r.answer, 'HandoverResult', `expected a HandoverResult, got ${r.outcome}`);
  const result = decodeHandoverResult(r.response);
  assert.ok(ecdsaVerify(chipKey(before), result.dataRaw, result.signature), 'HandoverResult signature');
  assert.deepEqual(result.data.permissionId, p.permissionId);
  assert.equal(result.data.eid, before.eid);
  assert.equal(result.data.previousSmId, before.assignment.smId);
  assert.equal(result.data.newSmId, next.smId);
  assert.ok(receiptValid(answer.keys.receiptKey, answer.commandDataRaw, result.data.receipt), 'receipt');
  const s = chip.processor.state;
  assert.equal(s.assignment.smId, next.smId);
  assert.equal(s.assignment.counter, 0);
  assert.deepEqual(fromB64(s.assignment.smCertificate), next.certificate.der);
  assert.deepEqual(s.assignment.keyset, {
    version: 1,
    sEnc: toHex(answer.keys.keyset.sEnc),
    sMac: toHex(answer.keys.keyset.sMac),
    initialMcv: toHex(answer.keys.keyset.initialMcv),
  });
  assert.equal(s.pending, undefined);
  assert.equal(s.lastHandoverPermissionId, toHex(p.permissionId));
  assert.deepEqual(chip.store.load(), s, 'committed state is the saved state');
  return { answer, response: r.response };
}

describe('LoadTransferPermission (§6.2)', () => {
  test('accepted: chip-signed TransferRequest, counter and pending stored', () => {
    const chip = createTestChip(pki);
    permit(chip, alpha, beta, 1);
    seen.add('ok');
  });

  test('accepted: a notAfter with a fraction of a second (DER GeneralizedTime, X.690 §11.7)', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1, { notAfter: new Date(Date.UTC(2031, 0, 1, 12, 0, 0, 500)) });
    assert.ok(Buffer.from(p.message).includes(Buffer.from('20310101120000.5Z', 'latin1')));
    commit(chip, beta, p);
  });

  test('the same message again while pending: the stored TransferRequest (same challenge), no state change', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 7);
    const before = chip.processor.state;
    const saves = chip.store.saves;
    const r = chip.processor.execute(p.message);
    assert.equal(r.repeated, true);
    assert.deepEqual(r.response, p.requestBytes);
    assert.deepEqual(chip.processor.state, before);
    assert.equal(chip.store.saves, saves);
  });

  test('malformed: known tag, content fails strict decoding; no permissionId', () => {
    const chip = createTestChip(pki);
    refused(chip, constructed(priv(2)), 'malformed');
    refused(chip, constructed(priv(2), octets(ctx(0), Uint8Array.of(1))), 'malformed');
    // A valid message with its signature shortened by one byte.
    const good = transferPermissionMessage(alpha, beta, { eid: EID, counterValue: 1 });
    const i = Buffer.from(good).indexOf(Buffer.from([0x5f, 0x37, 0x40]));
    const bad = Uint8Array.from(good);
    bad[i + 2] = 0x3f;
    refused(chip, bad, 'malformed');
  });

  test('invalidEid: another EID, and an EID failing mod-97', () => {
    const chip = createTestChip(pki);
    const other = testEid(pki, 2);
    const pid = new Uint8Array(randomBytes(16));
    refused(
      chip,
      transferPermissionMessage(alpha, beta, { eid: other, counterValue: 1, permissionId: pid }),
      'invalidEid',
      pid,
    );
    const badCheck = `${EID.slice(0, 30)}${EID.slice(30) === '00' ? '01' : '00'}`;
    refused(
      chip,
      transferPermissionMessage(alpha, beta, { eid: badCheck, counterValue: 1, permissionId: pid }),
      'invalidEid',
      pid,
    );
  });

  test('notCurrentSm: a permission naming another SM as current', () => {
    const chip = createTestChip(pki);
    const pid = new Uint8Array(randomBytes(16));
    refused(
      chip,
      transferPermissionMessage(beta, gamma, { eid: EID, counterValue: 1, permissionId: pid }),
      'notCurrentSm',
      pid,
    );
  });

  test('badSignature: signed with a key other than the assigned SM certificate', () => {
    const chip = createTestChip(pki);
    const pid = new Uint8Array(randomBytes(16));
    const m = transferPermissionMessage(alpha, beta, {
      eid: EID,
      counterValue: 1,
      permissionId: pid,
      signWith: beta.privateKey,
    });
    refused(chip, m, 'badSignature', pid);
  });

  test('replay: counterValue not above the stored counter', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 5);
    okResult(
      chip,
      cancelPermission(alpha, { permissionId: p.permissionId, eid: EID, counterValue: 6 }),
      p.permissionId,
    );
    for (const counterValue of [6, 5, 1]) {
      const pid = new Uint8Array(randomBytes(16));
      refused(
        chip,
        transferPermissionMessage(alpha, beta, { eid: EID, counterValue, permissionId: pid }),
        'replay',
        pid,
      );
    }
    permit(chip, alpha, beta, 7);
  });

  test('badCertificate: CN is not newSmId; a certificate from a CI the chip does not hold; garbage', () => {
    const chip = createTestChip(pki);
    const pid = new Uint8Array(randomBytes(16));
    const cn = transferPermissionMessage(alpha, beta, {
      eid: EID,
      counterValue: 1,
      permissionId: pid,
      newSmCertificate: gamma.certificate.der,
    });
    refused(chip, cn, 'badCertificate', pid);
    const foreign = createTestPki('p256', ['sm-beta.example']);
    try {
      const m = transferPermissionMessage(alpha, smOf(foreign, 'sm-beta.example'), {
        eid: EID,
        counterValue: 1,
        permissionId: pid,
      });
      refused(chip, m, 'badCertificate', pid);
    } finally {
      foreign.remove();
    }
    const garbage = transferPermissionMessage(alpha, beta, {
      eid: EID,
      counterValue: 1,
      permissionId: pid,
      newSmCertificate: constructed({ cls: 0, constructed: true, num: 16 }, octets(ctx(0), Uint8Array.of(1))),
    });
    refused(chip, garbage, 'badCertificate', pid);
  });

  test('wrongRole: the certificate validates but is not an SM certificate (the EUM)', () => {
    const chip = createTestChip(pki);
    const pid = new Uint8Array(randomBytes(16));
    const eum = pki.eum.certificate.der;
    refused(
      chip,
      transferPermissionMessage(alpha, beta, {
        eid: EID,
        counterValue: 1,
        permissionId: pid,
        newSmCertificate: eum,
      }),
      'wrongRole',
      pid,
    );
    // A chip certificate alone does not even chain (its EUM is not in the message).
    const own = fromB64(chip.state.chipCertificate);
    refused(
      chip,
      transferPermissionMessage(alpha, beta, {
        eid: EID,
        counterValue: 1,
        permissionId: pid,
        newSmCertificate: own,
      }),
      'badCertificate',
      pid,
    );
  });

  test('unsupportedCurve: an SM certificate on a curve the chip holds no CI for', () => {
    const chip = createTestChip(pki);
    const pid = new Uint8Array(randomBytes(16));
    refused(
      chip,
      transferPermissionMessage(alpha, bpSm, { eid: EID, counterValue: 1, permissionId: pid }),
      'unsupportedCurve',
      pid,
    );
  });

  test('a chip holding a CI of each curve accepts an SM on the other curve and hands over to it', () => {
    const chip = createTestChip(pki, { extraCis: [bpPki.ci.certificate] });
    const p = permit(chip, alpha, bpSm, 1);
    commit(chip, bpSm, p);
  });

  test('pendingExists: another permission while one is pending', () => {
    const chip = createTestChip(pki);
    permit(chip, alpha, beta, 1);
    const pid = new Uint8Array(randomBytes(16));
    refused(
      chip,
      transferPermissionMessage(alpha, gamma, { eid: EID, counterValue: 2, permissionId: pid }),
      'pendingExists',
      pid,
    );
  });

  test('checks run in the spec order: the first failing check decides', () => {
    const chip = createTestChip(pki);
    permit(chip, alpha, beta, 3);
    const pid = new Uint8Array(randomBytes(16));
    const other = testEid(pki, 9);
    // eid + current SM + signature + replay + certificate + pending all wrong → invalidEid
    const all = {
      permissionId: pid,
      counterValue: 1,
      newSmCertificate: pki.eum.certificate.der,
      signWith: gamma.privateKey,
    };
    refused(chip, transferPermissionMessage(beta, gamma, { ...all, eid: other }), 'invalidEid', pid);
    refused(chip, transferPermissionMessage(beta, gamma, { ...all, eid: EID }), 'notCurrentSm', pid);
    refused(chip, transferPermissionMessage(alpha, gamma, { ...all, eid: EID }), 'badSignature', pid);
    const { signWith: _, ...signed } = all;
    refused(chip, transferPermissionMessage(alpha, gamma, { ...signed, eid: EID }), 'replay', pid);
    refused(
      chip,
      transferPermissionMessage(alpha, gamma, { ...signed, eid: EID, counterValue: 4 }),
      'wrongRole',
      pid,
    );
    refused(
      chip,
      transferPermissionMessage(alpha, gamma, { permissionId: pid, eid: EID, counterValue: 4 }),
      'pendingExists',
      pid,
    );
  });
});

describe('ExecuteHandover (§6.4)', () => {
  test('commit: HandoverResult with a receipt the new SM verifies; assignment, keyset, pending in one write', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const saves = chip.store.saves;
    commit(chip, beta, p);
    assert.equal(chip.store.saves, saves + 1, 'one state write');
  });

  test('the identical command again: the stored HandoverResult, byte for byte, no state change', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const { answer, response } = commit(chip, beta, p);
    const before = chip.processor.state;
    const saves = chip.store.saves;
    const again = chip.processor.execute(answer.command);
    assert.equal(again.repeated, true);
    assert.deepEqual(again.response, response);
    assert.deepEqual(chip.processor.state, before);
    assert.equal(chip.store.saves, saves);
  });

  test('alreadyApplied: a different command for the committed permission', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const { answer } = commit(chip, beta, p);
    const different = handoverCommand(beta, {
      permissionId: p.permissionId,
      eid: EID,
      chipChallenge: answer.chipChallenge,
      otPkSm: answer.otPkSm,
      keysetVersion: 2,
    });
    refused(chip, different, 'alreadyApplied', p.permissionId);
    // Also once the new SM has started another transfer.
    const q = permit(chip, beta, gamma, 1);
    refused(chip, different, 'alreadyApplied', p.permissionId);
    commit(chip, gamma, q);
  });

  test('noPending: no pending transfer, or permissionId / eid / newSmId not the pending one', () => {
    const chip = createTestChip(pki);
    const ot = generateKeyPair('p256');
    const base = {
      permissionId: new Uint8Array(randomBytes(16)),
      eid: EID,
      chipChallenge: new Uint8Array(16),
      otPkSm: ot.publicPoint,
    };
    refused(chip, handoverCommand(beta, base), 'noPending', base.permissionId);
    const p = permit(chip, alpha, beta, 1);
    const pending = {
      ...base,
      permissionId: p.permissionId,
      chipChallenge: decodeTransferRequest(p.requestBytes).data.chipChallenge,
    };
    refused(
      chip,
      handoverCommand(beta, { ...pending, permissionId: base.permissionId }),
      'noPending',
      base.permissionId,
    );
    refused(chip, handoverCommand(beta, { ...pending, eid: testEid(pki, 3) }), 'noPending', p.permissionId);
    refused(chip, handoverCommand(gamma, pending), 'noPending', p.permissionId);
  });

  test('challengeMismatch: the echoed chipChallenge differs', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const cmd = handoverCommand(beta, {
      permissionId: p.permissionId,
      eid: EID,
      chipChallenge: new Uint8Array(randomBytes(16)),
      otPkSm: generateKeyPair('p256').publicPoint,
    });
    refused(chip, cmd, 'challengeMismatch', p.permissionId);
  });

  test('badSignature: not signed with the pending new SM certificate key', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const answer = answerTransferRequest(beta, p.requestBytes, { signWith: alpha.privateKey });
    refused(chip, answer.command, 'badSignature', p.permissionId);
    // The correctly signed one still commits afterwards.
    commit(chip, beta, p);
  });

  test('malformed: otPK.SM not a point on the chip curve; content failing decoding', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const challenge = decodeTransferRequest(p.requestBytes).data.chipChallenge;
    const notAPoint = Uint8Array.of(4, ...new Uint8Array(64).fill(1));
    for (const otPkSm of [notAPoint, generateKeyPair('brainpoolP256r1').publicPoint]) {
      const cmd = handoverCommand(beta, {
        permissionId: p.permissionId,
        eid: EID,
        chipChallenge: challenge,
        otPkSm,
      });
      refused(chip, cmd, 'malformed', p.permissionId);
    }
    refused(chip, constructed(priv(6), octets(ctx(0), Uint8Array.of(0))), 'malformed');
  });

  test('after the commit the old SM is refused (notCurrentSm) and the new SM starts at counter 1', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 41);
    commit(chip, beta, p);
    const pid = new Uint8Array(randomBytes(16));
    refused(
      chip,
      transferPermissionMessage(alpha, gamma, { eid: EID, counterValue: 42, permissionId: pid }),
      'notCurrentSm',
      pid,
    );
    // The old SM's cancel of the committed permission tells it where the chip went.
    const r = refused(
      chip,
      cancelPermission(alpha, { permissionId: p.permissionId, eid: EID, counterValue: 42 }),
      'notCurrentSm',
      p.permissionId,
    );
    assert.equal(r.data.assignedSmId, beta.smId);
    // And back again: beta → alpha, whose counter starts over.
    const q = permit(chip, beta, alpha, 1);
    commit(chip, alpha, q);
    permit(chip, alpha, gamma, 1);
  });

  test('a cancelled permission cannot be executed any more (noPending)', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const answer = answerTransferRequest(beta, p.requestBytes);
    okResult(
      chip,
      cancelPermission(alpha, { permissionId: p.permissionId, eid: EID, counterValue: 2 }),
      p.permissionId,
    );
    refused(chip, answer.command, 'noPending', p.permissionId);
  });
});

describe('CancelPermission (§5.5, §6.6)', () => {
  test('ok: pending cleared, counter stored, signed ok with the permissionId; repeated: same answer', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 1);
    const cancel = cancelPermission(alpha, { permissionId: p.permissionId, eid: EID, counterValue: 2 });
    const result = okResult(chip, cancel, p.permissionId);
    assert.equal(result.data.assignedSmId, alpha.smId);
    const s = chip.processor.state;
    assert.equal(s.pending, undefined);
    assert.equal(s.assignment.counter, 2);
    const saves = chip.store.saves;
    const again = chip.processor.execute(cancel);
    assert.equal(again.repeated, true);
    assert.deepEqual(
      again.response,
      chip.processor.state.lastResult && fromB64(chip.processor.state.lastResult.response),
    );
    assert.equal(chip.store.saves, saves);
    // The same permission bytes are now a replay (counter 1 ≤ 2).
    refused(chip, p.message, 'replay', p.permissionId);
  });

  test('refusals in order: malformed, invalidEid, notCurrentSm, badSignature, replay, noPending', () => {
    const chip = createTestChip(pki);
    const p = permit(chip, alpha, beta, 5);
    const pid = p.permissionId;
    refused(chip, constructed(priv(10)), 'malformed');
    refused(
      chip,
      cancelPermission(alpha, { permissionId: pid, eid: testEid(pki, 4), counterValue: 6 }),
      'invalidEid',
      pid,
    );
    refused(
      chip,
      cancelPermission(beta, { permissionId: pid, eid: EID, counterValue: 6 }),
      'notCurrentSm',
      pid,
    );
    refused(
      chip,
      cancelPermission(alpha, { permissionId: pid, eid: EID, counterValue: 6, signWith: beta.privateKey }),
      'badSignature',
      pid,
    );
    refused(chip, cancelPermission(alpha, { permissionId: pid, eid: EID, counterValue: 5 }), 'replay', pid);
    const other = new Uint8Array(randomBytes(16));
    refused(
      chip,
      cancelPermission(alpha, { permissionId: other, eid: EID, counterValue: 6 }),
      'noPending',
      other,
    );
    const idle = createTestChip(pki);
    refused(
      idle,
      cancelPermission(alpha, { permissionId: pid, eid: EID, counterValue: 1 }),
      'noPending',
      pid,
    );
  });
});

describe('GetChipInfo (§5)', () => {
  test('unsigned ChipInfo with the pending permissionId; malformed content gets a ChipResult', () => {
    const chip = createTestChip(pki);
    let info = decodeChipInfo(chip.processor.process(encodeGetChipInfo()));
    assert.equal(info.eid, EID);
    assert.equal(info.assignedSmId, alpha.smId);
    assert.equal(info.counter, 0);
    assert.equal(info.pendingPermissionId, undefined);
    assert.deepEqual(info.chipCertificate, fromB64(chip.state.chipCertificate));
    assert.deepEqual(info.eumCertificate, pki.eum.certificate.der);
    const p = permit(chip, alpha, beta, 3);
    info = decodeChipInfo(chip.processor.process(encodeGetChipInfo()));
    assert.deepEqual(info.pendingPermissionId, p.permissionId);
    assert.equal(info.counter, 3);
    refused(chip, constructed(priv(14), octets(ctx(0), Uint8Array.of(1))), 'malformed');
  });
});

describe('profile switch (§7)', () => {
  const profiles = [
    { iccid: ICCID_OLD, operator: 'Old MNO', state: 'enabled' as const },
    { iccid: '89490200001111111111', state: 'disabled' as const },
  ];
  const profileSwitch = (rollbackOnFailure: boolean) => ({
    disableIccid: ICCID_OLD,
    enableIccid: ICCID_NEW,
    rollbackOnFailure,
  });
  const stateOf = (chip: TestChip, iccid: string) =>
    chip.processor.state.profiles.find((p) => p.iccid === iccid)?.state;

  function switched(rollbackOnFailure: boolean) {
    const chip = createTestChip(pki, { profiles });
    const p = permit(chip, alpha, beta, 1, { profileSwitch: profileSwitch(rollbackOnFailure) });
    const committed = commit(chip, beta, p);
    assert.equal(stateOf(chip, ICCID_OLD), 'disabled');
    assert.equal(stateOf(chip, ICCID_NEW), 'enabled');
    return { chip, p, handoverCommand: committed.answer.command };
  }

  test('commit applies the switch and marks it unconfirmed; rollback once, then noPending', () => {
    const { chip, p } = switched(true);
    assert.equal(chip.processor.state.unconfirmedSwitch?.permissionId, toHex(p.permissionId));
    okResult(chip, encodeProfileRollback(), p.permissionId);
    assert.equal(stateOf(chip, ICCID_OLD), 'enabled');
    assert.equal(stateOf(chip, ICCID_NEW), 'disabled');
    assert.equal(chip.processor.state.assignment.smId, beta.smId, 'the assignment stays');
    assert.equal(chip.processor.state.unconfirmedSwitch, undefined);
    refused(chip, encodeProfileRollback(), 'noPending');
  });

  test('a rollback keeps lastResult: the HandoverCommand again still gets its HandoverResult (§6.6)', () => {
    // The device rolls back when it cannot reach the new SM through the new profile, so the new
    // SM may not have the HandoverResult yet: the agent still holds the HandoverCommand, and
    // repeating it must return the chip's stored answer.
    const { chip, handoverCommand } = switched(true);
    const first = chip.processor.execute(handoverCommand);
    assert.equal(first.repeated, true);
    assert.equal(chip.processor.execute(encodeProfileRollback()).outcome, 'ok');
    const again = chip.processor.execute(handoverCommand);
    assert.equal(again.answer, 'HandoverResult');
    assert.equal(again.repeated, true);
    assert.deepEqual(again.response, first.response);
  });

  test('confirm: ok, then rollback and a second confirm get noPending; the identical confirm its stored answer', () => {
    const { chip, p } = switched(true);
    const confirm = confirmProfileSwitch(beta, { eid: EID, counterValue: 1 });
    okResult(chip, confirm, p.permissionId);
    assert.equal(chip.processor.state.unconfirmedSwitch, undefined);
    assert.equal(chip.processor.state.assignment.counter, 1);
    refused(chip, encodeProfileRollback(), 'noPending');
    refused(chip, confirmProfileSwitch(beta, { eid: EID, counterValue: 2 }), 'noPending');
    const again = chip.processor.execute(confirm);
    assert.equal(again.repeated, true);
  });

  test('confirm refusals in order: malformed, invalidEid, notCurrentSm, badSignature, replay, noPending', () => {
    const { chip } = switched(true);
    refused(chip, constructed(priv(17)), 'malformed');
    refused(chip, confirmProfileSwitch(beta, { eid: testEid(pki, 5), counterValue: 1 }), 'invalidEid');
    refused(chip, confirmProfileSwitch(alpha, { eid: EID, counterValue: 1 }), 'notCurrentSm');
    refused(
      chip,
      confirmProfileSwitch(beta, { eid: EID, counterValue: 1, signWith: alpha.privateKey }),
      'badSignature',
    );
    okResult(chip, confirmProfileSwitch(beta, { eid: EID, counterValue: 3 }), lastHandoverId(chip));
    refused(chip, confirmProfileSwitch(beta, { eid: EID, counterValue: 2 }), 'replay');
    refused(chip, confirmProfileSwitch(beta, { eid: EID, counterValue: 4 }), 'noPending');
  });

  test('without rollbackOnFailure the switch is final: rollback and confirm get noPending', () => {
    const { chip } = switched(false);
    assert.equal(chip.processor.state.unconfirmedSwitch, undefined);
    refused(chip, encodeProfileRollback(), 'noPending');
    refused(chip, confirmProfileSwitch(beta, { eid: EID, counterValue: 1 }), 'noPending');
    refused(chip, constructed(priv(18), octets(ctx(0), Uint8Array.of(0))), 'malformed');
  });
});

/** The permissionId of the last handover (what a confirm's ok carries). */
function lastHandoverId(chip: TestChip): Uint8Array {
  return fromHex(chip.processor.state.lastHandoverPermissionId!);
}

describe('commands and non-commands', () => {
  test('bytes that are not one command TLV: UnknownCommand (6A80 at the APDU level)', () => {
    const chip = createTestChip(pki);
    const good = transferPermissionMessage(alpha, beta, { eid: EID, counterValue: 1 });
    const cases = [
      new Uint8Array(0),
      Uint8Array.of(0xe2),
      Uint8Array.of(0xe2, 0x05, 0x00),
      Uint8Array.of(...good, 0x00),
      constructed(priv(1)),
      constructed(priv(15)),
      constructed(priv(12)),
      Uint8Array.of(0x30, 0x00),
      Uint8Array.of(0xc2, 0x00),
    ];
    for (const c of cases) {
      const before = chip.processor.state;
      assert.throws(() => processCommand(before, c), UnknownCommand, Buffer.from(c).toString('hex'));
      assert.throws(() => chip.processor.process(c), UnknownCommand);
      assert.deepEqual(chip.processor.state, before);
    }
  });

  test('another EID in the EUM range: its own permissions are accepted', () => {
    const eid = makeEid('890010120000000000000000000077');
    const chip = createTestChip(pki, { eid });
    permit(chip, alpha, beta, 1);
  });

  test('every outcome of ChipResultData except `undefined` was produced above', () => {
    const expected = (Object.keys(OUTCOMES) as Outcome[]).filter((o) => o !== 'undefined');
    assert.deepEqual([...seen].sort(), expected.sort());
  });
});
