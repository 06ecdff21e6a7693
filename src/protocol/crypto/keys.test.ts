/**
 * keys.ts builds and reads keys through DER (SPKI, PKCS#8): the points and keys must agree with
 * node's own SPKI export and, for P-256, with @noble/curves as an independent oracle.
 */
import assert from 'node:assert/strict';
import { type createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { p256 } from '@noble/curves/nist.js';
import fc from 'fast-check';
import { CURVES, OPENSSL_NAME } from './curves.ts';
import { generateKeyPair, privateKeyFromScalar, publicKeyFromPoint, publicPointOf, spkiDer } from './keys.ts';

/** The point as the SPKI DER export gives it (the last 65 bytes of the SubjectPublicKeyInfo). */
function pointFromSpki(key: ReturnType<typeof createPublicKey>): Uint8Array {
  const spki = key.export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 65));
}

describe('EC keys', () => {
  for (const curve of CURVES) {
    it(`${curve}: publicPointOf agrees with the SPKI export, and publicKeyFromPoint gives that key back`, () => {
      for (let i = 0; i < 20; i++) {
        const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: OPENSSL_NAME[curve] });
        const point = publicPointOf(publicKey);
        assert.deepEqual(point, pointFromSpki(publicKey));
        assert.deepEqual(publicPointOf(privateKey), point);
        const rebuilt = publicKeyFromPoint(curve, point);
        assert.deepEqual(rebuilt.export({ format: 'der', type: 'spki' }), Buffer.from(spkiDer(curve, point)));
      }
    });
  }

  it('p256: coordinates with a leading zero byte keep their place in the point', () => {
    const seen = { x: false, y: false };
    for (let i = 0; i < 20_000 && !(seen.x && seen.y); i++) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const spkiPoint = pointFromSpki(publicKey);
      const x = spkiPoint[1] === 0;
      const y = spkiPoint[33] === 0;
      if ((x && !seen.x) || (y && !seen.y)) {
        assert.deepEqual(publicPointOf(publicKey), spkiPoint);
        assert.deepEqual(publicPointOf(publicKeyFromPoint('p256', spkiPoint)), spkiPoint);
        seen.x ||= x;
        seen.y ||= y;
      }
    }
    assert.deepEqual(seen, { x: true, y: true });
  });

  it('p256: a point off the curve is refused (InvalidPoint)', () => {
    const { publicPoint } = generateKeyPair('p256');
    const bad = Uint8Array.from(publicPoint);
    bad[64] = (bad[64] ?? 0) ^ 1;
    assert.throws(() => publicKeyFromPoint('p256', bad), { code: 'InvalidPoint' });
  });

  it('p256 property: the point of any scalar is the one @noble/curves computes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(31), (raw, zeros) => {
        // Scalars with leading zero bytes give points of every shape; keep d in [1, n-1].
        const d = Uint8Array.from(raw);
        d.fill(0, 0, zeros % 4);
        const n = p256.Point.CURVE().n;
        const scalar = (BigInt(`0x${Buffer.from(d).toString('hex')}`) % (n - 1n)) + 1n;
        const dBytes = Buffer.from(scalar.toString(16).padStart(64, '0'), 'hex');
        const expected = p256.getPublicKey(dBytes, false);
        const key = privateKeyFromScalar('p256', dBytes);
        assert.deepEqual(publicPointOf(key), expected);
        assert.deepEqual(publicPointOf(publicKeyFromPoint('p256', expected)), expected);
      }),
      { numRuns: 50 },
    );
  });
});
