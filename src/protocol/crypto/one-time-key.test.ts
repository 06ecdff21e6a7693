/**
 * One-time keys as raw values (one-time-key.ts) against Project Wycheproof (test/vectors/wycheproof,
 * Apache-2.0), RFC 5903 / RFC 7027 known answers, and the KeyObject path of keys.ts and ecdh.ts as
 * an independent oracle; and otSK.chip's PKCS#8 PEM as OpenSSL reads and writes it.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CryptoError } from '../errors.ts';
import { CURVE_ORDER, CURVES, type Curve, OPENSSL_NAME } from './curves.ts';
import { ecdh } from './ecdh.ts';
import { privateKeyFromScalar, privateKeyToPem, publicKeyFromPoint, publicPointOf, spkiDer } from './keys.ts';
import {
  ecPkcs8Parts,
  generateOneTimeKey,
  oneTimeKeyFromPem,
  oneTimeKeyToPem,
  oneTimeSharedSecret,
} from './one-time-key.ts';
import { cryptoOpCounts } from './op-counts.ts';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const load = <T>(path: string): T =>
  JSON.parse(readFileSync(new URL(`../../../test/vectors/${path}`, import.meta.url), 'utf8')) as T;

interface EcdhFile {
  numberOfTests: number;
  testGroups: {
    tests: {
      tcId: number;
      comment: string;
      public: string;
      private: string;
      shared: string;
      result: string;
    }[];
  }[];
}

/** Wycheproof scalars are INTEGER contents: maybe a leading 00, maybe shorter than 32 bytes. */
function scalar32(hexScalar: string): Uint8Array {
  let bytes = hex(hexScalar);
  while (bytes.length > 32 && bytes[0] === 0) bytes = bytes.subarray(1);
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

const isCryptoError = (e: unknown) => e instanceof CryptoError;

type Case = EcdhFile['testGroups'][number]['tests'][number];

/** Valid cases must give their shared secret, every other case a CryptoError; counts each kind. */
function checkCases(
  cases: readonly Case[],
  run: (c: Case) => Uint8Array,
): { valid: number; refused: number } {
  const n = { valid: 0, refused: 0 };
  for (const c of cases) {
    const label = `tcId ${c.tcId} (${c.result}: ${c.comment})`;
    if (c.result === 'valid') {
      assert.equal(Buffer.from(run(c)).toString('hex'), c.shared, label);
      n.valid++;
    } else {
      assert.throws(() => run(c), isCryptoError, label);
      n.refused++;
    }
  }
  return n;
}

/** The KeyObject path: what the shared secret must be. */
const oracle = (curve: Curve, scalar: Uint8Array, point: Uint8Array) =>
  ecdh(privateKeyFromScalar(curve, scalar), publicKeyFromPoint(curve, point));

describe('one-time keys', () => {
  it('Wycheproof ecdh_secp256r1_ecpoint_test.json: valid cases agree, every other case is a CryptoError', () => {
    const data = load<EcdhFile>('wycheproof/ecdh_secp256r1_ecpoint_test.json');
    const { valid, refused } = checkCases(
      data.testGroups.flatMap((g) => g.tests),
      (c) => oneTimeSharedSecret('p256', scalar32(c.private), hex(c.public)),
    );
    assert.equal(valid + refused, data.numberOfTests);
    assert.ok(valid > 0 && refused > 0);
  });

  for (const [file, curve] of [
    ['ecdh_secp256r1_test.json', 'p256'],
    ['ecdh_brainpoolP256r1_test.json', 'brainpoolP256r1'],
  ] as const) {
    it(`Wycheproof ${file}: every case whose SPKI is a plain named-curve point, on the raw point`, () => {
      const data = load<EcdhFile>(`wycheproof/${file}`);
      const plain = data.testGroups
        .flatMap((g) => g.tests)
        .filter((c) => {
          const spki = hex(c.public);
          return (
            spki.length > 65 && Buffer.from(spkiDer(curve, spki.subarray(spki.length - 65))).equals(spki)
          );
        });
      const { valid, refused } = checkCases(plain, (c) =>
        oneTimeSharedSecret(curve, scalar32(c.private), hex(c.public).subarray(-65)),
      );
      // Both kinds ran: points off the curve are among the invalid cases of both files.
      assert.ok(valid > 50, `${valid} valid cases`);
      assert.ok(refused > 0, `${refused} refused cases`);
    });
  }

  it('RFC 5903 §8.1 and RFC 7027 A.1 known answers', () => {
    type Rfc = Record<'curve' | 'private_a' | 'public_a' | 'private_b' | 'public_b' | 'shared_x', string>;
    const data = load<{ tests: Rfc[] }>('rfc/ecdh_p256_brainpoolp256r1_rfc5903_rfc7027.json');
    const names: Record<string, Curve> = { secp256r1: 'p256', brainpoolP256r1: 'brainpoolP256r1' };
    assert.equal(data.tests.length, 2);
    for (const v of data.tests) {
      const curve = names[v.curve];
      assert.ok(curve);
      assert.deepEqual(oneTimeSharedSecret(curve, hex(v.private_a), hex(v.public_b)), hex(v.shared_x));
      assert.deepEqual(oneTimeSharedSecret(curve, hex(v.private_b), hex(v.public_a)), hex(v.shared_x));
    }
  });

  for (const curve of CURVES) {
    it(`${curve}: generated pairs are consistent (point of the scalar) and agree with the KeyObject path`, () => {
      // 300 keys: about one scalar in 256 has a leading zero byte, which must still be 32 bytes.
      for (let i = 0; i < (curve === 'p256' ? 300 : 40); i++) {
        const a = generateOneTimeKey(curve);
        const b = generateOneTimeKey(curve);
        assert.equal(a.scalar.length, 32);
        assert.equal(a.publicPoint.length, 65);
        assert.deepEqual(publicPointOf(privateKeyFromScalar(curve, a.scalar)), a.publicPoint);
        const ab = oneTimeSharedSecret(curve, a.scalar, b.publicPoint);
        assert.equal(ab.length, 32);
        assert.deepEqual(ab, oneTimeSharedSecret(curve, b.scalar, a.publicPoint));
        assert.deepEqual(ab, oracle(curve, a.scalar, b.publicPoint));
      }
    });

    it(`${curve}: any scalar in [1, n-1] (leading zeros included) derives what the KeyObject path derives`, () => {
      const peer = generateKeyPairSync('ec', { namedCurve: OPENSSL_NAME[curve] }).publicKey;
      const point = publicPointOf(peer);
      const n = CURVE_ORDER[curve];
      fc.assert(
        fc.property(fc.bigInt({ min: 1n, max: n - 1n }), (d) => {
          const scalar = hex(d.toString(16).padStart(64, '0'));
          assert.deepEqual(oneTimeSharedSecret(curve, scalar, point), oracle(curve, scalar, point));
        }),
        { numRuns: curve === 'p256' ? 100 : 20 },
      );
    });

    it(`${curve}: scalars out of range, points of the wrong shape or off the curve are CryptoErrors`, () => {
      const { scalar, publicPoint } = generateOneTimeKey(curve);
      const be = (v: bigint) => hex(v.toString(16).padStart(64, '0'));
      for (const bad of [
        be(0n),
        be(CURVE_ORDER[curve]),
        new Uint8Array(31).fill(1),
        new Uint8Array(33).fill(1),
      ]) {
        assert.throws(() => oneTimeSharedSecret(curve, bad, publicPoint), isCryptoError);
      }
      const offCurve = Uint8Array.from(publicPoint);
      offCurve[64]! ^= 1;
      const compressed = Uint8Array.of(2 + (publicPoint[64]! & 1), ...publicPoint.subarray(1, 33));
      for (const bad of [offCurve, compressed, publicPoint.subarray(0, 64), new Uint8Array(65)]) {
        assert.throws(
          () => oneTimeSharedSecret(curve, scalar, bad),
          (e: unknown) => e instanceof CryptoError && e.code === 'InvalidPoint',
        );
      }
    });

    it(`${curve}: otSK.chip PEM is the PKCS#8 OpenSSL writes, and reads back`, () => {
      const key = generateOneTimeKey(curve);
      const pem = oneTimeKeyToPem(key);
      // OpenSSL reads it as the same key and writes the very same PEM.
      const k = createPrivateKey(pem);
      assert.equal(privateKeyToPem(k), pem);
      assert.deepEqual(publicPointOf(k), key.publicPoint);
      const back = oneTimeKeyFromPem(pem);
      assert.equal(back.curve, curve);
      assert.deepEqual(back.scalar, key.scalar);
      // And a PKCS#8 key written by OpenSSL reads too.
      const theirs = generateKeyPairSync('ec', { namedCurve: OPENSSL_NAME[curve] }).privateKey;
      const parts = oneTimeKeyFromPem(privateKeyToPem(theirs));
      assert.deepEqual(publicPointOf(privateKeyFromScalar(curve, parts.scalar)), publicPointOf(theirs));
    });
  }

  it('oneTimeKeyFromPem refuses what is not a PKCS#8 EC key with a named curve and a scalar in range', () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const sec1 = k.export({ format: 'pem', type: 'sec1' }).toString();
    const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const zero = oneTimeKeyToPem({
      curve: 'p256',
      scalar: new Uint8Array(32),
      publicPoint: new Uint8Array(65),
    });
    for (const bad of [
      sec1,
      ed,
      zero,
      '',
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    ]) {
      assert.throws(() => oneTimeKeyFromPem(bad), isCryptoError);
    }
    assert.equal(ecPkcs8Parts(new Uint8Array([0x30, 0x00])), undefined);
  });

  it('counts one keygen per key pair and one ECDH per shared secret', () => {
    const before = cryptoOpCounts();
    const a = generateOneTimeKey('p256');
    const b = generateOneTimeKey('p256');
    oneTimeSharedSecret('p256', a.scalar, b.publicPoint);
    const after = cryptoOpCounts();
    assert.equal(after.keygen - before.keygen, 2);
    assert.equal(after.ecdh - before.ecdh, 1);
  });
});
