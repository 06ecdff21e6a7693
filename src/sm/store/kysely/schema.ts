/**
 * The tables of the kysely store, as kysely sees them. One interface serves both dialects, so a
 * column's read type is what either driver returns:
 * - times: ISO 8601 text in SQLite, timestamptz in PostgreSQL (pg reads a Date); always written
 *   as ISO text, which both accept;
 * - booleans: INTEGER 0/1 in SQLite, boolean in PostgreSQL; written as 0/1, which both accept;
 * - nested records: JSON text in SQLite, jsonb in PostgreSQL (pg reads it parsed), written as
 *   JSON text with bytes and dates tagged (codec.ts);
 * - bytes: BLOB / bytea, read as a Buffer;
 * - `pos`: insertion order (lists come back in the order rows were first inserted, as the memory
 *   store's Maps do); `seq`, a bigint in PostgreSQL, which pg reads as a string.
 */
import type { ColumnType, Generated } from 'kysely';

export type SqlDialect = 'sqlite' | 'postgres';

/** Read as S, written as W (insert and update). */
type Col<S, W = S> = ColumnType<S, W, W>;

export type DbTime = Col<Date | string, string>;
export type DbTimeOrNull = Col<Date | string | null, string | null>;
export type DbBool = Col<boolean | number, number>;
export type DbBoolOrNull = Col<boolean | number | null, number | null>;
export type DbJson = Col<unknown, string>;
export type DbJsonOrNull = Col<unknown, string | null>;
export type DbBytes = Col<Uint8Array, Uint8Array>;
export type DbBytesOrNull = Col<Uint8Array | null, Uint8Array | null>;
export type DbBigint = Col<number | string | bigint, number>;

export interface ChipsTable {
  pos: Generated<number | string>;
  eid: string;
  /** Raised each time a released chip is registered again; counters are unique per generation. */
  generation: number;
  operator_id: string;
  chip_certificate: DbBytes;
  eum_certificate: DbBytes;
  curve: string;
  counter: number;
  status: string;
  lock: DbJson;
  keyset: DbJsonOrNull;
  profile_switch: DbJsonOrNull;
  created_at: DbTime;
  updated_at: DbTime;
}

/** Every counter value signed toward a chip (per generation): the primary key refuses a reuse. */
export interface UsedCountersTable {
  eid: string;
  generation: number;
  counter: number;
}

export interface TransfersTable {
  pos: Generated<number | string>;
  id: string;
  direction: 'outgoing' | 'incoming';
  state: string;
  eid: string;
  operator_id: string;
  peer_sm_id: string;
  permission_id: DbBytesOrNull;
  created_at: DbTime;
  updated_at: DbTime;
  end_reason: string | null;
  evidence: DbBytesOrNull;
  // outgoing (current SM)
  origin: string | null;
  peer_ask_id: string | null;
  new_sm_address: string | null;
  activation_code_hash: DbBytesOrNull;
  profile_switch: DbJsonOrNull;
  unlocked_with_code: DbBoolOrNull;
  approval_deadline: DbTimeOrNull;
  permission: DbJsonOrNull;
  cancel: DbJsonOrNull;
  // incoming (new SM)
  order_id: string | null;
  peer_transfer_id: string | null;
  expires_at: DbTimeOrNull;
  request: DbJsonOrNull;
  receipt_key: DbBytesOrNull;
  keyset: DbJsonOrNull;
  /** domain/expiry-deadline.ts, kept by the store on every write (0005). */
  expiry_deadline: DbTimeOrNull;
}

export interface OrdersTable {
  pos: Generated<number | string>;
  id: string;
  operator_id: string;
  eid: string;
  current_sm_id: string;
  activation_code_hash: DbBytesOrNull;
  ask: DbBool;
  state: string;
  transfer_id: string;
  created_at: DbTime;
  expires_at: DbTime;
}

export interface OutboxTable {
  pos: Generated<number | string>;
  id: string;
  channel: 'peer' | 'operator' | 'device';
  eid: string;
  transfer_id: string | null;
  created_at: DbTime;
  state: string;
  // peer
  target_sm_id: string | null;
  message: DbJsonOrNull;
  // operator
  operator_id: string | null;
  notification: DbJsonOrNull;
  // peer and operator: delivery
  attempts: number | null;
  next_attempt_at: DbTimeOrNull;
  last_error: DbJsonOrNull;
  delivered_at: DbTimeOrNull;
  // device
  kind: string | null;
  bytes: DbBytesOrNull;
  deliveries: number | null;
  last_delivered_at: DbTimeOrNull;
}

export interface AuditTable {
  seq: DbBigint;
  at: DbTime;
  actor: string;
  action: string;
  operator_id: string | null;
  eid: string | null;
  transfer_id: string | null;
  details: DbJson;
  prev_hash: string;
  hash: string;
}

/** The operator API's idempotency keys (migration 0002; http/idempotency.ts). */
export interface IdempotencyKeysTable {
  operator_id: string;
  key: string;
  /** Hex SHA-256 of method, path and canonical body. */
  fingerprint: string;
  state: 'inProgress' | 'done';
  status_code: number | null;
  /** The JSON body as sent. */
  response: string | null;
  created_at: DbTime;
  completed_at: DbTimeOrNull;
  expires_at: DbTime;
}

/** Bulk transfer jobs (migration 0003; bulk.ts). */
export interface BulkJobsTable {
  pos: Generated<number | string>;
  id: string;
  operator_id: string;
  kind: string;
  peer_sm_id: string;
  activation_code_hash: DbBytesOrNull;
  concurrency: number;
  rate_per_second: number;
  state: string;
  created_at: DbTime;
  updated_at: DbTime;
}

/** One chip of a bulk job (migration 0003). */
export interface BulkItemsTable {
  job_id: string;
  eid: string;
  position: number;
  state: string;
  transfer_id: string | null;
  error_code: string | null;
  error_message: string | null;
  started_at: DbTimeOrNull;
  updated_at: DbTime;
}

export interface Database {
  chips: ChipsTable;
  used_counters: UsedCountersTable;
  transfers: TransfersTable;
  orders: OrdersTable;
  outbox: OutboxTable;
  audit: AuditTable;
  idempotency_keys: IdempotencyKeysTable;
  bulk_jobs: BulkJobsTable;
  bulk_items: BulkItemsTable;
}
