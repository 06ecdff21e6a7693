/** ICCID (PROTOCOL.md §2): 10 bytes, nibble-swapped BCD padded with F, as SGP.22 carries it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InvalidInput, MalformedMessage } from './errors.ts';
import { iccidFromBytes, iccidToBytes } from './iccid.ts';

const isInvalidIccid = (e: unknown) => e instanceof InvalidInput && e.code === 'InvalidIccid';
const isMalformed = (e: unknown) => e instanceof MalformedMessage;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('known encodings: swapped nibbles, F padding', () => {
  assert.equal(hex(iccidToBytes('89012345678901234567')), '98103254769810325476');
  assert.equal(hex(iccidToBytes('8901234567890123456')), '981032547698103254f6');
  assert.equal(hex(iccidToBytes('890123456789012345')), '981032547698103254ff');
  assert.equal(iccidFromBytes(Buffer.from('981032547698103254f6', 'hex'), 'iccid'), '8901234567890123456');
  assert.equal(iccidFromBytes(Buffer.from('981032547698103254FF', 'hex'), 'iccid'), '890123456789012345');
});

test('round trip for 18 to 20 digits', () => {
  let runs = 0;
  fc.assert(
    fc.property(
      fc
        .integer({ min: 18, max: 20 })
        .chain((n) =>
          fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n, maxLength: n }).map((d) => d.join('')),
        ),
      (iccid) => {
        const bytes = iccidToBytes(iccid);
        assert.equal(bytes.length, 10);
        // Nibble swap: the first digit is the low nibble of the first byte.
        assert.equal(bytes[0]! & 0x0f, Number(iccid[0]));
        // Padding is F nibbles, in the high nibble positions for odd counts.
        const padded = iccid.padEnd(20, 'f');
        let swapped = '';
        for (let i = 0; i < 20; i += 2) swapped += padded[i + 1]! + padded[i]!;
        assert.equal(hex(bytes), swapped);
        assert.equal(iccidFromBytes(bytes, 'iccid'), iccid);
        runs++;
      },
    ),
    { numRuns: 1000 },
  );
  assert.ok(runs > 0, 'no cases ran');
});

test('iccidToBytes rejects bad forms with InvalidIccid', () => {
  for (const text of [
    '',
    '1'.repeat(17),
    '1'.repeat(21),
    `${'1'.repeat(18)}F`,
    `${'1'.repeat(18)}f`,
    `${'1'.repeat(18)}a`,
    ` ${'1'.repeat(19)}`,
    `${'1'.repeat(9)}-${'1'.repeat(9)}`,
    '８９01234567890123456',
  ]) {
    assert.throws(() => iccidToBytes(text), isInvalidIccid, JSON.stringify(text));
  }
});

test('iccidFromBytes rejects wrong lengths, misplaced padding and non-BCD nibbles', () => {
  const cases = [
    '', // empty
    '9810325476981032', // 8 bytes
    '98103254769810325476ff', // 11 bytes
    '9810325476981032547f', // F before the last digit is not trailing padding
    '9810325476981032ffff', // only 16 digits
    '98103254769810325fff', // only 17 digits
    '98103254769810f25476', // F in the middle
    'a8103254769810325476', // nibble A
    '981032547698103254e6', // nibble E
    'ffffffffffffffffffff',
  ];
  for (const h of cases) {
    assert.throws(() => iccidFromBytes(Buffer.from(h, 'hex'), 'iccid'), isMalformed, h);
  }
});
