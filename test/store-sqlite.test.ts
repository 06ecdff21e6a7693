/** The SQLite store: the SmStore contract, the SQL store suite, and what is SQLite's own. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { findAuditBreak } from '../src/sm/audit-chain.ts';
import { chip, EID, storeContract, T0 } from '../src/sm/store/contract.ts';
import { openSqliteStore, openStore, StoreClosedError } from '../src/sm/store/kysely/index.ts';
import { sqlStoreSuite } from '../src/sm/store/kysely/sql-contract.ts';
import { sqliteBackend, sqliteSqlBackend, tempSqlite } from '../src/sm/store/kysely/testing.ts';
import type { SmStore } from '../src/sm/store/types.ts';

storeContract('SQLite', sqliteBackend());
sqlStoreSuite('SQLite', sqliteSqlBackend());

const increment = (store: SmStore, pause = 1) =>
  store.transaction(async (tx) => {
    const c = await tx.getChip(EID);
    await new Promise((r) => setTimeout(r, pause));
    await tx.useCounter(EID, c!.counter + 1);
    await tx.appendAudit({ at: T0, actor: 'system', action: 'inc', details: { to: c!.counter + 1 } });
  });

test('SQLite: WAL, foreign keys and a busy timeout are on', async () => {
  const file = tempSqlite();
  const store = await file.open();
  try {
    const pragma = async (name: string) =>
      Object.values((await sql.raw(`PRAGMA ${name}`).execute(store.db)).rows[0] ?? {})[0];
    assert.equal(pragma ? await pragma('journal_mode') : undefined, 'wal');
    assert.equal(await pragma('foreign_keys'), 1);
    assert.equal(await pragma('busy_timeout'), 5000);
  } finally {
    await store.close();
    file.remove();
  }
});

test('SQLite: two stores on one file in one process take turns', async () => {
  const file = tempSqlite();
  const a = await file.open();
  await a.transaction((tx) => tx.putChip(chip()));
  const b = await file.open();
  try {
    await Promise.all(Array.from({ length: 20 }, (_, i) => increment(i % 2 ? a : b)));
    assert.equal((await b.transaction((tx) => tx.getChip(EID)))?.counter, 20);
    assert.equal(findAuditBreak(await a.transaction((tx) => tx.listAudit())), undefined);
  } finally {
    await a.close();
    await b.close();
    file.remove();
  }
});

test('SQLite: another process writing the same file waits its turn (BEGIN IMMEDIATE, busy timeout)', async (t) => {
  const file = tempSqlite();
  const store = await file.open();
  await store.transaction((tx) => tx.putChip(chip()));
  const module = fileURLToPath(new URL('../src/sm/store/kysely/sqlite.ts', import.meta.url));
  const script = join(file.path, '..', 'writer.mts');
  writeFileSync(
    script,
    `import { openSqliteStore } from ${JSON.stringify(module)};
const store = await openSqliteStore(process.argv[2]);
process.stdout.write('ready\\n');
for (let i = 0; i < 15; i++) {
  await store.transaction(async (tx) => {
    const c = await tx.getChip(${JSON.stringify(EID)});
    await new Promise((r) => setTimeout(r, 2));
    await tx.useCounter(${JSON.stringify(EID)}, c.counter + 1);
    await tx.appendAudit({ at: new Date(0), actor: 'system', action: 'child', details: {} });
  });
}
await store.close();
`,
  );
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', script, file.path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    // Start once the child has the file open, so that both write at the same time.
    await new Promise<void>((r, reject) => {
      child.stdout.once('data', () => r());
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    for (let i = 0; i < 15; i++) await increment(store, 2);
    assert.equal(await exited, 0);
    assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.counter, 30);
    const log = await store.transaction((tx) => tx.listAudit());
    assert.equal(log.length, 30);
    assert.equal(findAuditBreak(log), undefined);
    t.diagnostic(
      `writers alternated ${log.filter((e, i) => i > 0 && e.action !== log[i - 1]?.action).length} times`,
    );
  } finally {
    await store.close();
    file.remove();
  }
});

test('SQLite: transactions queued together share a COMMIT; one that fails is rolled back alone; each settles once committed', async () => {
  const file = tempSqlite();
  const store = await openSqliteStore(file.path);
  const reader = new BetterSqlite3(file.path, { readonly: true });
  try {
    await store.transaction((tx) => tx.putChip(chip()));
    const commitsBefore = store.commits;
    const visible = (action: string) =>
      reader.prepare('SELECT count(*) AS n FROM audit WHERE action = ?').get(action) as { n: number };
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        store
          .transaction(async (tx) => {
            await tx.appendAudit({ at: T0, actor: 'system', action: `t${i}`, details: {} });
            if (i === 10 || i === 20) throw new Error(`boom ${i}`);
            return i;
          })
          // Settled only after its COMMIT: another connection sees the entry already.
          .then((v) => ({ v, seen: visible(`t${i}`).n })),
      ),
    );
    for (const [i, r] of results.entries()) {
      if (i === 10 || i === 20) {
        assert.equal(r.status, 'rejected');
        assert.match(String((r as PromiseRejectedResult).reason), new RegExp(`boom ${i}`));
      } else {
        assert.deepEqual(r.status === 'fulfilled' && r.value, { v: i, seen: 1 }, `transaction ${i}`);
      }
    }
    const log = await store.transaction((tx) => tx.listAudit());
    assert.equal(log.length, 28);
    assert.ok(!log.some((e) => e.action === 't10' || e.action === 't20'));
    assert.equal(findAuditBreak(log), undefined);
    // 30 store transactions in fewer SQLite transactions (the first runs alone, the rest queue).
    assert.ok(store.commits - commitsBefore < 30, `commits: ${store.commits - commitsBefore}`);
  } finally {
    reader.close();
    await store.close();
    file.remove();
  }
});

test('SQLite: close waits for queued transactions, then refuses new ones', async () => {
  const file = tempSqlite();
  const store = await file.open();
  await store.transaction((tx) => tx.putChip(chip()));
  const running = Promise.all([increment(store, 5), increment(store, 5)]);
  await store.close();
  await running;
  await assert.rejects(
    store.transaction((tx) => tx.getChip(EID)),
    StoreClosedError,
  );
  const again = await openSqliteStore(file.path);
  assert.equal((await again.transaction((tx) => tx.getChip(EID)))?.counter, 2);
  await again.close();
  file.remove();
});

test('openStore: SQLite without a database URL; an empty URL counts as none', async () => {
  const file = tempSqlite();
  const a = await openStore({ sqlitePath: file.path });
  assert.equal(a.dialect, 'sqlite');
  await a.close();
  const b = await openStore({ databaseUrl: '', sqlitePath: file.path });
  assert.equal(b.dialect, 'sqlite');
  await b.close();
  await assert.rejects(openStore({ sqlitePath: '' }), /databaseUrl|sqlitePath/);
  file.remove();
});
