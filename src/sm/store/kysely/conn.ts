/**
 * One open transaction as the repositories see it: a kysely handle bound to it, the dialect,
 * and `run`, which turns database refusals into StoreConstraintErrors and notes a PostgreSQL
 * conflict that calls for running the whole transaction again.
 */
import type { Kysely } from 'kysely';
import { isRetryable, storeErrorOf, type WriteHint } from './errors.ts';
import type { Database, SqlDialect } from './schema.ts';

/** The audit log's last entry, as much of it as the next entry's chain needs (audit.ts). */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * What the store transactions of one group (one database transaction, each store transaction in
 * a savepoint) remember between them: once one append has read the audit head, the next ones take
 * it from here instead of reading it again. SQLite: the group holds the file's write lock from
 * BEGIN IMMEDIATE to COMMIT, so nothing else appends meanwhile. PostgreSQL: the group's
 * SERIALIZABLE transaction reads one snapshot, so a second read would give the same row (plus
 * its own appends); another process's append shows as a conflict on the next seq, as before.
 * Each store makes one per group and attempt, and puts `auditHead` back as it was before a store
 * transaction that is rolled back to its savepoint.
 */
export interface GroupMemo {
  /** The head as this group's appends left it; undefined: not known yet, read it. */
  auditHead: AuditHead | undefined;
}

export class Conn {
  #db: Kysely<Database> | undefined;
  readonly dialect: SqlDialect;
  readonly #memo: GroupMemo | undefined;
  /**
   * PostgreSQL: a statement failed because a concurrent transaction got there first
   * (serialization failure, deadlock, or a unique key that our snapshot could not see: every
   * unique key is checked in code before the write, so a violation here is a race). The store
   * runs the transaction again; the retry's checks then give the proper refusal, if any.
   */
  conflicted = false;
  /**
   * Rows of `transfers` and `outbox` as this transaction last read or wrote them, by
   * `table:id`: saving compares the new values with these (rows.ts: changedValues) instead of
   * reading the row again. Nothing else writes them meanwhile: on SQLite the group holds the write
   * lock, and on PostgreSQL a read in this transaction would give its own snapshot anyway. The
   * rows go with the transaction, and transactionDb (raw access) clears them.
   */
  readonly rows = new Map<string, object>();

  constructor(db: Kysely<Database>, dialect: SqlDialect, memo?: GroupMemo) {
    this.#db = db;
    this.dialect = dialect;
    this.#memo = memo;
  }

  /**
   * The memo of the group this store transaction runs in, while it is open (a call the
   * transaction left running must not move the head after the store put it back).
   */
  get memo(): GroupMemo | undefined {
    return this.#db === undefined ? undefined : this.#memo;
  }

  get db(): Kysely<Database> {
    if (!this.#db) throw new Error('store transaction used after it ended');
    return this.#db;
  }

  /** After commit or rollback: the StoreTx handed to the caller stops working. */
  end(): void {
    this.#db = undefined;
  }

  async run<T>(statement: (db: Kysely<Database>) => Promise<T>, hint?: WriteHint): Promise<T> {
    const db = this.db;
    try {
      return await statement(db);
    } catch (e) {
      if (this.dialect === 'postgres' && isConflict(e)) this.conflicted = true;
      throw storeErrorOf(e, hint) ?? e;
    }
  }
}

function isConflict(e: unknown): boolean {
  return isRetryable(e) || (typeof e === 'object' && e !== null && 'code' in e && e.code === '23505');
}
