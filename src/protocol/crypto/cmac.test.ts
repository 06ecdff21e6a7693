/**
 * AES-CMAC against Project Wycheproof (test/vectors/wycheproof, Apache-2.0; 128/192/256-bit
 * keys) and RFC 4493 §4. Policy: "valid" must verify and reproduce the tag; "invalid" and
 * "acceptable" must not verify. A key of a size AES does not have is a CryptoError (InvalidKey)
 * from aesCmac, and aesCmacVerify never returns true for it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CryptoError } from '../errors.ts';
import { aesCmac, aesCmacVerify } from './cmac.ts';

type Result = 'valid' | 'invalid' | 'acceptable';
interface MacFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: {
    keySize: number;
    tagSize: number;
    tests: { tcId: number; comment: string; key: string; msg: string; tag: string; result: Result }[];
  }[];
}
interface RfcFile {
  key: string;
  tests: { tcId: number; comment: string; msg: string; tag: string }[];
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function load<T>(path: string): T {
  return JSON.parse(readFileSync(new URL(`../../../test/vectors/${path}`, import.meta.url), 'utf8')) as T;
}

const isInvalidKey = (e: unknown) => e instanceof CryptoError && e.code === 'InvalidKey';

/** True, false, or 'threw' (only a CryptoError is allowed to escape). */
function verifyOutcome(
  key: Uint8Array,
  msg: Uint8Array,
  tag: Uint8Array,
  tagLength: number,
): boolean | 'threw' {
  try {
    return aesCmacVerify(key, msg, tag, tagLength);
  } catch (e) {
    assert.ok(isInvalidKey(e), `unexpected error ${String(e)}`);
    return 'threw';
  }
}

test('Wycheproof aes_cmac_test.json', (t) => {
  const data = load<MacFile>('wycheproof/aes_cmac_test.json');
  assert.equal(data.algorithm, 'AES-CMAC');
  const counts: Record<Result, number> = { valid: 0, invalid: 0, acceptable: 0 };
  const byKeySize: Record<string, number> = {};
  for (const group of data.testGroups) {
    const tagLength = group.tagSize / 8;
    for (const c of group.tests) {
      const label = `tcId ${c.tcId} (${c.result}: ${c.comment}, key ${group.keySize} bits)`;
      const key = hex(c.key);
      const msg = hex(c.msg);
      const tag = hex(c.tag);
      const outcome = verifyOutcome(key, msg, tag, tagLength);
      if (c.result === 'valid') {
        assert.equal(outcome, true, label);
        assert.deepEqual(aesCmac(key, msg).subarray(0, tagLength), tag, label);
      } else {
        assert.notEqual(outcome, true, label);
      }
      if (![16, 24, 32].includes(key.length)) assert.throws(() => aesCmac(key, msg), isInvalidKey, label);
      counts[c.result]++;
      byKeySize[group.keySize] = (byKeySize[group.keySize] ?? 0) + 1;
    }
  }
  const total = counts.valid + counts.invalid + counts.acceptable;
  assert.ok(total > 0, 'no test cases ran');
  assert.equal(total, data.numberOfTests);
  for (const size of ['128', '192', '256']) assert.ok((byKeySize[size] ?? 0) > 0, `no ${size}-bit keys`);
  t.diagnostic(`aes_cmac_test.json: ${JSON.stringify(counts)} by key bits ${JSON.stringify(byKeySize)}`);
});

test('truncated tags (Wycheproof valid cases): prefix verifies at its length only', () => {
  const data = load<MacFile>('wycheproof/aes_cmac_test.json');
  let runs = 0;
  for (const group of data.testGroups) {
    for (const c of group.tests) {
      if (c.result !== 'valid' || group.tagSize !== 128) continue;
      const key = hex(c.key);
      const msg = hex(c.msg);
      const tag = hex(c.tag);
      for (const length of [1, 4, 8, 12, 15]) {
        const prefix = tag.subarray(0, length);
        assert.equal(aesCmacVerify(key, msg, prefix, length), true, `tcId ${c.tcId} /${length}`);
        assert.equal(aesCmacVerify(key, msg, prefix), false, `tcId ${c.tcId} /${length} as a full tag`);
        assert.equal(aesCmacVerify(key, msg, tag, length), false, `tcId ${c.tcId} full tag at /${length}`);
        const flipped = Uint8Array.from(prefix);
        flipped[length - 1]! ^= 0x01;
        assert.equal(aesCmacVerify(key, msg, flipped, length), false, `tcId ${c.tcId} /${length} flipped`);
        runs++;
      }
    }
  }
  assert.ok(runs > 0, 'no test cases ran');
});

test('RFC 4493 §4 AES-128-CMAC examples', () => {
  const data = load<RfcFile>('rfc/rfc4493_aes_cmac.json');
  const key = hex(data.key);
  let runs = 0;
  for (const c of data.tests) {
    const msg = hex(c.msg);
    const tag = hex(c.tag);
    assert.deepEqual(aesCmac(key, msg), tag, `tcId ${c.tcId} (${c.comment})`);
    assert.equal(aesCmacVerify(key, msg, tag), true);
    // BSP (SGP.22) carries 8-byte MACs.
    assert.equal(aesCmacVerify(key, msg, tag.subarray(0, 8), 8), true);
    for (let bit = 0; bit < 128; bit++) {
      const bad = Uint8Array.from(tag);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(aesCmacVerify(key, msg, bad), false, `tcId ${c.tcId} bit ${bit}`);
    }
    runs++;
  }
  assert.equal(runs, 4);
});

test('aesCmacVerify rejects tag lengths outside 1..16 and key sizes AES does not have', () => {
  const key = new Uint8Array(16);
  const msg = Uint8Array.of(1, 2, 3);
  const tag = aesCmac(key, msg);
  assert.equal(aesCmacVerify(key, msg, new Uint8Array(0), 0), false);
  assert.equal(aesCmacVerify(key, msg, Uint8Array.of(...tag, 0), 17), false);
  assert.equal(aesCmacVerify(key, msg, tag.subarray(0, 8), 16), false);
  for (const size of [0, 8, 15, 17, 20, 33]) {
    assert.throws(() => aesCmac(new Uint8Array(size), msg), isInvalidKey, `key of ${size} bytes`);
  }
});
