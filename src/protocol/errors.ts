/**
 * Typed errors with stable codes. Callers branch on `code`, never on message text.
 * Messages never carry secrets (keys, session keys, unlock or activation codes).
 */
export class HandoverError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = code;
    this.code = code;
    this.details = details;
  }
  toJSON(): { code: string; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Bytes that do not decode as the DER the spec defines (PROTOCOL.md §5). `field` names where. */
export class MalformedMessage extends HandoverError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('MalformedMessage', `${field}: ${message}`, { field });
    this.field = field;
  }
}

/** A key, point or signature that the crypto layer cannot use (bad curve, bad point, bad length). */
export class CryptoError extends HandoverError {
  constructor(
    code: 'UnsupportedCurve' | 'InvalidKey' | 'InvalidPoint' | 'InvalidSignature',
    message: string,
  ) {
    super(code, message);
  }
}

/** A value outside its allowed form, caught where it enters (EID, ICCID, SM id, config, CLI). */
export class InvalidInput extends HandoverError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
  }
}

/** The `code` a Node system error (or any error carrying one: ENOENT, EADDRINUSE, …) has; undefined otherwise. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  return typeof e.code === 'string' ? e.code : undefined;
}
