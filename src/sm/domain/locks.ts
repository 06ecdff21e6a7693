/**
 * Lock policies (PROTOCOL.md §8): `unlocked`, `lockedUntil(date)`, or `lockedUntilCode` (the
 * current MNO holds an unlock code; the SM keeps a salted scrypt hash and counts failed
 * attempts). After MAX_UNLOCK_ATTEMPTS wrong codes the chip is locked out: even the right code
 * is refused until the MNO sets a new policy. Pure functions: the caller persists the result.
 */
import { scryptSync } from 'node:crypto';
import { SmError } from '../errors.ts';
import { constantTimeEqual } from './secret-compare.ts';

export const MAX_UNLOCK_ATTEMPTS = 5;
export const UNLOCK_CODE_MAX_LENGTH = 256;

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}
/** OWASP's scrypt floor (N = 2^17 is better but costs ~128 MiB per check; 2^15 costs 32 MiB). */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };

export type LockPolicy =
  | { readonly kind: 'unlocked' }
  | { readonly kind: 'lockedUntil'; readonly until: Date }
  | {
      readonly kind: 'lockedUntilCode';
      readonly salt: Uint8Array;
      readonly hash: Uint8Array;
      readonly scrypt: ScryptParams;
      readonly failedAttempts: number;
    };

/** What an operator asks for: the unlock code in clear, once, to be hashed. */
export type LockRequest =
  | { readonly kind: 'unlocked' }
  | { readonly kind: 'lockedUntil'; readonly until: Date }
  | { readonly kind: 'lockedUntilCode'; readonly unlockCode: string };

export type LockDecision =
  | { readonly allowed: true; readonly unlockedWithCode: boolean }
  | {
      readonly allowed: false;
      readonly code: 'ChipLocked' | 'UnlockCodeInvalid' | 'LockedOut';
      readonly message: string;
      /** The policy to persist (a wrong code counts as an attempt), or undefined when unchanged. */
      readonly updated?: LockPolicy;
    };

function checkUnlockCode(code: string): string {
  if (code.length === 0 || code.length > UNLOCK_CODE_MAX_LENGTH || /[\p{Cc}\p{Cs}]/u.test(code)) {
    throw new SmError(
      'InvalidInput',
      `an unlock code is 1 to ${UNLOCK_CODE_MAX_LENGTH} printable characters`,
      {
        field: 'unlockCode',
      },
    );
  }
  return code;
}

function hashUnlockCode(code: string, salt: Uint8Array, params: ScryptParams): Uint8Array {
  const maxmem = 128 * params.N * params.r * 2;
  return new Uint8Array(scryptSync(code, salt, 32, { ...params, maxmem }));
}

/** Turns an operator's request into a stored policy; `salt` comes from the caller's CSPRNG (16 bytes). */
export function makeLockPolicy(
  request: LockRequest,
  salt: Uint8Array,
  params: ScryptParams = DEFAULT_SCRYPT,
): LockPolicy {
  switch (request.kind) {
    case 'unlocked':
      return { kind: 'unlocked' };
    case 'lockedUntil':
      if (!(request.until instanceof Date) || Number.isNaN(request.until.getTime())) {
        throw new SmError('InvalidInput', 'lockedUntil needs a valid date', { field: 'until' });
      }
      return { kind: 'lockedUntil', until: new Date(request.until.getTime()) };
    case 'lockedUntilCode': {
      if (salt.length < 16) throw new SmError('InvalidInput', 'an unlock-code salt is at least 16 bytes');
      const hash = hashUnlockCode(checkUnlockCode(request.unlockCode), salt, params);
      return {
        kind: 'lockedUntilCode',
        salt: Uint8Array.from(salt),
        hash,
        scrypt: params,
        failedAttempts: 0,
      };
    }
  }
}

/** May a permission be issued now? `unlockCode` is what the caller presented, if anything. */
export function checkLock(policy: LockPolicy, now: Date, unlockCode?: string): LockDecision {
  switch (policy.kind) {
    case 'unlocked':
      return { allowed: true, unlockedWithCode: false };
    case 'lockedUntil':
      if (now.getTime() < policy.until.getTime()) {
        return {
          allowed: false,
          code: 'ChipLocked',
          message: `the chip is locked until ${policy.until.toISOString()}`,
        };
      }
      return { allowed: true, unlockedWithCode: false };
    case 'lockedUntilCode': {
      if (policy.failedAttempts >= MAX_UNLOCK_ATTEMPTS) {
        return {
          allowed: false,
          code: 'LockedOut',
          message: `the unlock code was wrong ${policy.failedAttempts} times; the current operator must set a new lock policy`,
        };
      }
      if (unlockCode === undefined) {
        return {
          allowed: false,
          code: 'ChipLocked',
          message: 'the chip is locked until its unlock code is given',
        };
      }
      const candidate = hashUnlockCode(checkUnlockCode(unlockCode), policy.salt, policy.scrypt);
      if (constantTimeEqual(candidate, policy.hash)) return { allowed: true, unlockedWithCode: true };
      const failedAttempts = policy.failedAttempts + 1;
      return {
        allowed: false,
        code: 'UnlockCodeInvalid',
        message: `the unlock code is wrong (${MAX_UNLOCK_ATTEMPTS - failedAttempts} attempt(s) left)`,
        updated: { ...policy, failedAttempts },
      };
    }
  }
}

/** The policy as shown to operators: no hash, no salt. */
export type LockView =
  | { readonly kind: 'unlocked' }
  | { readonly kind: 'lockedUntil'; readonly until: string }
  | { readonly kind: 'lockedUntilCode'; readonly failedAttempts: number; readonly lockedOut: boolean };

export function lockView(policy: LockPolicy): LockView {
  switch (policy.kind) {
    case 'unlocked':
      return { kind: 'unlocked' };
    case 'lockedUntil':
      return { kind: 'lockedUntil', until: policy.until.toISOString() };
    case 'lockedUntilCode':
      return {
        kind: 'lockedUntilCode',
        failedAttempts: policy.failedAttempts,
        lockedOut: policy.failedAttempts >= MAX_UNLOCK_ATTEMPTS,
      };
  }
}
