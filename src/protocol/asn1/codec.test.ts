import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { sampleArb, stripRaw } from '../../../test/support/arbitraries.ts';
import { MalformedMessage } from '../errors.ts';
import { decodeMessage } from './decode-any.ts';

const ALL_TYPES = [
  'TransferPermissionData',
  'TransferPermission',
  'TransferPermissionMessage',
  'TransferRequestData',
  'TransferRequest',
  'HandoverCommandData',
  'HandoverCommand',
  'HandoverResultData',
  'HandoverResult',
  'CancelPermissionData',
  'CancelPermission',
  'ChipResultData',
  'ChipResult',
  'KeyDerivationInfo',
  'GetChipInfo',
  'ChipInfo',
  'ConfirmProfileSwitchData',
  'ConfirmProfileSwitch',
  'ProfileRollback',
];

test('every message type round-trips: decode(encode(v)) = v, and raw bytes are kept', () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(sampleArb, (s) => {
      const m = decodeMessage(s.bytes);
      seen.add(m.type);
      assert.equal(m.type, s.type);
      assert.deepEqual(stripRaw(m.value), stripRaw(s.value));
      const value = m.value as { raw?: Uint8Array };
      if (value.raw) assert.deepEqual(value.raw, s.bytes);
    }),
    { numRuns: 2000 },
  );
  assert.deepEqual([...seen].sort(), [...ALL_TYPES].sort());
});

test('any single-byte change of a valid encoding fails to decode (MalformedMessage) or changes the value', () => {
  fc.assert(
    fc.property(sampleArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (s, at, delta) => {
      const mutated = Uint8Array.from(s.bytes);
      const i = at % mutated.length;
      mutated[i] = (mutated[i]! + delta) & 0xff;
      let decoded: ReturnType<typeof decodeMessage>;
      try {
        decoded = decodeMessage(mutated);
      } catch (e) {
        assert.ok(e instanceof MalformedMessage, `unexpected error ${String(e)}`);
        return;
      }
      assert.notDeepEqual(
        { t: decoded.type, v: stripRaw(decoded.value) },
        { t: s.type, v: stripRaw(s.value) },
      );
    }),
    { numRuns: 5000 },
  );
});

test('truncation and trailing bytes are refused', () => {
  fc.assert(
    fc.property(sampleArb, fc.nat(), (s, cut) => {
      const n = cut % s.bytes.length;
      assert.throws(() => decodeMessage(s.bytes.subarray(0, n)), MalformedMessage);
      const longer = new Uint8Array(s.bytes.length + 1);
      longer.set(s.bytes);
      assert.throws(() => decodeMessage(longer), /trailing/);
    }),
    { numRuns: 500 },
  );
});
