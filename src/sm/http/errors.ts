/**
 * Errors over HTTP (PROTOCOL.md §9): `{ "error": { "code", "message", "details" } }` with stable
 * codes; 4xx for the caller's faults, 5xx only for the server's. Every SmError code has its status
 * here (the `satisfies` makes a new code a compile error until it is placed).
 */
import { errorCode, HandoverError, InvalidInput, MalformedMessage } from '../../protocol/errors.ts';
import type { SmErrorCode } from '../errors.ts';

export type HttpStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 431 | 500;

/** Codes the HTTP layer itself answers with (transport, authentication, idempotency). */
export type HttpErrorCode =
  | 'BadRequest'
  | 'MalformedJson'
  | 'MalformedBase64'
  | 'PayloadTooLarge'
  | 'HeadersTooLarge'
  | 'UnsupportedMediaType'
  | 'RouteNotFound'
  | 'Unauthenticated'
  | 'ClientCertificateRequired'
  | 'PeerNotAuthorised'
  | 'IdempotencyKeyRequired'
  | 'IdempotencyKeyReused'
  | 'IdempotencyKeyInUse'
  | 'InternalError';

const SM_STATUS = {
  InvalidInput: 400,
  MalformedMessage: 400,
  NotAuthorised: 403,
  ChipNotManaged: 404,
  UnknownTransfer: 404,
  UnknownBulkJob: 404,
  UnknownPermission: 404,
  ChipExists: 409,
  TransferPending: 409,
  OrderPending: 409,
  InvalidState: 409,
  TransferEnded: 409,
  PermissionReused: 409,
  CounterReused: 409,
  ChipLocked: 409,
  LockedOut: 409,
  ChipCertificateInvalid: 422,
  EidMismatch: 422,
  UnknownPeer: 422,
  PeerCertificateInvalid: 422,
  UnlockCodeInvalid: 422,
  BadSignature: 422,
  WrongSm: 422,
  PermissionExpired: 422,
  NoMatchingOrder: 422,
  ActivationCodeMismatch: 422,
  InvalidOneTimeKey: 422,
  ResultMismatch: 422,
  ReceiptInvalid: 422,
} as const satisfies Record<SmErrorCode, HttpStatus>;

const HTTP_STATUS = {
  BadRequest: 400,
  MalformedJson: 400,
  MalformedBase64: 400,
  PayloadTooLarge: 413,
  HeadersTooLarge: 431,
  UnsupportedMediaType: 415,
  RouteNotFound: 404,
  Unauthenticated: 401,
  ClientCertificateRequired: 401,
  PeerNotAuthorised: 403,
  IdempotencyKeyRequired: 400,
  IdempotencyKeyReused: 422,
  IdempotencyKeyInUse: 409,
  InternalError: 500,
} as const satisfies Record<HttpErrorCode, HttpStatus>;

/** Protocol-layer codes that reach the HTTP layer (bad keys, points or signatures inside messages). */
const PROTOCOL_STATUS: Readonly<Record<string, HttpStatus>> = {
  CertificateInvalid: 422,
  UnsupportedCurve: 400,
  InvalidKey: 400,
  InvalidPoint: 400,
  InvalidSignature: 400,
};

const STATUS: Readonly<Record<string, HttpStatus>> = { ...PROTOCOL_STATUS, ...SM_STATUS, ...HTTP_STATUS };

/** A refusal by the HTTP layer itself. */
export class ApiError extends HandoverError {
  declare readonly code: HttpErrorCode;
  constructor(code: HttpErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
  }
}

export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly details: Record<string, unknown>;
  };
}

export interface MappedError {
  readonly status: HttpStatus;
  readonly body: ErrorBody;
  /** Whether the error was expected (a typed refusal) or a server fault to log in full. */
  readonly expected: boolean;
}

const body = (code: string, message: string, details: Record<string, unknown> = {}): ErrorBody => ({
  error: { code, message, details },
});

/** The status a typed error maps to; undefined when its code is not one we know. */
export function statusOf(code: string): HttpStatus | undefined {
  return STATUS[code];
}

/**
 * Maps any thrown value to a response. Typed errors keep their code and message (messages never
 * carry secrets, protocol/errors.ts); anything else is a 500 with no detail of its cause.
 */
export function mapError(e: unknown, requestId: string): MappedError {
  if (e instanceof HandoverError) {
    const known = statusOf(e.code);
    // An unlisted typed error is a refusal of the input: malformed → 400, otherwise 422.
    const status = known ?? (e instanceof InvalidInput || e instanceof MalformedMessage ? 400 : 422);
    return { status, body: body(e.code, e.message, e.details), expected: status < 500 };
  }
  // The client went away while its body was being read: its fault, not the server's (no answer
  // reaches it anyway; this keeps it out of the error log).
  const code = errorCode(e);
  if (code === 'ECONNRESET' || code === 'ECONNABORTED' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return {
      status: 400,
      body: body('BadRequest', 'the request ended before its body was read'),
      expected: true,
    };
  }
  return {
    status: 500,
    body: body('InternalError', 'the server failed to handle the request; it has been logged', { requestId }),
    expected: false,
  };
}

export function errorBody(
  code: HttpErrorCode,
  message: string,
  details: Record<string, unknown> = {},
): ErrorBody {
  return body(code, message, details);
}
