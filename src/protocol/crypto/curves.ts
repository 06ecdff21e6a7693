/** The two curves of PROTOCOL.md §2, with their OIDs and OpenSSL names. */
import { CryptoError } from '../errors.ts';

export type Curve = 'p256' | 'brainpoolP256r1';
export const CURVES: readonly Curve[] = ['p256', 'brainpoolP256r1'];

export const CURVE_OID: Record<Curve, string> = {
  p256: '1.2.840.10045.3.1.7',
  brainpoolP256r1: '1.3.36.3.3.2.8.1.1.7',
};
export const OPENSSL_NAME: Record<Curve, string> = { p256: 'prime256v1', brainpoolP256r1: 'brainpoolP256r1' };
export const EC_PUBLIC_KEY_OID = '1.2.840.10045.2.1';

/** Accepts the names people type: p256, P-256, prime256v1, secp256r1, brainpoolp256r1 (any case). */
export function parseCurve(name: string): Curve {
  const n = name.toLowerCase().replace(/[-_]/g, '');
  if (n === 'p256' || n === 'prime256v1' || n === 'secp256r1') return 'p256';
  if (n === 'brainpoolp256r1' || n === 'bp256' || n === 'brainpool') return 'brainpoolP256r1';
  throw new CryptoError('UnsupportedCurve', `unsupported curve "${name}": use p256 or brainpoolP256r1`);
}

export function curveFromOid(oid: string): Curve | undefined {
  for (const c of CURVES) if (CURVE_OID[c] === oid) return c;
  return undefined;
}

/** Group orders, for tests and signature range checks. */
export const CURVE_ORDER: Record<Curve, bigint> = {
  p256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  brainpoolP256r1: 0xa9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f7901e0e82974856a7n,
};
