/**
 * The PostgreSQL store: the SmStore contract, the SQL store suite, and what several replicas on
 * one database need (SERIALIZABLE with retries, SKIP LOCKED). Each test gets a fresh schema.
 * Without DATABASE_URL every test is skipped, visibly.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { findAuditBreak } from '../src/sm/audit-chain.ts';
import { chip, EID, outgoing, peerItem, storeContract, T0 } from '../src/sm/store/contract.ts';
import { openStore, type PostgresStore } from '../src/sm/store/kysely/index.ts';
import { sqlStoreSuite } from '../src/sm/store/kysely/sql-contract.ts';
import {
  PG_SKIP,
  postgresBackend,
  postgresSqlBackend,
  tempSchema,
  testDatabaseUrl,
} from '../src/sm/store/kysely/testing.ts';

storeContract('PostgreSQL', postgresBackend());
sqlStoreSuite('PostgreSQL', postgresSqlBackend());

/** One store with `options` on a fresh schema (skipped without DATABASE_URL). */
async function oneStore(
  t: TestContext,
  options: Parameters<ReturnType<typeof tempSchema>['open']>[0],
  body: (store: PostgresStore) => Promise<void>,
) {
  const url = testDatabaseUrl();
  if (url === undefined) {
    t.skip(PG_SKIP);
    return;
  }
  const schema = tempSchema(url);
  const store = await schema.open(options);
  try {
    await body(store);
  } finally {
    await schema.drop(store);
  }
}

/** Two replicas (two pools) on one fresh schema. */
async function replicas(t: TestContext, body: (a: PostgresStore, b: PostgresStore) => Promise<void>) {
  const url = testDatabaseUrl();
  if (url === undefined) {
    t.skip(PG_SKIP);
    return;
  }
  const schema = tempSchema(url);
  const a = await schema.open();
  const b = await schema.open();
  try {
    await body(a, b);
  } finally {
    await b.close();
    await schema.drop(a);
  }
}

/** Lets `n` first attempts through together, so their snapshots overlap for sure. */
function barrier(n: number) {
  let arrived = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => {
    open = r;
  });
  return async () => {
    if (arrived >= n) return;
    arrived++;
    if (arrived === n) open();
    await gate;
  };
}

test('PostgreSQL: replicas racing on one chip lose no update (serialization failures are retried)', async (t) => {
  await replicas(t, async (a, b) => {
    await a.transaction((tx) => tx.putChip(chip()));
    const together = barrier(2);
    const increment = (store: PostgresStore, sync: boolean) =>
      store.transaction(async (tx) => {
        const c = await tx.getChip(EID);
        if (sync) await together();
        else await new Promise((r) => setTimeout(r, 1));
        await tx.useCounter(EID, c!.counter + 1);
        await tx.appendAudit({ at: T0, actor: 'system', action: 'inc', details: { to: c!.counter + 1 } });
      });
    await Promise.all([increment(a, true), increment(b, true)]);
    assert.ok(a.retries + b.retries >= 1, 'one of the two overlapping transactions ran again');
    await Promise.all(Array.from({ length: 16 }, (_, i) => increment(i % 2 ? a : b, false)));
    assert.equal((await a.transaction((tx) => tx.getChip(EID)))?.counter, 18);
    const log = await b.transaction((tx) => tx.listAudit());
    assert.deepEqual(
      log.map((e) => e.details.to),
      Array.from({ length: 18 }, (_, i) => i + 1),
    );
    assert.equal(findAuditBreak(log), undefined);
  });
});

test('PostgreSQL: of two replicas opening a transfer for one chip, exactly one succeeds', async (t) => {
  await replicas(t, async (a, b) => {
    const together = barrier(2);
    const open = (store: PostgresStore, id: string) =>
      store.transaction(async (tx) => {
        await tx.listTransfers({ eid: EID, direction: 'outgoing' });
        await together();
        await tx.insertTransfer(outgoing(id));
      });
    const results = await Promise.allSettled([open(a, 'ta'), open(b, 'tb')]);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 1);
    assert.equal((refused[0] as PromiseRejectedResult).reason.code, 'TransferPending');
    assert.equal((await a.transaction((tx) => tx.listTransfers())).length, 1);
  });
});

test('PostgreSQL: a replica listing due outbox items skips the rows another one holds', async (t) => {
  await replicas(t, async (a, b) => {
    await a.transaction(async (tx) => {
      await tx.enqueue(peerItem('p1'));
      await tx.enqueue(peerItem('p2'));
    });
    const due = { states: ['pending'], dueAt: new Date(T0.getTime() + 60_000) } as const;
    let listed!: () => void;
    const hasListed = new Promise<void>((r) => {
      listed = r;
    });
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const first = a.transaction(async (tx) => {
      const items = await tx.listOutbox(due);
      listed();
      await held;
      return items.map((i) => i.id);
    });
    await hasListed;
    assert.deepEqual(await b.transaction((tx) => tx.listOutbox(due)), [], 'locked rows are skipped');
    // A plain listing (no dueAt: not delivery) neither locks nor skips.
    assert.equal((await b.transaction((tx) => tx.listOutbox({ states: ['pending'] }))).length, 2);
    release();
    assert.deepEqual(await first, ['p1', 'p2']);
    assert.equal((await b.transaction((tx) => tx.listOutbox(due))).length, 2);
  });
});

test('PostgreSQL: many writers of one process on the audit chain all commit at the first attempt (turns)', (t) =>
  // One attempt each: concurrent transactions of one store would abort each other on the chain's
  // head; they take turns instead.
  oneStore(t, { maxAttempts: 1 }, async (store) => {
    const order: string[] = [];
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        store.transaction(async (tx) => {
          order.push(`begin ${i}`);
          await tx.listAudit({ eid: EID });
          await new Promise((r) => setImmediate(r));
          await tx.appendAudit({ at: T0, actor: 'system', action: `w${i}`, details: {} });
          order.push(`end ${i}`);
        }),
      ),
    );
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected'),
      [],
    );
    assert.deepEqual(
      order,
      Array.from({ length: 40 }, (_, i) => [`begin ${i}`, `end ${i}`]).flat(),
      'one at a time, in the order asked',
    );
    const log = await store.transaction((tx) => tx.listAudit());
    assert.deepEqual(
      log.map((e) => e.action),
      Array.from({ length: 40 }, (_, i) => `w${i}`),
    );
    assert.equal(findAuditBreak(log), undefined);
    assert.equal(store.retries, 0);
    assert.ok(store.commits < 40, `queued transactions share commits (${store.commits} for 40)`);
  }));

test('PostgreSQL: a failed transaction does not stop the ones queued behind it', (t) =>
  oneStore(t, { maxAttempts: 1 }, async (store) => {
    const results = await Promise.allSettled([
      store.transaction(async (tx) => {
        await tx.appendAudit({ at: T0, actor: 'system', action: 'first', details: {} });
        throw new Error('plain');
      }),
      store.transaction((tx) => tx.appendAudit({ at: T0, actor: 'system', action: 'second', details: {} })),
    ]);
    assert.equal(results[0].status, 'rejected');
    assert.equal(results[1].status, 'fulfilled');
    const log = await store.transaction((tx) => tx.listAudit());
    assert.deepEqual(
      log.map((e) => e.action),
      ['second'],
    );
  }));

test('PostgreSQL: retries are bounded, and only conflicts are retried', (t) =>
  oneStore(t, { maxAttempts: 3, retryBaseMs: 1 }, async (store) => {
    let runs = 0;
    const conflict = Object.assign(new Error('could not serialize access'), { code: '40001' });
    await assert.rejects(
      store.transaction(async () => {
        runs++;
        throw conflict;
      }),
      (e) => e === conflict,
    );
    assert.equal(runs, 3);
    runs = 0;
    await assert.rejects(
      store.transaction(async () => {
        runs++;
        throw new Error('plain');
      }),
      /plain/,
    );
    assert.equal(runs, 1);
    runs = 0;
    assert.equal(
      await store.transaction(async () => {
        runs++;
        if (runs < 3) throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
        return 'ok';
      }),
      'ok',
    );
  }));

test('openStore: PostgreSQL when a database URL is given', async (t) => {
  const url = testDatabaseUrl();
  if (url === undefined) {
    t.skip(PG_SKIP);
    return;
  }
  const schema = tempSchema(url);
  const store = await openStore({
    databaseUrl: url,
    sqlitePath: '/nonexistent/ignored.db',
    schema: schema.schema,
  });
  assert.equal(store.dialect, 'postgres');
  await schema.drop(store as PostgresStore);
});
