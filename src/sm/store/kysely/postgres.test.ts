/**
 * The PostgreSQL store's group commit, against the database in DATABASE_URL, with the statements
 * counted through kysely's log: the audit head read once per group (conn.ts: GroupMemo), the
 * control statements in pairs (one round trip each), and the same chain and refusals as before,
 * with store transactions rolled back to their savepoint and with another process appending.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { findAuditBreak } from '../../audit-chain.ts';
import { chip, deviceItem, EID2, order, outgoing, peerItem } from '../contract.ts';
import { append, assertChain, groupWithRollbacks, oneGroup } from './group-testing.ts';
import { PostgresStore } from './postgres.ts';
import type { Database } from './schema.ts';
import { tempSchema, testDatabaseUrlOrSkip } from './testing.ts';
import { transactionDb } from './tx.ts';

const HEAD_READ = /^select "seq", "hash" from "audit" order by "seq" desc limit 1$/;
const AUDIT_INSERT = /^insert into "audit"/;
const CONTROL = /^(BEGIN|SAVEPOINT|RELEASE|ROLLBACK|COMMIT)/;

interface Traced {
  /** Stores on the schema, each on its own pool, all logging into `statements`. */
  open(): PostgresStore;
  /** Every statement text sent, in order. */
  readonly statements: string[];
  /** How many of the statements since the last call match `pattern` (statements then cleared). */
  count(pattern: RegExp): number;
}

/** `fn` with stores on a fresh, migrated schema (dropped after); skipped without DATABASE_URL. */
async function withTraced(t: TestContext, fn: (traced: Traced) => Promise<void>): Promise<void> {
  const url = testDatabaseUrlOrSkip(t);
  if (url === undefined) return;
  const temp = tempSchema(url);
  const owner = await temp.open({ poolSize: 1 });
  const stores: PostgresStore[] = [];
  const statements: string[] = [];
  const traced: Traced = {
    open() {
      const pool = new pg.Pool({ connectionString: url, max: 1, options: `-c search_path=${temp.schema}` });
      const db = new Kysely<Database>({
        dialect: new PostgresDialect({ pool }),
        log: (event) => {
          statements.push(event.query.sql);
        },
      });
      const store = new PostgresStore(db);
      stores.push(store);
      return store;
    },
    statements,
    count(pattern) {
      const n = statements.filter((s) => pattern.test(s)).length;
      statements.length = 0;
      return n;
    },
  };
  try {
    await fn(traced);
  } finally {
    for (const store of stores) await store.close();
    await temp.drop(owner);
  }
}

describe('PostgreSQL store: group commit', () => {
  it('reads the audit head once per group and sends its control statements in pairs', (t) =>
    withTraced(t, async (traced) => {
      const store = traced.open();
      const results = await oneGroup(
        store,
        [1, 2, 3, 4, 5].map((n) => async (tx) => {
          await append(tx, `a${n}`);
          return append(tx, `b${n}`);
        }),
      );
      assert.ok(results.every((r) => r.status === 'fulfilled'));
      assert.equal(store.commits, 1);
      const inGroup = [...traced.statements];
      assert.deepEqual(
        inGroup.filter((s) => CONTROL.test(s)),
        [
          'BEGIN ISOLATION LEVEL SERIALIZABLE; SAVEPOINT store_tx',
          ...Array(5).fill('RELEASE store_tx; SAVEPOINT store_tx'),
          'COMMIT',
        ],
      );
      assert.equal(inGroup.filter((s) => AUDIT_INSERT.test(s)).length, 10);
      assert.equal(traced.count(HEAD_READ), 1);
      await store.transaction((tx) => append(tx, 'c'));
      assert.equal(traced.count(HEAD_READ), 1, 'the next group reads it again');
      await assertChain(store, [1, 2, 3, 4, 5].flatMap((n) => [`a${n}`, `b${n}`]).concat('c'));
    }));

  it('puts the head back with a store transaction rolled back to its savepoint', (t) =>
    withTraced(t, async (traced) => {
      const store = traced.open();
      await groupWithRollbacks(store);
      // A rolled-back savepoint stays in place for the next store transaction.
      assert.deepEqual(
        traced.statements.filter((s) => CONTROL.test(s)),
        [
          'BEGIN ISOLATION LEVEL SERIALIZABLE; SAVEPOINT store_tx',
          'ROLLBACK TO store_tx',
          'RELEASE store_tx; SAVEPOINT store_tx',
          'ROLLBACK TO store_tx',
          'RELEASE store_tx; SAVEPOINT store_tx',
          'COMMIT',
        ],
      );
      assert.equal(traced.count(HEAD_READ), 2);
      await assertChain(store, ['kept1', 'kept2']);
    }));

  it('rejects alone a store transaction that returned with a failed statement caught', (t) =>
    withTraced(t, async (traced) => {
      const store = traced.open();
      const results = await oneGroup(store, [
        (tx) => append(tx, 'kept1'),
        async (tx) => {
          await append(tx, 'lost');
          // The statement fails and aborts PostgreSQL's transaction; the function goes on.
          await sql`SELECT 1 / 0`.execute(transactionDb(tx)).catch(() => undefined);
          return append(tx, 'never').catch(() => undefined);
        },
        (tx) => append(tx, 'kept2'),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      assert.equal(store.commits, 1);
      await assertChain(store, ['kept1', 'kept2']);
    }));

  it('keeps one unbroken chain while two processes append at the same time', (t) =>
    withTraced(t, async (traced) => {
      const [a, b] = [traced.open(), traced.open()];
      // Rounds of one group each at the same time, until they have conflicted (a few rounds do).
      let rounds = 0;
      while (rounds < 4 || (a.retries + b.retries === 0 && rounds < 40)) {
        const i = rounds++;
        const results = (
          await Promise.all(
            (
              [
                ['a', a],
                ['b', b],
              ] as const
            ).map(([name, store]) =>
              oneGroup(
                store,
                [1, 2, 3].map((n) => (tx) => append(tx, `${name}${i}.${n}`)),
              ),
            ),
          )
        ).flat();
        assert.ok(
          results.every((r) => r.status === 'fulfilled'),
          JSON.stringify(results.filter((r) => r.status === 'rejected')),
        );
      }
      const entries = await a.transaction((tx) => tx.listAudit());
      assert.equal(findAuditBreak(entries), undefined);
      assert.equal(entries.length, rounds * 2 * 3);
      assert.deepEqual(
        entries.map((e) => e.seq),
        entries.map((_, i) => i + 1),
      );
      assert.ok(a.retries + b.retries > 0, 'the two processes conflicted at least once');
    }));
});

describe('PostgreSQL store: an insert checks its id only when it fails', () => {
  const ID_CHECK = /^select "id" from "(outbox|transfers|orders)" where "id" = /;
  const exists = (what: string) => ({ code: 'InvalidInput', message: `${what} exists` });

  it('no id check for an insert, a taken id refused first, and the transaction goes on', (t) =>
    withTraced(t, async (traced) => {
      const store = traced.open();
      const pid = (v: number) => new Uint8Array(16).fill(v);
      await store.transaction(async (tx) => {
        await tx.putChip(chip());
        await tx.putChip(chip({ eid: EID2 }));
        await tx.insertTransfer(outgoing('a', { permissionId: pid(1) }));
        await tx.insertOrder(order('o1'));
        await tx.enqueue(deviceItem('d1'));
      });
      assert.equal(traced.count(ID_CHECK), 0);
      await store.transaction(async (tx) => {
        // Taken ids come before the other refusals (PermissionReused here), as in the memory store.
        await assert.rejects(
          tx.insertTransfer(outgoing('a', { eid: EID2, permissionId: pid(1) })),
          exists('transfer id a'),
        );
        await assert.rejects(tx.insertOrder(order('o1', { eid: EID2 })), exists('order id o1'));
        await assert.rejects(tx.enqueue(peerItem('d1')), exists('outbox id d1'));
        await tx.enqueue(deviceItem('d2'));
      });
      const ids = await store.transaction(async (tx) => ({
        transfers: (await tx.listTransfers()).map((x) => x.id),
        orders: (await tx.listOrders()).map((x) => x.id),
        outbox: (await tx.listOutbox()).map((x) => x.id),
      }));
      assert.deepEqual(ids, { transfers: ['a'], orders: ['o1'], outbox: ['d1', 'd2'] });
    }));
});

describe('PostgreSQL store: a stalled process does not hold the others up for ever', () => {
  it('a transaction idle past idleInTransactionMs is ended, and another store appends meanwhile', async (t) => {
    const url = testDatabaseUrlOrSkip(t);
    if (url === undefined) return;
    const temp = tempSchema(url);
    const stalled = await temp.open({ poolSize: 1, idleInTransactionMs: 300, maxAttempts: 1 });
    const other = await temp.open({ poolSize: 1 });
    try {
      // The stalled process holds the audit head (its append is not committed) and then waits.
      let appended!: () => void;
      const holding = new Promise<void>((r) => {
        appended = r;
      });
      let woke = false;
      const stall = stalled.transaction(async (tx) => {
        await append(tx, 'stalled');
        appended();
        await new Promise((r) => setTimeout(r, 1500));
        woke = true;
        await append(tx, 'too late');
      });
      const stallSettled = stall.then(
        () => 'committed',
        () => 'failed',
      );
      await holding;
      // The other process's append waits on that lock until PostgreSQL ends the idle session.
      await other.transaction((tx) => append(tx, 'other'));
      assert.equal(woke, false, 'freed by the server, before the stalled transaction woke up');
      assert.equal(await stallSettled, 'failed', 'the stalled transaction was rolled back');
      await assertChain(other, ['other']);
    } finally {
      await stalled.close();
      await temp.drop(other);
    }
  });
});
