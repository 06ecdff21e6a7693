/**
 * A pg Pool for kysely whose clients run the store's queries as named prepared statements, so
 * PostgreSQL parses and plans each distinct statement once per connection instead of on every
 * call: kysely's driver sends every query unnamed, and in the fleet benchmark the PostgreSQL
 * server spent more CPU than both SMs (BENCHMARKS.md). node-postgres keeps the names it has
 * prepared per connection and sends Parse only the first time a connection meets one.
 *
 * Which statements get a name: SELECT, INSERT, UPDATE, DELETE and WITH, the first MAX_NAMED
 * distinct texts of the process (a name is the text's SHA-256, so one text has one name on every
 * connection). Texts beyond that (say IN lists of every length) run unnamed as before: what the
 * server keeps per connection stays bounded. Transaction control (BEGIN, SAVEPOINT, …) and DDL
 * always run unnamed. PostgreSQL invalidates a prepared plan itself when a table it uses changes.
 */
import { createHash } from 'node:crypto';
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';

/** Distinct statement texts named at most, per process. */
export const MAX_NAMED = 512;

const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;

/** The name of each statement text that gets one (see the file comment). */
export class StatementNames {
  readonly #names = new Map<string, string>();
  readonly limit: number;

  constructor(limit = MAX_NAMED) {
    this.limit = limit;
  }

  get size(): number {
    return this.#names.size;
  }

  /** The statement's name, or undefined: run it unnamed. */
  nameOf(text: string): string | undefined {
    const known = this.#names.get(text);
    if (known !== undefined) return known;
    if (this.#names.size >= this.limit || !PREPARABLE.test(text)) return undefined;
    const name = `hq_${createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32)}`;
    this.#names.set(text, name);
    return name;
  }
}

/** `pool` for kysely's PostgresDialect, its queries named by `names`. */
export function namingPool(pool: pg.Pool, names: StatementNames = new StatementNames()): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      // kysely's client interface; node-postgres's results are what kysely's own driver reads.
      function query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
      function query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
      function query<R>(
        sql: string | PostgresCursor<R>,
        parameters?: ReadonlyArray<unknown>,
      ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
        // A cursor (kysely's streaming) goes through as it is.
        if (typeof sql !== 'string')
          return client.query(sql as unknown as pg.Submittable) as unknown as PostgresCursor<R>;
        const values = parameters === undefined ? [] : [...parameters];
        const name = names.nameOf(sql);
        const config = name === undefined ? { text: sql, values } : { name, text: sql, values };
        return client.query(config) as unknown as Promise<PostgresQueryResult<R>>;
      }
      return { query, release: (destroy?: boolean) => client.release(destroy) };
    },
    end: () => pool.end(),
  };
}
