/** The SQL stores (kysely): SQLite and PostgreSQL, one schema, the same semantics as MemoryStore. */

export { isRetryable, storeErrorOf } from './errors.ts';
export { SqlIdempotencyStore, sqlIdempotencyStore } from './idempotency.ts';
export { migrate, migrations } from './migrations.ts';
export { type OpenStoreOptions, openStore } from './open.ts';
export { openPostgresStore, PostgresStore, type PostgresStoreOptions } from './postgres.ts';
export type { Database, SqlDialect } from './schema.ts';
export { openSqliteStore, SqliteStore, type SqliteStoreOptions } from './sqlite.ts';
export { type SqlStore, StoreClosedError } from './store.ts';
export { transactionDb } from './tx.ts';
