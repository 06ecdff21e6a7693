/**
 * EID (PROTOCOL.md §2): 32 digits, BCD, whole number ≡ 1 (mod 97). The check digits are checked
 * against an independent BigInt computation. pySim's cases (GPL) are only read from the shared
 * vector folder outside this repository when it exists; they are never copied in.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { eidCheckDigits, eidChecksumValid, eidFromBcd, eidToBcd, makeEid, parseEid } from './eid.ts';
import { InvalidInput, MalformedMessage } from './errors.ts';

/** The SGP.26 test eUICC's EID (in CERT_EUICC_ECDSA_NIST's subject serialNumber). */
const SGP26_EID = '89049032123451234512345678901235';

const digits = (n: number) =>
  fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n, maxLength: n }).map((d) => d.join(''));

const isInvalidEid = (e: unknown) => e instanceof InvalidInput && e.code === 'InvalidEid';
const isMalformed = (e: unknown) => e instanceof MalformedMessage && e.code === 'MalformedMessage';

test('the SGP.26 EID is valid', () => {
  assert.equal(parseEid(SGP26_EID), SGP26_EID);
  assert.equal(eidChecksumValid(SGP26_EID), true);
  assert.equal(BigInt(SGP26_EID) % 97n, 1n);
  assert.equal(eidCheckDigits(SGP26_EID.slice(0, 30)), '35');
  assert.equal(makeEid(SGP26_EID.slice(0, 30)), SGP26_EID);
  assert.equal(Buffer.from(eidToBcd(SGP26_EID)).toString('hex'), SGP26_EID);
  assert.equal(eidToBcd(SGP26_EID)[0], 0x89);
});

test('check digits agree with an independent BigInt computation', () => {
  let runs = 0;
  fc.assert(
    fc.property(digits(30), (body) => {
      const check = eidCheckDigits(body);
      assert.match(check, /^\d{2}$/);
      // ISO 7064 mod 97-10: 98 - (body * 100 mod 97), always in 02..98.
      const expected = 98n - ((BigInt(body) * 100n) % 97n);
      assert.equal(BigInt(check), expected);
      const eid = body + check;
      assert.equal(BigInt(eid) % 97n, 1n);
      assert.equal(eidChecksumValid(eid), true);
      assert.equal(parseEid(eid), eid);
      runs++;
    }),
    { numRuns: 2000 },
  );
  assert.ok(runs > 0, 'no cases ran');
});

test('eidChecksumValid: the whole number mod 97 is 1 (PROTOCOL.md §2), whatever the check value', () => {
  let runs = 0;
  fc.assert(
    fc.property(digits(30), fc.integer({ min: 0, max: 99 }), (body, cc) => {
      const eid = body + String(cc).padStart(2, '0');
      const valid = BigInt(eid) % 97n === 1n;
      assert.equal(eidChecksumValid(eid), valid);
      if (valid) assert.equal(parseEid(eid), eid);
      else assert.throws(() => parseEid(eid), isInvalidEid);
      runs++;
    }),
    { numRuns: 2000 },
  );
  assert.ok(runs > 0, 'no cases ran');
});

test('non-digits, wrong lengths and bad check values are InvalidEid', () => {
  const bad = [
    '',
    SGP26_EID.slice(0, 31),
    `${SGP26_EID}0`,
    `0${SGP26_EID}`,
    '89049032123451234512345678901234', // wrong check value
    '89049032123451234512345678901236',
    `${SGP26_EID.slice(0, 31)}a`,
    `A${SGP26_EID.slice(1)}`,
    ` ${SGP26_EID}`,
    `${SGP26_EID}\n`,
    `+${SGP26_EID.slice(1)}`,
    `${SGP26_EID.slice(0, 16)} ${SGP26_EID.slice(16)}`,
    '８９049032123451234512345678901235', // full-width digits
    '٨٩049032123451234512345678901235', // Arabic-Indic digits
    '0x9049032123451234512345678901235',
  ];
  for (const text of bad) {
    assert.throws(() => parseEid(text), isInvalidEid, JSON.stringify(text));
    assert.equal(eidChecksumValid(text), false, JSON.stringify(text));
  }
  // A single changed digit is always caught by mod 97.
  for (let i = 0; i < 32; i++) {
    const d = Number(SGP26_EID[i]);
    const changed = SGP26_EID.slice(0, i) + String((d + 1) % 10) + SGP26_EID.slice(i + 1);
    assert.throws(() => parseEid(changed), isInvalidEid, `digit ${i}`);
  }
  // Two swapped adjacent digits too.
  const swapped = `${SGP26_EID.slice(0, 30)}${SGP26_EID[31]}${SGP26_EID[30]}`;
  assert.throws(() => parseEid(swapped), isInvalidEid);
  for (const body of ['', '1'.repeat(29), '1'.repeat(31), `${'1'.repeat(29)}x`]) {
    assert.throws(() => eidCheckDigits(body), isInvalidEid, JSON.stringify(body));
  }
  for (const text of ['', '1'.repeat(31), `${'1'.repeat(31)}f`]) {
    assert.throws(() => eidToBcd(text), isInvalidEid, JSON.stringify(text));
  }
});

test('BCD round trip', () => {
  fc.assert(
    fc.property(digits(30), (body) => {
      const eid = makeEid(body);
      const bcd = eidToBcd(eid);
      assert.equal(bcd.length, 16);
      assert.equal(bcd[0]! >> 4, Number(eid[0]), 'first digit in the high nibble');
      assert.equal(eidFromBcd(bcd, 'eid'), eid);
    }),
    { numRuns: 500 },
  );
  // eidFromBcd does not judge the check value.
  assert.equal(eidFromBcd(new Uint8Array(16), 'eid'), '0'.repeat(32));
});

test('eidFromBcd rejects nibbles above 9 and wrong lengths with MalformedMessage', () => {
  const good = eidToBcd(SGP26_EID);
  let runs = 0;
  for (let nibble = 0; nibble < 32; nibble++) {
    for (let v = 0xa; v <= 0xf; v++) {
      const bad = Uint8Array.from(good);
      const i = nibble >> 1;
      bad[i] = nibble % 2 === 0 ? (v << 4) | (bad[i]! & 0x0f) : (bad[i]! & 0xf0) | v;
      assert.throws(() => eidFromBcd(bad, 'x.eid'), isMalformed, `nibble ${nibble} = ${v}`);
      runs++;
    }
  }
  assert.equal(runs, 32 * 6);
  for (const length of [0, 15, 17]) {
    assert.throws(() => eidFromBcd(new Uint8Array(length), 'x.eid'), isMalformed, `length ${length}`);
  }
  try {
    eidFromBcd(Uint8Array.of(...good.subarray(0, 15), 0x3f), 'Request.eid');
    assert.fail('expected MalformedMessage');
  } catch (e) {
    assert.ok(e instanceof MalformedMessage);
    assert.equal(e.field, 'Request.eid');
  }
});

interface PysimEidFile {
  tests: { function: string; input: string; expected: boolean | string }[];
}

test('pySim EID checksum cases (cross-check, read from shared/vectors outside the repo)', (t) => {
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
  const file = path.join(repoRoot, '..', 'shared', 'vectors', 'pysim', 'eid_checksum.json');
  if (!existsSync(file)) {
    t.skip('shared/vectors/pysim/eid_checksum.json not present');
    return;
  }
  const data = JSON.parse(readFileSync(file, 'utf8')) as PysimEidFile;
  let runs = 0;
  for (const c of data.tests) {
    const input = String(c.input);
    if (c.function === 'verify_eid_checksum') {
      assert.equal(eidChecksumValid(input), c.expected, `verify ${input}`);
    } else if (c.function === 'compute_eid_checksum') {
      assert.ok(input.length === 30 || input.length === 32, `compute ${input}`);
      assert.equal(makeEid(input.slice(0, 30)), c.expected, `compute ${input}`);
    } else {
      assert.fail(`unknown function ${c.function}`);
    }
    runs++;
  }
  assert.ok(runs > 0, 'no test cases ran');
  t.diagnostic(`pysim eid_checksum.json: ${runs} cases`);
});
