/** Opens the store a configuration names: PostgreSQL when a database URL is given, else SQLite. */
import { openPostgresStore, type PostgresStoreOptions } from './postgres.ts';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite.ts';
import type { SqlStore } from './store.ts';

export type OpenStoreOptions =
  | ({ readonly databaseUrl: string; readonly sqlitePath?: string } & PostgresStoreOptions)
  | ({ readonly sqlitePath: string; readonly databaseUrl?: undefined } & SqliteStoreOptions);

/** A non-empty `databaseUrl` (e.g. process.env.DATABASE_URL) wins over `sqlitePath`. */
export function openStore(o: OpenStoreOptions): Promise<SqlStore> {
  if (o.databaseUrl !== undefined && o.databaseUrl !== '') {
    const { databaseUrl, sqlitePath: _s, ...options } = o;
    return openPostgresStore(databaseUrl, options);
  }
  if (o.sqlitePath !== undefined && o.sqlitePath !== '') {
    const options: SqliteStoreOptions = 'busyTimeoutMs' in o ? { busyTimeoutMs: o.busyTimeoutMs } : {};
    return openSqliteStore(o.sqlitePath, options);
  }
  return Promise.reject(new Error('openStore: give a databaseUrl (PostgreSQL) or a sqlitePath (SQLite)'));
}
