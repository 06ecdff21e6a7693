/**
 * Activation codes (PROTOCOL.md §5.1 activationCodeHash, §6.3): the permission carries only
 * SHA-256 of the code; the new SM compares the hash of the code its order holds, in constant
 * time. The code is hashed exactly as given (UTF-8, no normalisation).
 */
import { createHash } from 'node:crypto';
import { SmError } from '../errors.ts';
import { constantTimeEqual } from './secret-compare.ts';

export const ACTIVATION_CODE_MAX_LENGTH = 256;

/** Refuses an empty, over-long or non-printable code (never echoing it). */
export function checkActivationCode(code: string): string {
  if (code.length === 0 || code.length > ACTIVATION_CODE_MAX_LENGTH || /[\p{Cc}\p{Cs}]/u.test(code)) {
    throw new SmError(
      'InvalidInput',
      `an activation code is 1 to ${ACTIVATION_CODE_MAX_LENGTH} printable characters`,
      { field: 'activationCode' },
    );
  }
  return code;
}

export function hashActivationCode(code: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(checkActivationCode(code), 'utf8').digest());
}

/** Constant-time comparison of two activation-code hashes. */
export const activationHashesMatch = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === 32 && constantTimeEqual(a, b);

export const activationCodeMatches = (code: string, hash: Uint8Array): boolean =>
  activationHashesMatch(hashActivationCode(code), hash);

/**
 * The activation-code hash of an operator request that may carry the code itself or, from a bulk
 * job, only its SHA-256 (32 bytes); undefined when it has neither, an InvalidInput when both.
 */
export function codeHashOf(req: {
  readonly activationCode?: string;
  readonly activationCodeHash?: Uint8Array;
}): Uint8Array | undefined {
  if (req.activationCode !== undefined && req.activationCodeHash !== undefined) {
    throw new SmError('InvalidInput', 'give an activation code or its hash, not both', {
      field: 'activationCode',
    });
  }
  if (req.activationCode !== undefined) return hashActivationCode(req.activationCode);
  if (req.activationCodeHash !== undefined && req.activationCodeHash.length !== 32) {
    throw new SmError('InvalidInput', 'an activation code hash is 32 bytes (SHA-256)', {
      field: 'activationCodeHash',
    });
  }
  return req.activationCodeHash;
}
