/**
 * EC keys as node:crypto KeyObjects, built from and exported to the raw forms the protocol
 * carries (uncompressed points 04||X||Y, 32-byte scalars). Node's JWK has no brainpool, so the
 * SPKI and PKCS#8 DER are built here.
 *
 * P-256 public keys are built from JWK, which OpenSSL 3 does faster than from SPKI DER (106
 * against 163 µs each, measured here; 200,000 imports in a loop all returned). Keys are never
 * exported as JWK: on Node 20.20.2 / OpenSSL 3.0.19, `export({ format: 'jwk' })` of a freshly
 * generated P-256 key at some point does not return: a plain loop of generateKeyPairSync and that
 * export, no project code involved, did not reach 10,000 keys in 40 s, where the loop without the
 * export makes 100,000 in 5 s. With it, two of six runs of the crypto benchmark hung (one hung
 * process looked at was asleep), none of six without.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { children, readOid, readSingle } from '../der/reader.ts';
import { sameTag, U } from '../der/tag.ts';
import { bitString, integer, octets, oid, sequence } from '../der/writer.ts';
import { CryptoError, HandoverError } from '../errors.ts';
import {
  CURVE_OID,
  CURVE_ORDER,
  CURVES,
  type Curve,
  curveFromOid,
  EC_PUBLIC_KEY_OID,
  OPENSSL_NAME,
} from './curves.ts';
import { countCryptoOp } from './op-counts.ts';

export interface EcKeyPair {
  readonly curve: Curve;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Uncompressed point, 65 bytes. */
  readonly publicPoint: Uint8Array;
}

export function generateKeyPair(curve: Curve): EcKeyPair {
  countCryptoOp('keygen');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: OPENSSL_NAME[curve] });
  return { curve, privateKey, publicKey, publicPoint: publicPointOf(publicKey) };
}

export function spkiDer(curve: Curve, point: Uint8Array): Uint8Array {
  return sequence(sequence(oid(EC_PUBLIC_KEY_OID), oid(CURVE_OID[curve])), bitString(point));
}

/**
 * Public KeyObjects by curve and point, at most KEY_CACHE_SIZE (the oldest dropped first): the
 * same keys (CI, EUM, peer SMs) come back for every message, and building a KeyObject cost more
 * than the verification itself in the fleet benchmark (BENCHMARKS.md). KeyObjects are immutable.
 */
const KEY_CACHE_SIZE = 1024;
const keyCache = new Map<string, KeyObject>();

/** A public key from an uncompressed point; the point must lie on the curve (OpenSSL checks it). */
export function publicKeyFromPoint(curve: Curve, point: Uint8Array): KeyObject {
  checkUncompressedPoint(point);
  const id = `${curve}:${Buffer.from(point.buffer, point.byteOffset, point.byteLength).toString('hex')}`;
  const cached = keyCache.get(id);
  if (cached) return cached;
  let key: KeyObject;
  try {
    key =
      curve === 'p256'
        ? createPublicKey({ key: p256Jwk(point), format: 'jwk' })
        : createPublicKey({ key: Buffer.from(spkiDer(curve, point)), format: 'der', type: 'spki' });
  } catch {
    throw new CryptoError('InvalidPoint', `public key is not a point on ${curve}`);
  }
  if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!);
  keyCache.set(id, key);
  return key;
}

/** The JWK of a P-256 point (65 bytes, checked by the caller), plus `d` for a private key. */
export function p256Jwk(point: Uint8Array, scalar?: Uint8Array): JsonWebKey {
  const b64u = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
  return {
    kty: 'EC',
    crv: 'P-256',
    x: b64u(point.subarray(1, 33)),
    y: b64u(point.subarray(33, 65)),
    ...(scalar && { d: b64u(scalar) }),
  };
}

/**
 * A public key from a DER SubjectPublicKeyInfo, strictly: id-ecPublicKey, one of our named
 * curves, an uncompressed point on that curve, and exactly the DER encoding. Explicit curve
 * parameters, compressed points and BER variants are rejected (OpenSSL alone accepts some).
 */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  if (spki.length > 65) {
    const point = spki.subarray(spki.length - 65);
    for (const curve of CURVES) {
      if (Buffer.from(spkiDer(curve, point)).equals(spki)) return publicKeyFromPoint(curve, point);
    }
  }
  throw new CryptoError(
    'InvalidKey',
    'public key must be a DER SubjectPublicKeyInfo with a named curve (p256, brainpoolP256r1) and an uncompressed point',
  );
}

/** The shape of a public point: 65 bytes, 04‖X‖Y (whether it lies on a curve is OpenSSL's check). */
export function checkUncompressedPoint(point: Uint8Array): void {
  if (point.length !== 65 || point[0] !== 0x04) {
    throw new CryptoError('InvalidPoint', 'public key must be an uncompressed point (65 bytes, 04||X||Y)');
  }
}

/** A private scalar: exactly 32 bytes, big-endian, in [1, n-1]; a CryptoError InvalidKey if not. */
export function checkScalar(curve: Curve, scalar: Uint8Array): void {
  if (scalar.length !== 32) throw new CryptoError('InvalidKey', 'a private scalar must be 32 bytes');
  const d = BigInt(`0x${Buffer.from(scalar).toString('hex')}`);
  if (d === 0n || d >= CURVE_ORDER[curve]) {
    throw new CryptoError('InvalidKey', `private scalar is out of range for ${curve}`);
  }
}

/** A private key from its scalar: exactly 32 bytes, big-endian, in [1, n-1]. */
export function privateKeyFromScalar(curve: Curve, scalar: Uint8Array): KeyObject {
  checkScalar(curve, scalar);
  const ecPrivateKey = sequence(integer(U.integer, 1), octets(U.octetString, scalar));
  const pkcs8 = sequence(
    integer(U.integer, 0),
    sequence(oid(EC_PUBLIC_KEY_OID), oid(CURVE_OID[curve])),
    octets(U.octetString, ecPrivateKey),
  );
  try {
    return createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  } catch {
    throw new CryptoError('InvalidKey', `not a valid private scalar for ${curve}`);
  }
}

/** Reads the curve and the uncompressed point of an EC public (or private) key. */
export function publicPointOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const spki = new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
  const parts = children(readSingle(spki, 'SubjectPublicKeyInfo'), 'SubjectPublicKeyInfo');
  const bits = parts[1];
  if (bits?.value[0] !== 0) throw new CryptoError('InvalidKey', 'bad SubjectPublicKeyInfo');
  return Uint8Array.from(bits.value.subarray(1));
}

export function curveOfKey(key: KeyObject): Curve {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType !== 'ec' || !details?.namedCurve) {
    throw new CryptoError('UnsupportedCurve', 'key is not an EC key on a named curve');
  }
  if (details.namedCurve === 'prime256v1') return 'p256';
  if (details.namedCurve === 'brainpoolP256r1') return 'brainpoolP256r1';
  throw new CryptoError(
    'UnsupportedCurve',
    `curve ${details.namedCurve} is not supported (p256, brainpoolP256r1)`,
  );
}

/** The curve named in an SPKI's algorithm parameters, or undefined when it is not one of ours. */
export function curveOfSpki(spki: Uint8Array): Curve | undefined {
  const parts = children(readSingle(spki, 'SubjectPublicKeyInfo'), 'SubjectPublicKeyInfo');
  const alg = parts[0] && sameTag(parts[0], U.sequence) ? children(parts[0], 'AlgorithmIdentifier') : [];
  if (!alg[0] || !sameTag(alg[0], U.oid) || readOid(alg[0], 'algorithm') !== EC_PUBLIC_KEY_OID)
    return undefined;
  if (!alg[1] || !sameTag(alg[1], U.oid)) return undefined;
  return curveFromOid(readOid(alg[1], 'namedCurve'));
}

/**
 * Loads a private key from PEM: PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY", with or
 * without a preceding "EC PARAMETERS" block, as the SGP.26 files have).
 */
export function loadPrivateKeyPem(pem: string): KeyObject {
  const blocks = [...pem.matchAll(/-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/g)];
  const block = blocks.find((b) => b[1] === 'PRIVATE KEY' || b[1] === 'EC PRIVATE KEY');
  if (!block)
    throw new HandoverError('InvalidKeyFile', 'no "PRIVATE KEY" or "EC PRIVATE KEY" PEM block found');
  try {
    const der = Buffer.from(block[2]!.replace(/\s+/g, ''), 'base64');
    const key = createPrivateKey({
      key: der,
      format: 'der',
      type: block[1] === 'PRIVATE KEY' ? 'pkcs8' : 'sec1',
    });
    curveOfKey(key);
    return key;
  } catch (e) {
    if (e instanceof HandoverError) throw e;
    throw new HandoverError('InvalidKeyFile', 'the private key PEM block does not decode as an EC key');
  }
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}
