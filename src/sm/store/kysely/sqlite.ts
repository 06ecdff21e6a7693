/**
 * The SQLite store (better-sqlite3: one connection, WAL, foreign keys on, a busy timeout for
 * other processes on the same file). Transactions are queued and run one at a time (per file,
 * across every store this process opens on it), inside BEGIN IMMEDIATE ... COMMIT: it takes the
 * write lock at once, so two processes on one file wait for each other (busy timeout) instead
 * of failing on a lock upgrade. A transaction function's awaits never let another transaction
 * in between its statements. Transactions that queue up in one turn of the event loop, or while
 * a group runs, share the next COMMIT (group commit, group-queue.ts), each in its own SAVEPOINT.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { type Kysely, Kysely as KyselyDb, type SqliteDatabase, SqliteDialect } from 'kysely';
import { HandoverError } from '../../../protocol/errors.ts';
import type { StoreTx } from '../types.ts';
import { Conn, type GroupMemo } from './conn.ts';
import { GroupQueue, type Waiting } from './group-queue.ts';
import { migrate } from './migrations.ts';
import type { Database } from './schema.ts';
import { type SqlStore, StoreClosedError } from './store.ts';
import { KyselyTx } from './tx.ts';

export interface SqliteStoreOptions {
  /** How long a statement waits for another process's lock (default 5000 ms). */
  readonly busyTimeoutMs?: number;
}

/**
 * The transaction queue of one database file, shared by every store this process opens on it.
 * better-sqlite3 waits for a lock synchronously, blocking the event loop: a second connection
 * in the same process waiting on BEGIN IMMEDIATE would stop the first from ever committing.
 * So transactions on one file take turns here; other processes wait on the busy timeout.
 */
interface FileQueue {
  /** Settles when the last transaction queued on the file has ended. */
  tail: Promise<unknown>;
  users: number;
  /** The key in `queues`, or undefined for a private (in-memory) database. */
  readonly key: string | undefined;
}
const queues = new Map<string, FileQueue>();

function queueFor(path: string): FileQueue {
  if (path === ':memory:' || path === '') return { tail: Promise.resolve(), users: 1, key: undefined };
  const key = resolve(path);
  const q = queues.get(key) ?? { tail: Promise.resolve(), users: 0, key };
  q.users++;
  queues.set(key, q);
  return q;
}

function releaseQueue(q: FileQueue): void {
  q.users--;
  if (q.users === 0 && q.key !== undefined) queues.delete(q.key);
}

type ControlStatement =
  | 'BEGIN IMMEDIATE'
  | 'COMMIT'
  | 'ROLLBACK'
  | 'SAVEPOINT store_tx'
  | 'RELEASE store_tx'
  | 'ROLLBACK TO store_tx';

/** Store transactions committed together at most (one SQLite transaction, one WAL sync). */
export const MAX_GROUP = 64;

export class SqliteStore implements SqlStore {
  readonly dialect = 'sqlite' as const;
  readonly db: Kysely<Database>;
  readonly path: string;
  readonly #queue: FileQueue;
  /** The connection under kysely, for the transaction control statements (see #control). */
  readonly #raw: BetterSqlite3.Database;
  readonly #controls = new Map<ControlStatement, BetterSqlite3.Statement>();
  readonly #queued: GroupQueue;
  #pending: Promise<unknown> = Promise.resolve();
  #closed = false;
  #commits = 0;

  /**
   * `raw` is the better-sqlite3 connection kysely runs on: it says whether SQLite has a
   * transaction open (it may roll one back by itself on some errors), and runs the control
   * statements.
   */
  constructor(db: Kysely<Database>, path: string, raw: BetterSqlite3.Database) {
    this.db = db;
    this.path = path;
    this.#queue = queueFor(path);
    this.#raw = raw;
    this.#queued = new GroupQueue(MAX_GROUP, (group) =>
      this.exclusive(() => this.db.connection().execute((db) => this.#group(db, group))),
    );
  }

  #inTransaction(): boolean {
    return this.#raw.inTransaction;
  }

  /**
   * BEGIN, COMMIT, SAVEPOINT and the like, 2 to 3 for each store transaction: straight on the
   * connection (one prepared statement each), not through kysely's compiler and driver. The
   * group runs inside kysely's hold on that one connection, so nothing else runs in between.
   */
  async #control(statement: ControlStatement): Promise<void> {
    let prepared = this.#controls.get(statement);
    if (!prepared) {
      prepared = this.#raw.prepare(statement);
      this.#controls.set(statement, prepared);
    }
    prepared.run();
  }

  /** SQLite transactions committed so far (each holds one or more store transactions). */
  get commits(): number {
    return this.#commits;
  }

  /**
   * Runs `fn` as one store transaction. Transactions queued while others run are committed
   * together (group commit): each runs inside its own SAVEPOINT of one BEGIN IMMEDIATE … COMMIT,
   * so a failing one is rolled back alone and rejected at once, and the others' promises settle
   * only after the COMMIT, so nothing is reported done before it is durable. With
   * synchronous = FULL, each COMMIT waits for the disk; sharing it is what makes many small
   * transactions affordable (BENCHMARKS.md).
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreClosedError());
    return this.#queued.add(fn);
  }

  /** One SQLite transaction over up to MAX_GROUP waiting store transactions. */
  async #group(db: Kysely<Database>, group: Waiting[]): Promise<void> {
    const done: { readonly item: Waiting; readonly value: unknown }[] = [];
    try {
      await this.#control('BEGIN IMMEDIATE');
    } catch (e) {
      for (const item of group) item.reject(e);
      return;
    }
    let lost: unknown;
    // Dropped with the group: another process may append to the audit log before the next one.
    const memo: GroupMemo = { auditHead: undefined };
    for (const [i, item] of group.entries()) {
      if (lost !== undefined) {
        // SQLite rolled the whole transaction back: the rest run in the next group.
        this.#queued.requeue(group.slice(i));
        break;
      }
      const conn = new Conn(db, 'sqlite', memo);
      const headBefore = memo.auditHead;
      try {
        await this.#control('SAVEPOINT store_tx');
        const value = await item.fn(new KyselyTx(conn));
        conn.end();
        await this.#control('RELEASE store_tx');
        done.push({ item, value });
      } catch (e) {
        conn.end();
        item.reject(e);
        // Its appends are undone with it (or with the whole group, which drops the memo).
        memo.auditHead = headBefore;
        if (this.#inTransaction()) {
          try {
            await this.#control('ROLLBACK TO store_tx');
            await this.#control('RELEASE store_tx');
          } catch (rollbackError) {
            lost = rollbackError;
          }
        } else {
          lost = e;
        }
      }
    }
    if (lost !== undefined) {
      await this.#control('ROLLBACK').catch(() => undefined);
      for (const d of done) d.item.reject(lost);
      return;
    }
    try {
      await this.#control('COMMIT');
      this.#commits++;
    } catch (e) {
      await this.#control('ROLLBACK').catch(() => undefined);
      for (const d of done) d.item.reject(e);
      return;
    }
    for (const d of done) d.item.resolve(d.value);
  }

  /** Runs `fn` when every transaction queued on this file before it has ended. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#queue.tail.then(fn, fn);
    this.#queue.tail = this.#pending = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queued.idle();
    await this.#pending;
    releaseQueue(this.#queue);
    await this.db.destroy();
  }
}

/** Prepared statements kept per SQL text (kysely's dialect prepares every query again otherwise). */
const STATEMENT_CACHE_SIZE = 512;

/**
 * `database` for kysely's SqliteDialect, with its prepared statements cached by SQL text (at most
 * STATEMENT_CACHE_SIZE, the oldest dropped first). Preparing was about 8 % of an SM's CPU in the
 * fleet benchmark (BENCHMARKS.md). A statement is run to completion before the next query on the
 * one connection, and SQLite re-prepares a cached statement by itself after a schema change.
 */
function cachingDatabase(database: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => database.close(),
    prepare(text: string) {
      let stmt = cache.get(text);
      if (!stmt) {
        stmt = database.prepare(text);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        cache.set(text, stmt);
      }
      return stmt;
    },
  };
}

/** Opens (creating if need be) the SQLite file at `path` and brings its schema up to date. */
export async function openSqliteStore(path: string, o: SqliteStoreOptions = {}): Promise<SqliteStore> {
  // SQLite takes an empty file for a new database; where a store was, that is one cut short.
  if (path !== ':memory:' && path !== '' && existsSync(path) && statSync(path).size === 0) {
    throw new HandoverError(
      'StoreError',
      `${path} is an empty file, not a store (was it cut short?): restore it from a backup, or delete it to start a new, empty store`,
      { path },
    );
  }
  const database = new BetterSqlite3(path);
  try {
    database.pragma(`busy_timeout = ${Math.max(0, Math.floor(o.busyTimeoutMs ?? 5000))}`);
    database.pragma('foreign_keys = ON');
    database.pragma('synchronous = FULL');
    // Each store transaction is a SAVEPOINT, and statements with triggers or constraints open a
    // statement journal: with the default temp_store these go to temporary files, a write
    // system call for every page a statement first touches. In memory, an audit append took
    // 66 instead of 119 µs of CPU (BENCHMARKS.md); they never hold more than one group's pages.
    database.pragma('temp_store = MEMORY');
  } catch (e) {
    database.close();
    throw e;
  }
  const store = new SqliteStore(
    new KyselyDb<Database>({ dialect: new SqliteDialect({ database: cachingDatabase(database) }) }),
    path,
    database,
  );
  try {
    await store.exclusive(async () => {
      // Switching to WAL needs the file to itself: after this process's queued transactions.
      database.pragma('journal_mode = WAL');
      await migrate(store.db, 'sqlite');
    });
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}
