/**
 * Backends for the store contract (contract.ts) and the SQL store tests: a SQLite file in a fresh
 * temporary directory, or a fresh PostgreSQL schema (handover_test_<random>) in the database
 * DATABASE_URL names, dropped when the test is done.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { ContractBackend } from '../contract.ts';
import type { SmStore } from '../types.ts';
import { openPostgresStore, type PostgresStore, type PostgresStoreOptions } from './postgres.ts';
import type { SqlBackend } from './sql-contract.ts';
import { openSqliteStore, type SqliteStore } from './sqlite.ts';

export const PG_SKIP = 'DATABASE_URL not set: PostgreSQL store tests skipped';

/** The PostgreSQL URL for tests, or undefined (then PostgreSQL tests call t.skip(PG_SKIP)). */
export const testDatabaseUrl = (): string | undefined => process.env.DATABASE_URL || undefined;

/** testDatabaseUrl(), or undefined after marking the test skipped with PG_SKIP. */
export function testDatabaseUrlOrSkip(t: { skip(message?: string): void }): string | undefined {
  const url = testDatabaseUrl();
  if (url === undefined) t.skip(PG_SKIP);
  return url;
}

export interface TempSqlite {
  readonly path: string;
  open(): Promise<SqliteStore>;
  /** Removes the directory (close every store on it first). */
  remove(): void;
}

export function tempSqlite(name = 'store.db'): TempSqlite {
  const dir = mkdtempSync(join(tmpdir(), 'handover-store-'));
  const path = join(dir, name);
  return {
    path,
    open: () => openSqliteStore(path),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TempSchema {
  readonly schema: string;
  open(o?: Omit<PostgresStoreOptions, 'schema'>): Promise<PostgresStore>;
  /** Drops the schema (through `store`, which it then closes). */
  drop(store: PostgresStore): Promise<void>;
}

export function tempSchema(url: string): TempSchema {
  const schema = `handover_test_${randomBytes(6).toString('hex')}`;
  return {
    schema,
    open: (o = {}) => openPostgresStore(url, { ...o, schema }),
    async drop(store) {
      try {
        await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(store.db);
      } finally {
        await store.close();
      }
    },
  };
}

export function sqliteBackend(): ContractBackend {
  const files = new Map<SmStore, TempSqlite>();
  return {
    async open() {
      const file = tempSqlite();
      const store = await file.open();
      files.set(store, file);
      return store;
    },
    async reopen(store) {
      const file = files.get(store);
      if (!file) throw new Error('not a store from this backend');
      await (store as SqliteStore).close();
      files.delete(store);
      const again = await file.open();
      files.set(again, file);
      return again;
    },
    async dispose(store) {
      await (store as SqliteStore).close();
      files.get(store)?.remove();
      files.delete(store);
    },
  };
}

export function postgresBackend(url = testDatabaseUrl()): ContractBackend {
  if (url === undefined) {
    // reopen too, so the skipped suite lists the same tests as the real one.
    const unavailable = () => Promise.reject(new Error(PG_SKIP));
    return { skip: PG_SKIP, open: unavailable, reopen: unavailable };
  }
  const schemas = new Map<SmStore, TempSchema>();
  return {
    async open() {
      const s = tempSchema(url);
      const store = await s.open();
      schemas.set(store, s);
      return store;
    },
    async reopen(store) {
      const s = schemas.get(store);
      if (!s) throw new Error('not a store from this backend');
      await (store as PostgresStore).close();
      schemas.delete(store);
      const again = await s.open();
      schemas.set(again, s);
      return again;
    },
    async dispose(store) {
      const s = schemas.get(store);
      schemas.delete(store);
      if (s) await s.drop(store as PostgresStore);
      else await (store as PostgresStore).close();
    },
  };
}

export function sqliteSqlBackend(): SqlBackend {
  return {
    async open() {
      const file = tempSqlite();
      const store = await file.open();
      return {
        store,
        async dispose() {
          await store.close();
          file.remove();
        },
      };
    },
  };
}

export function postgresSqlBackend(url = testDatabaseUrl()): SqlBackend {
  if (url === undefined) return { skip: PG_SKIP, open: () => Promise.reject(new Error(PG_SKIP)) };
  return {
    async open() {
      const s = tempSchema(url);
      const store = await s.open();
      return { store, schema: s.schema, dispose: () => s.drop(store) };
    },
  };
}
