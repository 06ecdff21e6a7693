/**
 * Schemas shared by the HTTP plugins: they validate requests, shape responses (fields not listed
 * are never serialized) and document the API (OpenAPI at /docs/json), all at once. Views become
 * JSON here: dates as ISO 8601 strings, bytes as base64 or hex.
 */
import { type Static, type TSchema, Type } from 'typebox';
import type { AuditEntry } from '../store/types.ts';
import type { ChipView, TransferView } from '../views.ts';

export const Base64 = (description: string) =>
  Type.String({ minLength: 1, contentEncoding: 'base64', description });

export const DateTime = (description?: string) =>
  Type.String({ format: 'date-time', ...(description !== undefined && { description }) });

export const EidSchema = Type.String({
  pattern: '^\\d{32}$',
  description: 'EID: 32 decimal digits (mod-97 checked)',
});

export const ID_PATTERN = '^[\\w.:-]{1,128}$';
export const IdSchema = Type.String({ pattern: ID_PATTERN });

/** The body of a call that takes no input: none, `null` or `{}` (a field is refused, not ignored). */
export const NoBodySchema = Type.Union(
  [Type.Object({}, { additionalProperties: false }), Type.Null(), Type.Undefined()],
  {
    description: 'No input: send no body, or {}',
  },
);

export const ErrorBodySchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable code: branch on this' }),
      message: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  },
  { description: 'A refusal (4xx) or a server fault (5xx)' },
);

export const errorResponses = { '4xx': ErrorBodySchema, '5xx': ErrorBodySchema };

/** Response schemas: `ok` under `status`, plus the error body for 4xx and 5xx. */
export function responses<S extends TSchema, C extends 200 | 201>(status: C, ok: S) {
  return { [status]: ok, ...errorResponses } as { [K in C]: S } & typeof errorResponses;
}

// ---- chips ----

export const LockViewSchema = Type.Union([
  Type.Object({ kind: Type.Literal('unlocked') }),
  Type.Object({ kind: Type.Literal('lockedUntil'), until: DateTime() }),
  Type.Object({
    kind: Type.Literal('lockedUntilCode'),
    failedAttempts: Type.Integer({ minimum: 0 }),
    lockedOut: Type.Boolean(),
  }),
]);

export const ChipViewSchema = Type.Object({
  eid: EidSchema,
  operatorId: Type.String(),
  curve: Type.String({ description: 'p256 or brainpoolP256r1' }),
  counter: Type.Integer({ minimum: 0, description: 'The last counterValue this SM signed toward the chip' }),
  status: Type.Union([Type.Literal('managed'), Type.Literal('transferring'), Type.Literal('released')]),
  lock: LockViewSchema,
  keysetVersion: Type.Optional(Type.Integer()),
  profileSwitchState: Type.Optional(Type.String()),
  createdAt: DateTime(),
  updatedAt: DateTime(),
});
export type ChipJson = Static<typeof ChipViewSchema>;

export function chipJson(c: ChipView): ChipJson {
  return {
    eid: c.eid,
    operatorId: c.operatorId,
    curve: c.curve,
    counter: c.counter,
    status: c.status,
    lock: c.lock,
    ...(c.keysetVersion !== undefined && { keysetVersion: c.keysetVersion }),
    ...(c.profileSwitchState !== undefined && { profileSwitchState: c.profileSwitchState }),
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
  };
}

// ---- transfers ----

export const TransferViewSchema = Type.Object({
  id: Type.String(),
  direction: Type.Union([Type.Literal('outgoing'), Type.Literal('incoming')], {
    description: 'outgoing: this SM is the current SM; incoming: this SM is the new SM',
  }),
  state: Type.String({ description: 'PROTOCOL.md §6.6 transfer states' }),
  eid: EidSchema,
  operatorId: Type.String(),
  peerSmId: Type.String({ description: 'The other SM' }),
  permissionId: Type.Optional(Type.String({ description: 'Hex' })),
  counterValue: Type.Optional(Type.Integer()),
  notAfter: Type.Optional(DateTime()),
  endReason: Type.Optional(Type.String()),
  createdAt: DateTime(),
  updatedAt: DateTime(),
});
export type TransferJson = Static<typeof TransferViewSchema>;

export function transferJson(t: TransferView): TransferJson {
  return {
    id: t.id,
    direction: t.direction,
    state: t.state,
    eid: t.eid,
    operatorId: t.operatorId,
    peerSmId: t.peerSmId,
    ...(t.permissionId !== undefined && { permissionId: t.permissionId }),
    ...(t.counterValue !== undefined && { counterValue: t.counterValue }),
    ...(t.notAfter !== undefined && { notAfter: t.notAfter.toISOString() }),
    ...(t.endReason !== undefined && { endReason: t.endReason }),
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
  };
}

// ---- audit ----

export const AuditEntrySchema = Type.Object({
  seq: Type.Integer(),
  at: DateTime(),
  actor: Type.String({ description: 'operator:<id>, peer:<smId>, device, or system' }),
  action: Type.String(),
  operatorId: Type.Optional(Type.String()),
  eid: Type.Optional(Type.String()),
  transferId: Type.Optional(Type.String()),
  details: Type.Record(
    Type.String(),
    Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]),
  ),
  prevHash: Type.String({ description: 'Hex SHA-256 of the previous entry' }),
  hash: Type.String(),
});
export type AuditJson = Static<typeof AuditEntrySchema>;

export function auditJson(a: AuditEntry): AuditJson {
  return {
    seq: a.seq,
    at: a.at.toISOString(),
    actor: a.actor,
    action: a.action,
    ...(a.operatorId !== undefined && { operatorId: a.operatorId }),
    ...(a.eid !== undefined && { eid: a.eid }),
    ...(a.transferId !== undefined && { transferId: a.transferId }),
    details: { ...a.details },
    prevHash: a.prevHash,
    hash: a.hash,
  };
}

/** `state=a,b&state=c` as a list of states (empty names dropped; an empty list stays empty). */
export function queryStates(state: string | readonly string[]): string[] {
  return [state].flat().flatMap((s) => s.split(',').filter((one) => one !== ''));
}
