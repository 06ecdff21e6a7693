/**
 * One-time ECDH key pairs (otSK/otPK, PROTOCOL.md §2): made, stored and used as raw values (a
 * 32-byte scalar, a 65-byte uncompressed point), not as KeyObjects.
 *
 * Why not KeyObjects: on OpenSSL 3 a KeyObject costs more to build and to read than the
 * operation it is for. Measured on this project's machine (Node 20.20.2, P-256, µs each): key
 * generation 75, with the export of its point as SPKI 209, with the private key's PKCS#8 PEM
 * export too 355; a private key from PKCS#8 DER 627 (SEC1 220), a public key from SPKI 163; ECDH
 * on two KeyObjects 176. node:crypto's ECDH class works on the raw values instead: a key pair with
 * its point and scalar in 40, the shared secret from a scalar and a peer point in 211 (setting the
 * scalar included). `npm run bench:keys` measures them again. For brainpoolP256r1 the ECDH class makes keys faster too (353 against
 * 586 with the point's export) but derives slower (1,465 against 1,212 for diffieHellman on
 * KeyObjects), so that curve derives through KeyObjects built from the raw values.
 */
import { createECDH, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { children, readOid, readSingle } from '../der/reader.ts';
import { ctx, sameTag, U } from '../der/tag.ts';
import { bitString, constructed, integer, octets, oid, sequence } from '../der/writer.ts';
import { CryptoError } from '../errors.ts';
import { CURVE_OID, type Curve, curveFromOid, EC_PUBLIC_KEY_OID, OPENSSL_NAME } from './curves.ts';
import { checkScalar, checkUncompressedPoint, spkiDer } from './keys.ts';
import { countCryptoOp } from './op-counts.ts';

export interface OneTimeKeyPair {
  readonly curve: Curve;
  /** 32 bytes, big-endian, in [1, n-1]. */
  readonly scalar: Uint8Array;
  /** Uncompressed point, 65 bytes (04‖X‖Y). */
  readonly publicPoint: Uint8Array;
}

/** `bytes` left-padded with zeros to 32 bytes (the ECDH class drops a scalar's leading zeros). */
function be32(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 32) return new Uint8Array(bytes);
  const out = new Uint8Array(32);
  out.set(bytes, 32 - bytes.length);
  return out;
}

/** A new one-time key pair (counted as one key generation). */
export function generateOneTimeKey(curve: Curve): OneTimeKeyPair {
  countCryptoOp('keygen');
  const ecdh = createECDH(OPENSSL_NAME[curve]);
  const publicPoint = new Uint8Array(ecdh.generateKeys());
  return { curve, scalar: be32(ecdh.getPrivateKey()), publicPoint };
}

/**
 * ECDH of our one-time `scalar` with the peer's uncompressed point: ShS, the x-coordinate, 32
 * bytes (counted as one ECDH). A point that is not on the curve is a CryptoError InvalidPoint.
 */
export function oneTimeSharedSecret(curve: Curve, scalar: Uint8Array, peerPoint: Uint8Array): Uint8Array {
  countCryptoOp('ecdh');
  checkScalar(curve, scalar);
  checkUncompressedPoint(peerPoint);
  if (curve === 'p256') {
    const ecdh = createECDH(OPENSSL_NAME[curve]);
    ecdh.setPrivateKey(scalar);
    try {
      return new Uint8Array(ecdh.computeSecret(peerPoint));
    } catch {
      throw new CryptoError('InvalidPoint', `public key is not a point on ${curve}`);
    }
  }
  let peer: KeyObject;
  try {
    peer = createPublicKey({ key: Buffer.from(spkiDer(curve, peerPoint)), format: 'der', type: 'spki' });
  } catch {
    throw new CryptoError('InvalidPoint', `public key is not a point on ${curve}`);
  }
  const own = createPrivateKey({ key: Buffer.from(sec1Der(curve, scalar)), format: 'der', type: 'sec1' });
  return new Uint8Array(diffieHellman({ privateKey: own, publicKey: peer }));
}

/**
 * SEC1 ECPrivateKey with the curve as parameters, and the public point when given: OpenSSL 3.0
 * decodes it about three times faster than PKCS#8 (220 against 627 µs for P-256, measured here).
 */
export function sec1Der(curve: Curve, scalar: Uint8Array, point?: Uint8Array): Uint8Array {
  return sequence(
    integer(U.integer, 1),
    octets(U.octetString, scalar),
    constructed(ctx(0, true), oid(CURVE_OID[curve])),
    point && constructed(ctx(1, true), bitString(point)),
  );
}

/**
 * The key pair as PKCS#8 PEM ("PRIVATE KEY"): version 0, id-ecPublicKey with the named curve, and
 * an ECPrivateKey holding the scalar and the public point, the layout OpenSSL writes. How a chip
 * keeps otSK.chip in its state between its two commands.
 */
export function oneTimeKeyToPem(key: OneTimeKeyPair): string {
  const der = sequence(
    integer(U.integer, 0),
    sequence(oid(EC_PUBLIC_KEY_OID), oid(CURVE_OID[key.curve])),
    octets(
      U.octetString,
      sequence(
        integer(U.integer, 1),
        octets(U.octetString, key.scalar),
        constructed(ctx(1, true), bitString(key.publicPoint)),
      ),
    ),
  );
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
}

/**
 * The curve and scalar of an EC private key in PKCS#8 PEM with a named curve (any PKCS#8 EC key,
 * OpenSSL's or oneTimeKeyToPem's). A CryptoError InvalidKey for anything else.
 */
export function oneTimeKeyFromPem(pem: string): { readonly curve: Curve; readonly scalar: Uint8Array } {
  const parts = ecPkcs8PemParts(pem);
  if (!parts) throw new CryptoError('InvalidKey', 'not a PKCS#8 PEM EC private key on a named curve');
  checkScalar(parts.curve, parts.scalar);
  return { curve: parts.curve, scalar: parts.scalar };
}

/** ecPkcs8Parts of a PEM holding exactly one "PRIVATE KEY" block; undefined for anything else. */
export function ecPkcs8PemParts(pem: string): ReturnType<typeof ecPkcs8Parts> {
  const m = /^-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----\s*$/.exec(pem);
  return m ? ecPkcs8Parts(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))) : undefined;
}

/**
 * The parts of a DER PKCS#8 EC private key with a named curve: the curve, the 32-byte scalar, and
 * the public point when the key carries it ([1] publicKey). Undefined for anything else (other
 * algorithms, explicit parameters, [0] parameters naming another curve, trailing fields).
 */
export function ecPkcs8Parts(
  der: Uint8Array,
):
  | { readonly curve: Curve; readonly scalar: Uint8Array; readonly point: Uint8Array | undefined }
  | undefined {
  try {
    const [version, alg, inner, ...rest] = children(readSingle(der, 'PrivateKeyInfo'), 'PrivateKeyInfo');
    if (!version || !alg || !inner || rest.length > 0 || !sameTag(inner, U.octetString)) return undefined;
    const [algOid, params] = children(alg, 'AlgorithmIdentifier');
    if (!algOid || !params || readOid(algOid, 'algorithm') !== EC_PUBLIC_KEY_OID) return undefined;
    const curve = curveFromOid(readOid(params, 'namedCurve'));
    if (!curve) return undefined;
    const [ecVersion, scalar, ...more] = children(readSingle(inner.value, 'ECPrivateKey'), 'ECPrivateKey');
    if (!ecVersion || !scalar || !sameTag(scalar, U.octetString) || scalar.value.length !== 32)
      return undefined;
    // [0] parameters (must name the same curve when present) and [1] publicKey, both optional.
    let point: Uint8Array | undefined;
    for (const f of more) {
      if (sameTag(f, ctx(0, true))) {
        if (readOid(readSingle(f.value, 'parameters'), 'parameters') !== CURVE_OID[curve]) return undefined;
      } else if (sameTag(f, ctx(1, true))) {
        const bits = readSingle(f.value, 'publicKey');
        if (!sameTag(bits, U.bitString) || bits.value.length !== 66 || bits.value[0] !== 0) return undefined;
        point = bits.value.slice(1);
      } else return undefined;
    }
    return { curve, scalar: scalar.value.slice(), point };
  } catch {
    return undefined;
  }
}
