import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MalformedMessage } from '../errors.ts';
import { readGeneralizedTime, readInteger, readOid, readSingle } from './reader.ts';
import { ctx, tagBytes, U } from './tag.ts';
import { generalizedTime, integer, integerBytes, oid, x509Time } from './writer.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function refusal(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => readSingle(bytes, 'X'),
    (e: unknown) => e instanceof MalformedMessage && e.field === 'X' && pattern.test(e.message),
  );
}

test('strict TLV framing: each DER violation has its own message', () => {
  refusal(hex('0480'), /indefinite/);
  refusal(hex('04 81 05 0102030405'), /non-minimal length/);
  refusal(hex('04 82 0005 0102030405'), /non-minimal length/);
  refusal(hex('04 03 0102'), /past the end/);
  refusal(hex('04 01 01 00'), /trailing/);
  refusal(hex('1f 80 01 00'), /non-minimal tag/);
  refusal(hex('1f 05 00'), /high-tag form/);
  refusal(hex(''), /missing/);
});

test('INTEGER: minimal encoding and range are enforced', () => {
  const int = (h: string) => readInteger(readSingle(hex(h), 'i'), 'i', 0, 2147483647);
  assert.equal(int('020100'), 0);
  assert.equal(int('02020080'), 128);
  assert.throws(() => int('02020001'), /non-minimal/);
  assert.throws(() => int('0201ff'), /out of range/);
  assert.throws(() => int('0200'), /empty/);
  fc.assert(
    fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), (n) => {
      const t = readSingle(integer(U.integer, n), 'n');
      assert.equal(readInteger(t, 'n', -(2 ** 41), 2 ** 41), n);
      assert.deepEqual(integerBytes(n), t.value);
    }),
  );
});

test('GeneralizedTime: whole seconds, valid dates only', () => {
  const d = new Date(Date.UTC(2031, 1, 28, 23, 59, 7));
  assert.deepEqual(readGeneralizedTime(readSingle(generalizedTime(U.generalizedTime, d), 't'), 't'), d);
  const gt = (s: string) =>
    readGeneralizedTime(readSingle(Uint8Array.of(0x18, s.length, ...Buffer.from(s)), 't'), 't');
  assert.throws(() => gt('20310230000000Z'), /not a valid date/);
  assert.throws(() => gt('20310228235907.5Z'), /GeneralizedTime/);
  assert.throws(() => gt('20310228235907'), /GeneralizedTime/);
  assert.equal(gt('74921231235959Z').getUTCFullYear(), 7492);
  // Years below 100 are years 0..99, not 1900..1999 (Date.UTC's mapping).
  assert.equal(gt('00990101000000Z').toISOString(), '0099-01-01T00:00:00.000Z');
  assert.throws(() => gt('00990229000000Z'), /not a valid date/);
  assert.equal(x509Time(d)[0], 0x17);
});

test('GeneralizedTime with fractional seconds: only where allowed, and only in DER form', () => {
  const gt = (s: string) =>
    readGeneralizedTime(readSingle(Uint8Array.of(0x18, s.length, ...Buffer.from(s)), 't'), 't', {
      fractionalSeconds: true,
    });
  assert.equal(gt('20310228235907.5Z').toISOString(), '2031-02-28T23:59:07.500Z');
  assert.equal(gt('20310228235907.123Z').toISOString(), '2031-02-28T23:59:07.123Z');
  // Past the millisecond: dropped, never rounded up into the next second.
  assert.equal(gt('20310228235959.9999Z').toISOString(), '2031-02-28T23:59:59.999Z');
  assert.equal(gt('20310228235907Z').toISOString(), '2031-02-28T23:59:07.000Z');
  // X.690 §11.7: a '.' and no trailing zero (a zero fraction is left out altogether).
  for (const bad of [
    '20310228235907.50Z',
    '20310228235907.0Z',
    '20310228235907.Z',
    '20310228235907,5Z',
    '20310228235907.5',
  ]) {
    assert.throws(() => gt(bad), /GeneralizedTime/, bad);
  }
  assert.throws(() => gt('20310230000000.5Z'), /not a valid date/);
});

test('OID round trip and tag bytes for high tag numbers', () => {
  for (const o of [
    '1.2.840.10045.3.1.7',
    '1.3.36.3.3.2.8.1.1.7',
    '2.25.212440251162100429061593064612372102160',
  ]) {
    const t = readSingle(oid(o), 'oid');
    assert.equal(readOid(t, 'oid'), o);
  }
  assert.deepEqual(tagBytes({ cls: 1, constructed: false, num: 55 }), hex('5f37'));
  assert.deepEqual(tagBytes(ctx(9, true)), hex('a9'));
});
