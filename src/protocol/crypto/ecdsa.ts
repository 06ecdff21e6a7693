/** ECDSA with SHA-256 (PROTOCOL.md §2): plain r||s in protocol messages, DER inside X.509. */
import { type KeyObject, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { countCryptoOp } from './op-counts.ts';

export type SignatureFormat = 'plain' | 'der';
const DSA_ENCODING = { plain: 'ieee-p1363', der: 'der' } as const;

export function ecdsaSign(
  privateKey: KeyObject,
  data: Uint8Array,
  format: SignatureFormat = 'plain',
): Uint8Array {
  countCryptoOp('sign');
  return new Uint8Array(nodeSign('sha256', data, { key: privateKey, dsaEncoding: DSA_ENCODING[format] }));
}

/**
 * True only for a valid signature. Malformed signatures (wrong length, r or s out of range,
 * non-DER encodings) are invalid, never an exception.
 */
export function ecdsaVerify(
  publicKey: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
  format: SignatureFormat = 'plain',
): boolean {
  if (format === 'plain' && signature.length !== 64) return false;
  countCryptoOp('verify');
  try {
    return nodeVerify('sha256', data, { key: publicKey, dsaEncoding: DSA_ENCODING[format] }, signature);
  } catch {
    return false;
  }
}
