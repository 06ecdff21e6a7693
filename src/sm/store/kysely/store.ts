/** What both SQL stores offer beyond SmStore. */
import type { Kysely } from 'kysely';
import type { SmStore } from '../types.ts';
import type { Database, SqlDialect } from './schema.ts';

export interface SqlStore extends SmStore {
  readonly dialect: SqlDialect;
  /**
   * The kysely handle over the whole database, outside any store transaction: for migrations,
   * inspection and tests. Writing through it bypasses the store's checks (not the database's).
   */
  readonly db: Kysely<Database>;
  /** Waits for running transactions, then closes the database (SQLite) or the pool (PostgreSQL). */
  close(): Promise<void>;
}

export class StoreClosedError extends Error {
  constructor() {
    super('the store is closed');
  }
}
