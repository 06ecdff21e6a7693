/** The chip state file (PROTOCOL.md §4): round trip, and ChipStateInvalid for every kind of bad content. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { smOf, transferPermissionMessage } from '../../test/support/sm-messages.ts';
import { generateKeyPair, privateKeyToPem } from '../protocol/crypto/keys.ts';
import { HandoverError } from '../protocol/errors.ts';
import { processCommand } from './processor.ts';
import { type ChipState, parseChipState, serializeChipState, summarizeChipState } from './state.ts';
import { createTestChipState, createTestPki, testEid } from './testing.ts';

const pki = createTestPki('p256');
after(() => pki.remove());
const base = createTestChipState(pki, { profiles: [{ iccid: '89490200001234567890', state: 'enabled' }] });
const pending = processCommand(
  base,
  transferPermissionMessage(smOf(pki, 'sm-alpha.example'), smOf(pki, 'sm-beta.example'), {
    eid: testEid(pki),
    counterValue: 3,
  }),
).state;

const invalid = (e: unknown) => e instanceof HandoverError && e.code === 'ChipStateInvalid';

test('serialise and parse round-trip, with and without a pending transfer', () => {
  assert.deepEqual(parseChipState(serializeChipState(base)), base);
  assert.deepEqual(parseChipState(serializeChipState(pending)), pending);
  assert.ok(pending.pending);
});

test('bad content is ChipStateInvalid naming the field', () => {
  const other = generateKeyPair('p256');
  const bp = generateKeyPair('brainpoolP256r1');
  const mutations: [string, (s: Record<string, unknown>) => void][] = [
    ['format', (s) => (s.format = 2)],
    ['eid', (s) => (s.eid = `${(s.eid as string).slice(0, 30)}00`)],
    ['eid', (s) => (s.eid = testEid(pki, 2))],
    ['curve', (s) => (s.curve = 'p384')],
    ['chipPrivateKey', (s) => (s.chipPrivateKey = privateKeyToPem(other.privateKey))],
    ['chipPrivateKey', (s) => (s.chipPrivateKey = 'not a key')],
    ['chipPrivateKey', (s) => (s.chipPrivateKey = privateKeyToPem(bp.privateKey))],
    ['chipCertificate', (s) => (s.chipCertificate = 'AAAA')],
    ['eumCertificate', (s) => (s.eumCertificate = '!!')],
    ['ciCertificates', (s) => (s.ciCertificates = [])],
    ['assignment.counter', (s) => ((s.assignment as Record<string, unknown>).counter = -1)],
    ['assignment.counter', (s) => ((s.assignment as Record<string, unknown>).counter = 1.5)],
    ['assignment.smId', (s) => ((s.assignment as Record<string, unknown>).smId = '')],
    ['pending.chipChallenge', (s) => ((s.pending as Record<string, unknown>).chipChallenge = 'abcd')],
    [
      'pending.otSkChip',
      (s) => ((s.pending as Record<string, unknown>).otSkChip = privateKeyToPem(bp.privateKey)),
    ],
    ['profiles[0].state', (s) => ((s.profiles as Record<string, unknown>[])[0]!.state = 'on')],
    ['profiles[0].iccid', (s) => ((s.profiles as Record<string, unknown>[])[0]!.iccid = '12')],
    ['(root)', (s) => (s.extra = 1)],
    ['lastResult', (s) => (s.lastResult = 'x')],
  ];
  for (const [field, mutate] of mutations) {
    const s = JSON.parse(serializeChipState(pending)) as Record<string, unknown>;
    mutate(s);
    assert.throws(
      () => parseChipState(JSON.stringify(s)),
      (e: unknown) => {
        assert.ok(invalid(e), `${field}: ${String(e)}`);
        assert.ok(
          (e as HandoverError).message.includes(field.split('[')[0]!),
          `${field}: ${(e as Error).message}`,
        );
        return true;
      },
      `no error for ${field}`,
    );
  }
  assert.throws(() => parseChipState('not json'), invalid);
  assert.throws(() => parseChipState('null'), invalid);
});

test('the summary for "chip info" carries no key, keyset or one-time secret', () => {
  const text = JSON.stringify(summarizeChipState(pending));
  const s = pending as ChipState;
  assert.ok(!text.includes('PRIVATE KEY'));
  assert.ok(!text.includes(s.pending!.chipChallenge));
  assert.deepEqual(JSON.parse(text), {
    eid: s.eid,
    curve: 'p256',
    assignedSmId: 'sm-alpha.example',
    counter: 3,
    pendingPermissionId: s.pending!.permissionId,
    pendingNewSmId: 'sm-beta.example',
    profiles: s.profiles,
  });
});
