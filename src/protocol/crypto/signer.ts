/**
 * The signer seam (ARCHITECTURE.md): protocol code signs through this interface, so an HSM
 * can replace a key file without touching it.
 */
import type { KeyObject } from 'node:crypto';
import type { Curve } from './curves.ts';
import { ecdsaSign } from './ecdsa.ts';
import { curveOfKey, publicPointOf } from './keys.ts';

export interface Signer {
  readonly curve: Curve;
  /** Uncompressed public point, 65 bytes. */
  readonly publicPoint: Uint8Array;
  /** Plain r||s ECDSA-SHA256 signature, 64 bytes. */
  sign(data: Uint8Array): Uint8Array;
}

export function keySigner(privateKey: KeyObject): Signer {
  return {
    curve: curveOfKey(privateKey),
    publicPoint: publicPointOf(privateKey),
    sign: (data) => ecdsaSign(privateKey, data, 'plain'),
  };
}
