/**
 * The operator API's idempotency keys in the SQL store (table idempotency_keys, migration 0002),
 * behind the HTTP layer's IdempotencyStore (http/idempotency.ts, which also states the one gap:
 * the response is recorded after the operation's own transaction). Keys survive a restart and
 * are shared by every replica on one PostgreSQL database. Each call is one short store
 * transaction: on SQLite in the file's queue (BEGIN IMMEDIATE), on PostgreSQL SERIALIZABLE and
 * run again when two replicas race for one key (the loser then sees the winner's row).
 *
 * A row expires at `expires_at`: IN_PROGRESS_TTL_MS after its reservation while inProgress (a
 * request that died), `ttlMs` after its response once done. An expired row counts as absent, and
 * expired rows are deleted at most once a minute, inside `begin`.
 */
import {
  IDEMPOTENCY_TTL_MS,
  type IdempotencyBegin,
  type IdempotencyRecord,
  type IdempotencyStore,
  IN_PROGRESS_TTL_MS,
} from '../../http/idempotency.ts';
import type { SmStore } from '../types.ts';
import { timeIn, timeOut } from './codec.ts';
import type { Conn } from './conn.ts';
import { PostgresStore } from './postgres.ts';
import { SqliteStore } from './sqlite.ts';
import type { SqlStore } from './store.ts';
import { transactionConn } from './tx.ts';

const SWEEP_EVERY_MS = 60_000;

interface IdempotencyRow {
  operator_id: string;
  key: string;
  fingerprint: string;
  state: 'inProgress' | 'done';
  status_code: number | null;
  response: string | null;
  completed_at: Date | string | null;
  expires_at: Date | string;
}

const later = (d: Date, ms: number): string => timeIn(new Date(d.getTime() + ms));

function beginOf(row: IdempotencyRow): IdempotencyBegin {
  if (row.state === 'inProgress') return { kind: 'inProgress', fingerprint: row.fingerprint };
  if (row.status_code === null || row.response === null || row.completed_at === null) {
    // The table's CHECK constraint rules this out; a hand-edited row is not replayed.
    throw new Error(`idempotency key ${row.key} is done but has no stored response`);
  }
  return {
    kind: 'done',
    record: {
      operatorId: row.operator_id,
      key: row.key,
      fingerprint: row.fingerprint,
      statusCode: row.status_code,
      body: row.response,
      createdAt: timeOut(row.completed_at),
    },
  };
}

async function find(c: Conn, operatorId: string, key: string): Promise<IdempotencyRow | undefined> {
  return c.run((db) =>
    db
      .selectFrom('idempotency_keys')
      .select([
        'operator_id',
        'key',
        'fingerprint',
        'state',
        'status_code',
        'response',
        'completed_at',
        'expires_at',
      ])
      .where('operator_id', '=', operatorId)
      .where('key', '=', key)
      .executeTakeFirst(),
  );
}

export class SqlIdempotencyStore implements IdempotencyStore {
  readonly #store: SqlStore;
  readonly #ttlMs: number;
  #nextSweep = 0;

  constructor(store: SqlStore, o: { ttlMs?: number } = {}) {
    this.#store = store;
    this.#ttlMs = o.ttlMs ?? IDEMPOTENCY_TTL_MS;
  }

  begin(operatorId: string, key: string, fingerprint: string, now: Date): Promise<IdempotencyBegin> {
    return this.#store.transaction(async (tx) => {
      const c = transactionConn(tx);
      const reservation = {
        fingerprint,
        state: 'inProgress' as const,
        status_code: null,
        response: null,
        created_at: timeIn(now),
        completed_at: null,
        expires_at: later(now, IN_PROGRESS_TTL_MS),
      };
      // A new key (the usual case) is reserved by one statement; a key in use did nothing here.
      const [inserted] = await c.run((db) =>
        db
          .insertInto('idempotency_keys')
          .values({ operator_id: operatorId, key, ...reservation })
          .onConflict((oc) => oc.columns(['operator_id', 'key']).doNothing())
          .execute(),
      );
      if ((inserted?.numInsertedOrUpdatedRows ?? 0n) === 0n) {
        const row = await find(c, operatorId, key);
        if (row && timeOut(row.expires_at).getTime() >= now.getTime()) return beginOf(row);
        // Expired: reserved again, as new.
        await c.run((db) =>
          db
            .updateTable('idempotency_keys')
            .set(reservation)
            .where('operator_id', '=', operatorId)
            .where('key', '=', key)
            .execute(),
        );
      }
      await this.#sweep(c, now);
      return { kind: 'new' as const };
    });
  }

  complete(record: IdempotencyRecord): Promise<void> {
    const done = {
      state: 'done' as const,
      status_code: record.statusCode,
      response: record.body,
      completed_at: timeIn(record.createdAt),
      expires_at: later(record.createdAt, this.#ttlMs),
    };
    return this.#store.transaction(async (tx) => {
      const c = transactionConn(tx);
      const updated = await c.run((db) =>
        db
          .updateTable('idempotency_keys')
          .set(done)
          .where('operator_id', '=', record.operatorId)
          .where('key', '=', record.key)
          .where('fingerprint', '=', record.fingerprint)
          .executeTakeFirst(),
      );
      if (updated.numUpdatedRows > 0n) return;
      // The reservation was swept meanwhile (a request running past IN_PROGRESS_TTL_MS).
      await c.run((db) =>
        db
          .insertInto('idempotency_keys')
          .values({
            operator_id: record.operatorId,
            key: record.key,
            fingerprint: record.fingerprint,
            created_at: timeIn(record.createdAt),
            ...done,
          })
          .onConflict((oc) => oc.columns(['operator_id', 'key']).doNothing())
          .execute(),
      );
    });
  }

  release(operatorId: string, key: string): Promise<void> {
    return this.#store.transaction(async (tx) => {
      await transactionConn(tx).run((db) =>
        db
          .deleteFrom('idempotency_keys')
          .where('operator_id', '=', operatorId)
          .where('key', '=', key)
          .where('state', '=', 'inProgress')
          .execute(),
      );
    });
  }

  async #sweep(c: Conn, now: Date): Promise<void> {
    if (now.getTime() < this.#nextSweep) return;
    await c.run((db) => db.deleteFrom('idempotency_keys').where('expires_at', '<', timeIn(now)).execute());
    // Only after the transaction commits would be exact; a sweep lost to a rollback is harmless.
    this.#nextSweep = now.getTime() + SWEEP_EVERY_MS;
  }
}

/** The durable IdempotencyStore for a SQL store; undefined for any other SmStore (keep one in memory). */
export function sqlIdempotencyStore(store: SmStore): SqlIdempotencyStore | undefined {
  return store instanceof SqliteStore || store instanceof PostgresStore
    ? new SqlIdempotencyStore(store)
    : undefined;
}
