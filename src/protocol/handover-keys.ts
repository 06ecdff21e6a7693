/**
 * Key establishment shared by chip and new SM (PROTOCOL.md §2, §6.3, §6.4):
 * ShS = ECDH x-coordinate; KeyData = X9.63-KDF(ShS, DER(KeyDerivationInfo), 64) =
 * receiptKey ‖ S-ENC ‖ S-MAC ‖ initialMCV; receipt = AES-CMAC(receiptKey, DER(HandoverCommandData)).
 */
import { encodeKeyDerivationInfo, type KeyDerivationInfo } from './asn1/handover.ts';
import { aesCmac, aesCmacVerify } from './crypto/cmac.ts';
import type { Curve } from './crypto/curves.ts';
import { oneTimeSharedSecret } from './crypto/one-time-key.ts';
import { x963Kdf } from './crypto/x963-kdf.ts';

export interface HandoverKeys {
  readonly receiptKey: Uint8Array;
  readonly keyset: Keyset;
}

/** The new SM's management keyset (reserved for secure messaging in a later version). */
export interface Keyset {
  readonly version: number;
  readonly sEnc: Uint8Array;
  readonly sMac: Uint8Array;
  readonly initialMcv: Uint8Array;
}

export function deriveHandoverKeys(sharedSecret: Uint8Array, info: KeyDerivationInfo): HandoverKeys {
  const keyData = x963Kdf(sharedSecret, encodeKeyDerivationInfo(info), 64);
  const keys = {
    receiptKey: keyData.slice(0, 16),
    keyset: {
      version: info.keysetVersion,
      sEnc: keyData.slice(16, 32),
      sMac: keyData.slice(32, 48),
      initialMcv: keyData.slice(48, 64),
    },
  };
  keyData.fill(0);
  return keys;
}

/**
 * ECDH of our one-time scalar with the peer's one-time point, then KDF; the shared secret is
 * wiped before returning. A peer point not on the curve is a CryptoError InvalidPoint.
 */
export function establishKeys(
  own: { readonly curve: Curve; readonly scalar: Uint8Array },
  peerPoint: Uint8Array,
  info: KeyDerivationInfo,
): HandoverKeys {
  const shs = oneTimeSharedSecret(own.curve, own.scalar, peerPoint);
  try {
    return deriveHandoverKeys(shs, info);
  } finally {
    shs.fill(0);
  }
}

export const computeReceipt = (receiptKey: Uint8Array, handoverCommandDataRaw: Uint8Array): Uint8Array =>
  aesCmac(receiptKey, handoverCommandDataRaw);

/** Constant-time receipt check. */
export const receiptValid = (
  receiptKey: Uint8Array,
  handoverCommandDataRaw: Uint8Array,
  receipt: Uint8Array,
): boolean => aesCmacVerify(receiptKey, handoverCommandDataRaw, receipt);
