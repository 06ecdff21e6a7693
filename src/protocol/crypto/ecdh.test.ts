/**
 * ECDH against Project Wycheproof (test/vectors/wycheproof, Apache-2.0) and RFC 5903 / RFC 7027.
 *
 * Our import policy: a peer public key is accepted only as an uncompressed point on one of our
 * curves (publicKeyFromPoint), or, for SPKI input, as the exact DER SubjectPublicKeyInfo with a
 * named curve and an uncompressed point (publicKeyFromSpki). Everything else is a CryptoError.
 * So Wycheproof "valid" cases must give the expected shared secret, and both "invalid" and
 * "acceptable" cases (BER variants, explicit/unused curve parameters, compressed points) must be
 * rejected with a CryptoError.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CryptoError } from '../errors.ts';
import { CURVE_ORDER, CURVES, type Curve } from './curves.ts';
import { ecdh } from './ecdh.ts';
import {
  generateKeyPair,
  privateKeyFromScalar,
  publicKeyFromPoint,
  publicKeyFromSpki,
  publicPointOf,
} from './keys.ts';

type Result = 'valid' | 'invalid' | 'acceptable';
interface EcdhCase {
  tcId: number;
  comment: string;
  flags: string[];
  public: string;
  private: string;
  shared: string;
  result: Result;
}
interface EcdhFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: { curve: string; encoding: string; tests: EcdhCase[] }[];
}
interface RfcFile {
  tests: {
    tcId: number;
    curve: string;
    private_a: string;
    public_a: string;
    private_b: string;
    public_b: string;
    shared_x: string;
  }[];
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function load<T>(path: string): T {
  return JSON.parse(readFileSync(new URL(`../../../test/vectors/${path}`, import.meta.url), 'utf8')) as T;
}

const CURVE_NAME: Record<string, Curve> = { secp256r1: 'p256', brainpoolP256r1: 'brainpoolP256r1' };

/** Wycheproof scalars are ASN.1 INTEGER contents: maybe a leading 00, maybe shorter than 32 bytes. */
function scalar32(hexScalar: string): Uint8Array {
  let bytes = hex(hexScalar);
  while (bytes.length > 32 && bytes[0] === 0) bytes = bytes.subarray(1);
  assert.ok(bytes.length <= 32, `scalar too long: ${hexScalar}`);
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

function runFile(
  file: string,
  curve: Curve,
  importPublic: (bytes: Uint8Array) => ReturnType<typeof publicKeyFromPoint>,
): Record<Result, number> {
  const data = load<EcdhFile>(`wycheproof/${file}`);
  assert.equal(data.algorithm, 'ECDH');
  const counts: Record<Result, number> = { valid: 0, invalid: 0, acceptable: 0 };
  for (const group of data.testGroups) {
    assert.equal(CURVE_NAME[group.curve], curve);
    for (const c of group.tests) {
      const label = `tcId ${c.tcId} (${c.result}: ${c.comment}; ${c.flags.join(',')})`;
      const privateKey = privateKeyFromScalar(curve, scalar32(c.private));
      const agree = () => ecdh(privateKey, importPublic(hex(c.public)));
      if (c.result === 'valid') {
        assert.equal(Buffer.from(agree()).toString('hex'), c.shared, label);
      } else {
        assert.throws(agree, CryptoError, label);
      }
      counts[c.result]++;
    }
  }
  const total = counts.valid + counts.invalid + counts.acceptable;
  assert.ok(total > 0, 'no test cases ran');
  assert.equal(total, data.numberOfTests);
  return counts;
}

for (const [file, curve] of [
  ['ecdh_secp256r1_test.json', 'p256'],
  ['ecdh_brainpoolP256r1_test.json', 'brainpoolP256r1'],
] as const) {
  test(`Wycheproof ${file} (SPKI public keys)`, (t) => {
    const counts = runFile(file, curve, publicKeyFromSpki);
    t.diagnostic(`${file}: ${JSON.stringify(counts)}`);
  });
}

test('Wycheproof ecdh_secp256r1_ecpoint_test.json (raw points; compressed points rejected)', (t) => {
  const counts = runFile('ecdh_secp256r1_ecpoint_test.json', 'p256', (bytes) =>
    publicKeyFromPoint('p256', bytes),
  );
  t.diagnostic(`ecdh_secp256r1_ecpoint_test.json: ${JSON.stringify(counts)}`);
});

test('RFC 5903 §8.1 and RFC 7027 A.1 ECDH known answers', () => {
  const data = load<RfcFile>('rfc/ecdh_p256_brainpoolp256r1_rfc5903_rfc7027.json');
  let runs = 0;
  for (const v of data.tests) {
    const curve = CURVE_NAME[v.curve];
    assert.ok(curve, `unknown curve ${v.curve}`);
    const a = privateKeyFromScalar(curve, hex(v.private_a));
    const b = privateKeyFromScalar(curve, hex(v.private_b));
    assert.deepEqual(publicPointOf(a), hex(v.public_a), `tcId ${v.tcId} public_a`);
    assert.deepEqual(publicPointOf(b), hex(v.public_b), `tcId ${v.tcId} public_b`);
    const ab = ecdh(a, publicKeyFromPoint(curve, hex(v.public_b)));
    const ba = ecdh(b, publicKeyFromPoint(curve, hex(v.public_a)));
    assert.equal(ab.length, 32);
    assert.deepEqual(ab, hex(v.shared_x), `tcId ${v.tcId} a->b`);
    assert.deepEqual(ba, hex(v.shared_x), `tcId ${v.tcId} b->a`);
    runs++;
  }
  assert.equal(runs, 2);
});

test('one-time key pairs agree on both curves; mixed curves are a CryptoError', () => {
  for (const curve of CURVES) {
    const chip = generateKeyPair(curve);
    const sm = generateKeyPair(curve);
    const s1 = ecdh(chip.privateKey, publicKeyFromPoint(curve, sm.publicPoint));
    const s2 = ecdh(sm.privateKey, publicKeyFromPoint(curve, chip.publicPoint));
    assert.equal(s1.length, 32);
    assert.deepEqual(s1, s2);
  }
  const p = generateKeyPair('p256');
  const b = generateKeyPair('brainpoolP256r1');
  assert.throws(() => ecdh(p.privateKey, b.publicKey), CryptoError);
  // A P-256 point is (almost surely) not on brainpoolP256r1.
  assert.throws(() => publicKeyFromPoint('brainpoolP256r1', p.publicPoint), CryptoError);
});

test('privateKeyFromScalar accepts exactly 32-byte scalars in [1, n-1]', () => {
  const be32 = (n: bigint) => hex(n.toString(16).padStart(64, '0'));
  for (const curve of CURVES) {
    const n = CURVE_ORDER[curve];
    for (const ok of [1n, 2n, n - 1n]) assert.doesNotThrow(() => privateKeyFromScalar(curve, be32(ok)));
    for (const bad of [0n, n, n + 1n, (1n << 256n) - 1n]) {
      assert.throws(
        () => privateKeyFromScalar(curve, be32(bad)),
        (e: unknown) => e instanceof CryptoError && e.code === 'InvalidKey',
        `${curve} ${bad}`,
      );
    }
    assert.throws(() => privateKeyFromScalar(curve, new Uint8Array(31).fill(1)), CryptoError);
    assert.throws(() => privateKeyFromScalar(curve, new Uint8Array(33).fill(1)), CryptoError);
    assert.throws(() => privateKeyFromScalar(curve, new Uint8Array(0)), CryptoError);
  }
});

test('publicKeyFromPoint and publicKeyFromSpki reject malformed input with CryptoError', () => {
  const { publicPoint } = generateKeyPair('p256');
  const compressed = Uint8Array.of(2 + (publicPoint[64]! & 1), ...publicPoint.subarray(1, 33));
  for (const bad of [
    compressed,
    publicPoint.subarray(0, 64),
    Uint8Array.of(...publicPoint, 0),
    Uint8Array.of(0x06, ...publicPoint.subarray(1)),
    new Uint8Array(65),
  ]) {
    assert.throws(() => publicKeyFromPoint('p256', bad), CryptoError);
  }
  for (const bad of [new Uint8Array(0), publicPoint, new Uint8Array(91)]) {
    assert.throws(() => publicKeyFromSpki(bad), CryptoError);
  }
});
