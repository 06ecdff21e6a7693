/**
 * One open transaction as the repositories see it: a kysely handle bound to it, the dialect,
 * and `run`, which turns database refusals into StoreConstraintErrors and notes a PostgreSQL
 * conflict that calls for running the whole transaction again.
 */
import type { Kysely } from 'kysely';
import { isRetryable, storeErrorOf, type WriteHint } from './errors.ts';
import type { Database, SqlDialect } from './schema.ts';

export class Conn {
  #db: Kysely<Database> | undefined;
  readonly dialect: SqlDialect;
  /**
   * PostgreSQL: a statement failed because a concurrent transaction got there first
   * (serialization failure, deadlock, or a unique key that our snapshot could not see: every
   * unique key is checked in code before the write, so a violation here is a race). The store
   * runs the transaction again; the retry's checks then give the proper refusal, if any.
   */
  conflicted = false;

  constructor(db: Kysely<Database>, dialect: SqlDialect) {
    this.#db = db;
    this.dialect = dialect;
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
