/** ECDH on one-time key pairs (PROTOCOL.md §2): ShS is the x-coordinate, 32 bytes. */
import { diffieHellman, type KeyObject } from 'node:crypto';
import { CryptoError } from '../errors.ts';
import { countCryptoOp } from './op-counts.ts';

export function ecdh(privateKey: KeyObject, peerPublicKey: KeyObject): Uint8Array {
  countCryptoOp('ecdh');
  try {
    return new Uint8Array(diffieHellman({ privateKey, publicKey: peerPublicKey }));
  } catch {
    throw new CryptoError(
      'InvalidPoint',
      'key agreement failed: keys are on different curves or the point is invalid',
    );
  }
}
