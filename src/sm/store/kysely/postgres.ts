/**
 * The PostgreSQL store (pg Pool). Several SM processes may share one database
 * (ARCHITECTURE.md, scale-out): every transaction runs SERIALIZABLE, so it behaves as if the
 * transactions ran one at a time, and is run again (bounded, with jittered backoff) when
 * PostgreSQL reports a serialization failure or deadlock, or a unique key raced (retries take
 * turns: a session advisory lock before BEGIN). Within one process the store's transactions
 * take turns, and those queued together share one PostgreSQL transaction (group commit, each in
 * a SAVEPOINT): nearly every write appends to the audit chain, whose head is one row for all, so
 * concurrent writers of one process would only abort each other (the fleet benchmark's 16
 * concurrent registrations ran out of attempts: HTTP 500), and one at a time each paid a whole
 * commit (4.5 ms here). Conflicts are left to other processes on the same database. A transaction
 * function may therefore run more than once: it must not keep effects outside the store
 * (results it pushed to an outer array, messages it sent) from an attempt that did not commit.
 */
import { type Kysely, Kysely as KyselyDb, sql } from 'kysely';
import pg from 'pg';
import type { StoreTx } from '../types.ts';
import { Conn, type GroupMemo } from './conn.ts';
import { isRetryable } from './errors.ts';
import { GroupQueue, type Waiting } from './group-queue.ts';
import { migrate } from './migrations.ts';
import { CurrentSchemaPostgresDialect } from './pg-introspector.ts';
import { namingPool } from './pg-named.ts';
import type { Database } from './schema.ts';
import { type SqlStore, StoreClosedError } from './store.ts';
import { KyselyTx } from './tx.ts';

/** The default of PostgresStoreOptions.idleInTransactionMs. */
export const IDLE_IN_TRANSACTION_MS = 15_000;

export interface PostgresStoreOptions {
  /**
   * The schema holding the store (created if missing; lower-case letters, digits, _). Default:
   * the connection's current schema (usually public).
   */
  readonly schema?: string;
  /** Pool size (default 10). */
  readonly poolSize?: number;
  /**
   * A session idle inside a transaction this long is ended by PostgreSQL, its transaction rolled
   * back and its locks freed (default IDLE_IN_TRANSACTION_MS). Our transactions never wait
   * between statements on anything but this process's own JS, so only a stalled or cut-off
   * process reaches it, and its replicas then go on instead of waiting on its locks for ever.
   * An `idle_in_transaction_session_timeout` in the database URL wins.
   */
  readonly idleInTransactionMs?: number;
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

/** Store transactions committed together at most (one PostgreSQL transaction, one WAL flush). */
export const PG_MAX_GROUP = 64;

/** Why a group's PostgreSQL transaction has to run again (a conflict with another process). */
class GroupConflict {
  constructor(readonly error: unknown) {}
}

export class PostgresStore implements SqlStore {
  readonly dialect = 'postgres' as const;
  readonly db: Kysely<Database>;
  readonly #maxAttempts: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #queued = new GroupQueue(PG_MAX_GROUP, (group) => this.#group(group));
  #closed = false;
  #retries = 0;
  #commits = 0;

  constructor(db: Kysely<Database>, o: PostgresStoreOptions = {}) {
    this.db = db;
    this.#maxAttempts = Math.max(1, Math.floor(o.maxAttempts ?? 10));
    this.#baseMs = o.retryBaseMs ?? 5;
    this.#maxMs = o.retryMaxMs ?? 500;
  }

  /** How many times a group of transactions was run again since the store opened (tests, metrics). */
  get retries(): number {
    return this.#retries;
  }

  /** PostgreSQL transactions committed so far (each holds one or more store transactions). */
  get commits(): number {
    return this.#commits;
  }

  /**
   * Runs `fn` as one store transaction. This process's transactions take turns, and those queued
   * while others run are committed together (group commit, as on SQLite): each runs inside its
   * own SAVEPOINT of one SERIALIZABLE transaction, so a failing one is rolled back alone and
   * rejected, and the others settle only after the COMMIT. If PostgreSQL reports a conflict with
   * another process (serialization failure, deadlock, a raced unique key), the whole group runs
   * again, every function in it included.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    return this.#queued.add(fn);
  }

  /** Runs `group` in one PostgreSQL transaction, again after a conflict (bounded attempts). */
  async #group(group: Waiting[]): Promise<void> {
    let live = group;
    // Functions that failed on their own: rejected at once, not run again with their group.
    const rejected = new Set<Waiting>();
    for (let attempt = 1; ; attempt++) {
      try {
        const done = await this.#attempt(live, attempt, rejected);
        for (const d of done) d.item.resolve(d.value);
        return;
      } catch (e) {
        const conflict = e instanceof GroupConflict;
        const error = conflict ? e.error : e;
        live = live.filter((item) => !rejected.has(item));
        if (!conflict || attempt >= this.#maxAttempts) {
          for (const item of live) item.reject(error);
          return;
        }
        this.#retries++;
        await sleep(Math.random() * Math.min(this.#maxMs, this.#baseMs * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * One attempt at a group. A retry (attempt > 1) first takes a session advisory lock, before
   * BEGIN, so that its snapshot starts after the lock and other processes' retries take turns
   * with it. Throws GroupConflict when the group must run again, anything else when it cannot.
   */
  async #attempt(
    group: Waiting[],
    attempt: number,
    rejected: Set<Waiting>,
  ): Promise<{ item: Waiting; value: unknown }[]> {
    return this.db.connection().execute(async (db) => {
      if (attempt > 1) await sql`SELECT pg_advisory_lock(${RETRY_LOCK_KEY})`.execute(db);
      try {
        return await this.#inTransaction(db, group, rejected);
      } finally {
        // If the connection broke, its session (and the lock) went with it.
        if (attempt > 1)
          await sql`SELECT pg_advisory_unlock(${RETRY_LOCK_KEY})`.execute(db).catch(() => undefined);
      }
    });
  }

  async #inTransaction(
    db: Kysely<Database>,
    group: Waiting[],
    rejected: Set<Waiting>,
  ): Promise<{ item: Waiting; value: unknown }[]> {
    const done: { item: Waiting; value: unknown }[] = [];
    // Control statements go in pairs, each pair one simple-protocol query (one round trip):
    // BEGIN with the first SAVEPOINT, and after each store transaction that returned, RELEASE
    // with the next SAVEPOINT. The RELEASE fails if that store transaction left PostgreSQL's
    // transaction aborted (a failed statement it caught), which then rejects it alone, as a
    // throw would. A rolled-back savepoint stays in place for the next store transaction.
    // The audit head as this group's appends left it (conn.ts): the transaction's snapshot is
    // taken at its first statement, so reading the head again would give the same row.
    const memo: GroupMemo = { auditHead: undefined };
    try {
      await sql.raw('BEGIN ISOLATION LEVEL SERIALIZABLE; SAVEPOINT store_tx').execute(db);
      for (const item of group) {
        const conn = new Conn(db, 'postgres', memo);
        const headBefore = memo.auditHead;
        try {
          const value = await item.fn(new KyselyTx(conn));
          conn.end();
          await sql.raw('RELEASE store_tx; SAVEPOINT store_tx').execute(db);
          done.push({ item, value });
        } catch (e) {
          conn.end();
          memo.auditHead = headBefore;
          if (isRetryable(e) || conn.conflicted) throw new GroupConflict(e);
          await sql`ROLLBACK TO store_tx`.execute(db);
          rejected.add(item);
          item.reject(e);
        }
      }
      // COMMIT of a transaction that is aborted after all answers ROLLBACK instead of failing.
      const { rows } = await sql<{ command?: string }>`COMMIT`.execute(db);
      if (rows[0]?.command === 'ROLLBACK')
        throw new Error('PostgreSQL rolled the transaction back at COMMIT');
      this.#commits++;
      return done;
    } catch (e) {
      await sql`ROLLBACK`.execute(db).catch(() => undefined);
      throw e instanceof GroupConflict || !isRetryable(e) ? e : new GroupConflict(e);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queued.idle();
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
    idle_in_transaction_session_timeout: o.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS,
    // A peer gone without a reset (a cut network) is noticed by the socket, not only by a timeout.
    keepAlive: true,
    ...(schema !== undefined && { options: `-c search_path=${schema}` }),
  });
  // A client losing its connection must not crash the process, idle in the pool or checked out
  // (e.g. ended by idle_in_transaction_session_timeout between two statements): the next query
  // on it reports the failure to its transaction.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  // The migrator's introspection sees only the current schema: kysely's own reads every schema
  // and fails when another session drops one meanwhile (see pg-introspector.ts).
  const db = new KyselyDb<Database>({
    dialect: new CurrentSchemaPostgresDialect({ pool: namingPool(pool) }),
  });
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
