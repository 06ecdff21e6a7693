/**
 * The PostgreSQL store (pg Pool). Several SM processes may share one database
 * (ARCHITECTURE.md, scale-out): every transaction runs SERIALIZABLE, so it behaves as if the
 * transactions ran one at a time, and is run again (bounded, with jittered backoff) when
 * PostgreSQL reports a serialization failure or deadlock, or a unique key raced (retries take
 * turns: a session advisory lock before BEGIN). Within one process the store's transactions
 * take turns (a queue, as on SQLite): nearly every write appends to the audit chain, whose head
 * is one row for all, so concurrent writers of one process would only abort each other (the
 * fleet benchmark's 16 concurrent registrations ran out of attempts: HTTP 500). Conflicts are
 * then left to other processes on the same database. A transaction
 * function may therefore run more than once: it must not keep effects outside the store
 * (results it pushed to an outer array, messages it sent) from an attempt that did not commit.
 */
import { type Kysely, Kysely as KyselyDb, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { StoreTx } from '../types.ts';
import { Conn } from './conn.ts';
import { isRetryable } from './errors.ts';
import { migrate } from './migrations.ts';
import type { Database } from './schema.ts';
import { type SqlStore, StoreClosedError } from './store.ts';
import { KyselyTx } from './tx.ts';

export interface PostgresStoreOptions {
  /**
   * The schema holding the store (created if missing; lower-case letters, digits, _). Default:
   * the connection's current schema (usually public).
   */
  readonly schema?: string;
  /** Pool size (default 10). */
  readonly poolSize?: number;
  /** Attempts per transaction, the first included (default 10). */
  readonly maxAttempts?: number;
  /** Backoff before attempt n+1: random in [0, min(maxMs, baseMs * 2^(n-1))] (default 5 and 500 ms). */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The advisory lock that retried transactions take in turn ("HNDR"). */
const RETRY_LOCK_KEY = 0x484e4452;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PostgresStore implements SqlStore {
  readonly dialect = 'postgres' as const;
  readonly db: Kysely<Database>;
  readonly #maxAttempts: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #running = new Set<Promise<unknown>>();
  /** Settles when the last transaction queued in this store has ended (they take turns). */
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #retries = 0;

  constructor(db: Kysely<Database>, o: PostgresStoreOptions = {}) {
    this.db = db;
    this.#maxAttempts = Math.max(1, Math.floor(o.maxAttempts ?? 10));
    this.#baseMs = o.retryBaseMs ?? 5;
    this.#maxMs = o.retryMaxMs ?? 500;
  }

  /** How many attempts were run again since the store opened (for tests and metrics). */
  get retries(): number {
    return this.#retries;
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    const turn = () => this.#withRetries(fn);
    const p = this.#tail.then(turn, turn);
    this.#tail = p.catch(() => undefined);
    this.#running.add(p);
    const forget = () => this.#running.delete(p);
    p.then(forget, forget);
    return p;
  }

  async #withRetries<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const state: { conn?: Conn } = {};
      try {
        if (attempt === 1) return await this.#attempt(this.db, fn, state);
        // A transaction that lost a conflict (with another process) runs again in turn with the
        // other processes' retries: a session advisory lock taken before BEGIN, so its
        // SERIALIZABLE snapshot starts after the lock.
        return await this.db.connection().execute(async (db) => {
          await sql`SELECT pg_advisory_lock(${RETRY_LOCK_KEY})`.execute(db);
          try {
            return await this.#attempt(db, fn, state);
          } finally {
            // If the connection broke, its session (and the lock) went with it.
            await sql`SELECT pg_advisory_unlock(${RETRY_LOCK_KEY})`.execute(db).catch(() => undefined);
          }
        });
      } catch (e) {
        const again = isRetryable(e) || state.conn?.conflicted === true;
        if (!again || attempt >= this.#maxAttempts) throw e;
        this.#retries++;
        await sleep(Math.random() * Math.min(this.#maxMs, this.#baseMs * 2 ** (attempt - 1)));
      }
    }
  }

  #attempt<T>(db: Kysely<Database>, fn: (tx: StoreTx) => Promise<T>, state: { conn?: Conn }): Promise<T> {
    return db
      .transaction()
      .setIsolationLevel('serializable')
      .execute(async (trx) => {
        const conn = new Conn(trx, 'postgres');
        state.conn = conn;
        try {
          return await fn(new KyselyTx(conn));
        } finally {
          conn.end();
        }
      });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#running]);
    await this.db.destroy();
  }
}

/** Connects to `url`, creates the schema if asked, and brings it up to date (migrations take a lock). */
export async function openPostgresStore(url: string, o: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const { schema } = o;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`PostgreSQL schema name "${schema}": lower-case letters, digits and _ only`);
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: o.poolSize ?? 10,
    ...(schema !== undefined && { options: `-c search_path=${schema}` }),
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  const db = new KyselyDb<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (schema !== undefined) await sql.raw(`CREATE SCHEMA IF NOT EXISTS ${schema}`).execute(db);
    const current =
      schema ?? (await sql<{ s: string | null }>`SELECT current_schema() AS s`.execute(db)).rows[0]?.s;
    if (!current) throw new Error('PostgreSQL: no current schema (check search_path)');
    await migrate(db, 'postgres', { schema: current });
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return new PostgresStore(db, o);
}
