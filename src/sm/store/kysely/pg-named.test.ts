/**
 * Named prepared statements for PostgreSQL (pg-named.ts): which texts get a name, and, against
 * the database in DATABASE_URL, that a store statement run three times is prepared once on its
 * connection.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { sql } from 'kysely';
import { MAX_NAMED, StatementNames } from './pg-named.ts';
import type { PostgresStore } from './postgres.ts';
import { tempSchema, testDatabaseUrlOrSkip } from './testing.ts';

test('statement names: one per distinct query text, none for control statements or past the limit', () => {
  const names = new StatementNames(3);
  const a = names.nameOf('select * from "transfers" where "id" = $1');
  assert.match(a ?? '', /^hq_[0-9a-f]{32}$/);
  assert.equal(names.nameOf('select * from "transfers" where "id" = $1'), a);
  for (const text of [
    'BEGIN ISOLATION LEVEL SERIALIZABLE',
    'SAVEPOINT store_tx',
    'COMMIT',
    'create table x (y int)',
  ]) {
    assert.equal(names.nameOf(text), undefined, text);
  }
  const b = names.nameOf('insert into "audit" ("seq") values ($1)');
  const c = names.nameOf('update "outbox" set "state" = $1 where "id" = $2');
  assert.ok(b && c && new Set([a, b, c]).size === 3);
  assert.equal(names.nameOf('delete from "orders" where "id" = $1'), undefined, 'past the limit: unnamed');
  assert.equal(names.size, 3);
  assert.equal(new StatementNames().limit, MAX_NAMED);
});

/** `fn` on a store in a fresh schema of DATABASE_URL (dropped after); skipped without one. */
async function onTempStore(t: TestContext, poolSize: number, fn: (store: PostgresStore) => Promise<void>) {
  const url = testDatabaseUrlOrSkip(t);
  if (url === undefined) return;
  const temp = tempSchema(url);
  const store = await temp.open({ poolSize });
  try {
    await fn(store);
  } finally {
    await temp.drop(store);
  }
}

test('PostgreSQL: a store statement run three times is prepared once on its connection', (t) =>
  onTempStore(t, 1, async (store) => {
    const eid = '89001012012341234012345678901224';
    for (let i = 0; i < 3; i++) {
      assert.equal(await store.transaction((tx) => tx.getChip(eid)), undefined);
    }
    const prepared = await sql<{ name: string; statement: string }>`
      SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'hq_%'`.execute(store.db);
    const chipQuery = prepared.rows.filter((r) => r.statement.includes('from "chips" where "eid" = $1'));
    assert.equal(chipQuery.length, 1, JSON.stringify(prepared.rows));
  }));
