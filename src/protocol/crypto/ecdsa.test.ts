/**
 * ECDSA-SHA256 against Project Wycheproof (test/vectors/wycheproof, Apache-2.0) on both curves,
 * DER signatures (X.509) and plain r||s (IEEE P1363, protocol messages).
 *
 * Policy for Wycheproof "acceptable" cases: we accept only what is "valid", so an acceptable
 * signature must NOT verify. (The current snapshot has none for these files; the counts show it.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CURVES, type Curve } from './curves.ts';
import { ecdsaSign, ecdsaVerify, type SignatureFormat } from './ecdsa.ts';
import { generateKeyPair, publicKeyFromPoint, publicKeyFromSpki, publicPointOf } from './keys.ts';
import { keySigner } from './signer.ts';

type Result = 'valid' | 'invalid' | 'acceptable';
interface EcdsaCase {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: Result;
}
interface EcdsaGroup {
  publicKey: { curve: string; uncompressed: string };
  publicKeyDer: string;
  sha: string;
  tests: EcdsaCase[];
}
interface EcdsaFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: EcdsaGroup[];
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function loadVectors(name: string): EcdsaFile {
  const url = new URL(`../../../test/vectors/wycheproof/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as EcdsaFile;
}

const WYCHEPROOF_CURVE: Record<string, Curve> = { secp256r1: 'p256', brainpoolP256r1: 'brainpoolP256r1' };

const FILES: { file: string; curve: Curve; format: SignatureFormat }[] = [
  { file: 'ecdsa_secp256r1_sha256_test.json', curve: 'p256', format: 'der' },
  { file: 'ecdsa_brainpoolP256r1_sha256_test.json', curve: 'brainpoolP256r1', format: 'der' },
  { file: 'ecdsa_secp256r1_sha256_p1363_test.json', curve: 'p256', format: 'plain' },
  { file: 'ecdsa_brainpoolP256r1_sha256_p1363_test.json', curve: 'brainpoolP256r1', format: 'plain' },
];

for (const { file, curve, format } of FILES) {
  test(`Wycheproof ${file} (${format})`, (t) => {
    const data = loadVectors(file);
    assert.equal(data.algorithm, 'ECDSA');
    const counts: Record<Result, number> = { valid: 0, invalid: 0, acceptable: 0 };
    for (const group of data.testGroups) {
      assert.equal(group.sha, 'SHA-256');
      assert.equal(WYCHEPROOF_CURVE[group.publicKey.curve], curve);
      const point = hex(group.publicKey.uncompressed);
      const key = publicKeyFromPoint(curve, point);
      // The group's SPKI must give the same key through the strict SPKI import.
      assert.deepEqual(publicPointOf(publicKeyFromSpki(hex(group.publicKeyDer))), point);
      for (const c of group.tests) {
        const ok = ecdsaVerify(key, hex(c.msg), hex(c.sig), format);
        assert.equal(ok, c.result === 'valid', `tcId ${c.tcId} (${c.result}: ${c.comment}) verified=${ok}`);
        counts[c.result]++;
      }
    }
    const total = counts.valid + counts.invalid + counts.acceptable;
    assert.ok(total > 0, 'no test cases ran');
    assert.equal(total, data.numberOfTests);
    t.diagnostic(`${file}: ${JSON.stringify(counts)}`);
  });
}

for (const curve of CURVES) {
  test(`ECDSA sign/verify round trip on ${curve}`, () => {
    const pair = generateKeyPair(curve);
    const data = new TextEncoder().encode(`HandoverCommandData on ${curve}`);
    let runs = 0;
    for (const format of ['plain', 'der'] as const) {
      const sig = ecdsaSign(pair.privateKey, data, format);
      if (format === 'plain') assert.equal(sig.length, 64);
      assert.ok(ecdsaVerify(pair.publicKey, data, sig, format));
      // A key rebuilt from the carried point verifies too.
      assert.ok(ecdsaVerify(publicKeyFromPoint(curve, pair.publicPoint), data, sig, format));
      // The other format does not.
      assert.equal(ecdsaVerify(pair.publicKey, data, sig, format === 'plain' ? 'der' : 'plain'), false);
      // Every single-bit change of the signature fails.
      for (let bit = 0; bit < sig.length * 8; bit++) {
        const bad = Uint8Array.from(sig);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        assert.equal(ecdsaVerify(pair.publicKey, data, bad, format), false, `${format} sig bit ${bit}`);
        runs++;
      }
      // Every single-bit change of the data fails.
      for (let bit = 0; bit < data.length * 8; bit++) {
        const bad = Uint8Array.from(data);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        assert.equal(ecdsaVerify(pair.publicKey, bad, sig, format), false, `${format} data bit ${bit}`);
        runs++;
      }
      // Another key does not verify it.
      assert.equal(ecdsaVerify(generateKeyPair(curve).publicKey, data, sig, format), false);
    }
    assert.ok(runs > 0);
  });
}

test('ECDSA: wrong lengths and the other curve are rejected, never thrown', () => {
  const p = generateKeyPair('p256');
  const b = generateKeyPair('brainpoolP256r1');
  const data = Uint8Array.of(1, 2, 3);
  const sig = ecdsaSign(p.privateKey, data);
  assert.equal(ecdsaVerify(b.publicKey, data, sig), false);
  assert.equal(ecdsaVerify(p.publicKey, data, sig.subarray(0, 63)), false);
  assert.equal(ecdsaVerify(p.publicKey, data, Uint8Array.of(...sig, 0)), false);
  assert.equal(ecdsaVerify(p.publicKey, data, new Uint8Array(0)), false);
  assert.equal(ecdsaVerify(p.publicKey, data, new Uint8Array(64)), false);
  assert.equal(ecdsaVerify(p.publicKey, data, Uint8Array.of(0x30, 0x00), 'der'), false);
});

test('keySigner signs plain r||s that verifies under its public point', () => {
  for (const curve of CURVES) {
    const pair = generateKeyPair(curve);
    const signer = keySigner(pair.privateKey);
    assert.equal(signer.curve, curve);
    assert.deepEqual(signer.publicPoint, pair.publicPoint);
    const data = Uint8Array.of(0xbf, 0x20, 0x00);
    const sig = signer.sign(data);
    assert.equal(sig.length, 64);
    assert.ok(ecdsaVerify(publicKeyFromPoint(curve, signer.publicPoint), data, sig));
  }
});
