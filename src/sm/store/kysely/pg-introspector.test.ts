/**
 * The current-schema introspector (pg-introspector.ts), against the database in DATABASE_URL:
 * what it reports, and that stores open while another session creates and drops schemas (with
 * kysely's own introspector about every second open failed so, 26 of 60 in one try).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { PostgresIntrospector, type TableMetadata } from 'kysely';
import pg from 'pg';
import { CurrentSchemaIntrospector } from './pg-introspector.ts';
import type { PostgresStore } from './postgres.ts';
import { tempSchema, testDatabaseUrlOrSkip } from './testing.ts';

/** kysely's own tables, read again when a schema dropped meanwhile by another test fails the read. */
async function kyselyTables(store: PostgresStore): Promise<TableMetadata[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await new PostgresIntrospector(store.db).getTables();
    } catch (e) {
      if (attempt >= 10 || (e as { code?: unknown }).code !== '3F000') throw e;
    }
  }
}

test('PostgreSQL introspection: the current schema only, its tables with their columns in order', async (t) => {
  const url = testDatabaseUrlOrSkip(t);
  if (url === undefined) return;
  const mine = tempSchema(url);
  const other = tempSchema(url);
  const store = await mine.open({ poolSize: 1 });
  const otherStore = await other.open({ poolSize: 1 });
  try {
    const introspector = new CurrentSchemaIntrospector(store.db);
    assert.deepEqual(await introspector.getSchemas(), [{ name: mine.schema }]);
    const tables = await introspector.getTables();
    const names = tables.map((x) => x.name);
    assert.ok(names.includes('chips') && names.includes('transfers'), names.join());
    assert.ok(!names.includes('kysely_migration'), 'kysely tables only when asked');
    assert.ok(
      tables.every((x) => x.schema === mine.schema && !x.isView),
      'no table of the other schema',
    );
    const withInternal = await introspector.getTables({ withInternalKyselyTables: true });
    assert.ok(withInternal.some((x) => x.name === 'kysely_migration'));
    // kysely's own introspector, restricted to the schema, is the oracle (its comment field aside).
    const oracle = (await kyselyTables(store)).filter((x) => x.schema === mine.schema);
    assert.deepEqual(
      tables,
      oracle.map((x) => ({ ...x, columns: x.columns.map(({ comment: _, ...c }) => c) })),
    );
    assert.deepEqual((await introspector.getMetadata()).tables, tables);
  } finally {
    await other.drop(otherStore);
    await mine.drop(store);
  }
});

test('PostgreSQL: stores open while another session creates and drops schemas', async (t) => {
  const url = testDatabaseUrlOrSkip(t);
  if (url === undefined) return;
  const churn = new pg.Client({ connectionString: url });
  await churn.connect();
  const prefix = `handover_test_churn_${randomBytes(4).toString('hex')}`;
  let stop = false;
  let churned = 0;
  const loop = (async () => {
    while (!stop) {
      const s = `${prefix}_${churned++}`;
      await churn.query(`CREATE SCHEMA ${s}; CREATE TABLE ${s}.t (a int)`);
      await churn.query(`DROP SCHEMA ${s} CASCADE`);
    }
  })();
  const failures: string[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const schema = tempSchema(url);
      try {
        await schema.drop(await schema.open({ poolSize: 1 }));
      } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
      }
    }
  } finally {
    stop = true;
    await loop.finally(() => churn.end());
  }
  assert.ok(churned > 20, `the other session churned ${churned} schemas meanwhile`);
  assert.deepEqual(failures, []);
});
