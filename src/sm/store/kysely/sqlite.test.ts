/**
 * The SQLite store's statements per write, counted on its connection (better-sqlite3 `verbose`):
 * the audit head read once per group (conn.ts: GroupMemo), and inserts checking their id only
 * when they fail (rows.ts: insertUnlessTaken), with the same chain and the same refusals.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { chip, deviceItem, EID, EID2, incoming, order, outgoing, peerItem, T0 } from '../contract.ts';
import { StoreConstraintError } from '../types.ts';
import { append, assertChain, groupWithRollbacks, oneGroup } from './group-testing.ts';
import type { Database } from './schema.ts';
import { SqliteStore } from './sqlite.ts';
import { tempSqlite } from './testing.ts';
import { transactionDb } from './tx.ts';

const HEAD_READ = /^select "seq", "hash" from "audit" order by "seq" desc limit 1$/;
const AUDIT_INSERT = /^insert into "audit"/;

interface Traced {
  readonly store: SqliteStore;
  /** Every statement the store's connection ran, as SQLite expands it. */
  readonly statements: string[];
  /** How many of the statements since the last call match `pattern` (statements then cleared). */
  count(pattern: RegExp): number;
  dispose(): Promise<void>;
}

/** A store on a fresh, migrated file, over a connection that records its statements. */
async function tracedStore(): Promise<Traced> {
  const file = tempSqlite();
  await (await file.open()).close();
  const statements: string[] = [];
  const database = new BetterSqlite3(file.path, { verbose: (s) => statements.push(String(s)) });
  database.pragma('foreign_keys = ON');
  const store = new SqliteStore(
    new Kysely<Database>({ dialect: new SqliteDialect({ database }) }),
    file.path,
    database,
  );
  return {
    store,
    statements,
    count(pattern) {
      const n = statements.filter((s) => pattern.test(s)).length;
      statements.length = 0;
      return n;
    },
    async dispose() {
      await store.close();
      file.remove();
    },
  };
}

describe('SQLite store: the audit head', () => {
  it('is read once per group, by its first append', async () => {
    const t = await tracedStore();
    try {
      const commits = t.store.commits;
      const results = await oneGroup(
        t.store,
        [1, 2, 3, 4, 5].map((n) => async (tx) => {
          await append(tx, `a${n}`);
          return append(tx, `b${n}`);
        }),
      );
      assert.ok(results.every((r) => r.status === 'fulfilled'));
      assert.equal(t.store.commits, commits + 1);
      const inGroup = [...t.statements];
      assert.equal(t.count(HEAD_READ), 1);
      assert.equal(inGroup.filter((s) => AUDIT_INSERT.test(s)).length, 10);
      // The next group reads it again: another process may have appended in between.
      await t.store.transaction((tx) => append(tx, 'c'));
      assert.equal(t.count(HEAD_READ), 1);
      await assertChain(t.store, [1, 2, 3, 4, 5].flatMap((n) => [`a${n}`, `b${n}`]).concat('c'));
    } finally {
      await t.dispose();
    }
  });

  it('goes back with a store transaction rolled back to its savepoint', async () => {
    const t = await tracedStore();
    try {
      await groupWithRollbacks(t.store);
      assert.equal(t.count(HEAD_READ), 2);
      await assertChain(t.store, ['kept1', 'kept2']);
    } finally {
      await t.dispose();
    }
  });

  it('stays put when an append is refused and the store transaction goes on', async () => {
    const t = await tracedStore();
    try {
      await t.store.transaction(async (tx) => {
        await append(tx, 'a');
        // Chained, then refused by the database (actor NOT NULL; past the types on purpose).
        await assert.rejects(
          tx.appendAudit({ at: T0, actor: null as unknown as string, action: 'x', details: {} }),
          { code: 'InvalidInput' },
        );
        await append(tx, 'b');
      });
      await assertChain(t.store, ['a', 'b']);
    } finally {
      await t.dispose();
    }
  });

  it('is dropped with a group that SQLite rolled back whole', async () => {
    const t = await tracedStore();
    try {
      const results = await oneGroup(t.store, [
        (tx) => append(tx, 'lost1'),
        async (tx) => {
          await append(tx, 'lost2');
          // As SQLite does by itself on some errors: the whole transaction is gone.
          await sql`ROLLBACK`.execute(transactionDb(tx));
          throw new Error('rolled back');
        },
        // Put back in the queue: runs in the next group, which reads the head again.
        (tx) => append(tx, 'kept'),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['rejected', 'rejected', 'fulfilled'],
      );
      await assertChain(t.store, ['kept']);
    } finally {
      await t.dispose();
    }
  });

  it('is read again by each group: another connection may append between groups', async () => {
    const file = tempSqlite();
    const a = await file.open();
    const b = await file.open();
    try {
      await a.transaction((tx) => append(tx, 'a1'));
      await b.transaction((tx) => append(tx, 'b1'));
      await a.transaction((tx) => append(tx, 'a2'));
      await assertChain(a, ['a1', 'b1', 'a2']);
    } finally {
      await a.close();
      await b.close();
      file.remove();
    }
  });
});

describe('SQLite store: an insert checks its id only when it fails', () => {
  const ID_CHECK = /^select "id" from "(outbox|transfers|orders)" where "id" = /;
  const exists = (what: string) => new StoreConstraintError('InvalidInput', `${what} exists`);

  /** Asserts `p` is refused with `expected`: the same code, message and details. */
  async function refusedWith(p: Promise<unknown>, expected: StoreConstraintError): Promise<void> {
    await assert.rejects(p, (e) => {
      assert.ok(e instanceof StoreConstraintError);
      assert.deepEqual([e.code, e.message, e.details], [expected.code, expected.message, expected.details]);
      return true;
    });
  }

  it('outbox: one statement per item, and a taken id refused as before', async () => {
    const t = await tracedStore();
    try {
      await t.store.transaction((tx) => tx.putChip(chip()));
      t.count(ID_CHECK);
      await t.store.transaction(async (tx) => {
        await tx.enqueue(deviceItem('d1'));
        await tx.enqueue(peerItem('p1'));
      });
      assert.equal(t.count(/outbox/), 2);
      // Refused inside the transaction, which goes on: the insert did nothing (ON CONFLICT), so
      // the refusal needs no id check.
      await t.store.transaction(async (tx) => {
        await refusedWith(tx.enqueue(deviceItem('d1')), exists('outbox id d1'));
        await refusedWith(tx.enqueue(peerItem('d1')), exists('outbox id d1'));
        await tx.enqueue(deviceItem('d2'));
      });
      assert.equal(t.count(ID_CHECK), 0);
      // A taken id comes first, as in the memory store, whatever else is wrong with the item.
      await refusedWith(
        t.store.transaction((tx) => tx.enqueue(deviceItem('d1', { createdAt: new Date(Number.NaN) }))),
        exists('outbox id d1'),
      );
      const ids = await t.store.transaction(async (tx) => (await tx.listOutbox()).map((i) => i.id));
      assert.deepEqual(ids, ['d1', 'p1', 'd2']);
    } finally {
      await t.dispose();
    }
  });

  it('transfers and orders: no id check when the insert succeeds, the same refusals when not', async () => {
    const t = await tracedStore();
    try {
      await t.store.transaction(async (tx) => {
        await tx.putChip(chip());
        await tx.putChip(chip({ eid: EID2 }));
      });
      t.count(ID_CHECK);
      const pid = (v: number) => new Uint8Array(16).fill(v);
      await t.store.transaction(async (tx) => {
        await tx.insertTransfer(outgoing('a', { permissionId: pid(1) }));
        await tx.insertTransfer(incoming('b', { eid: EID2 }));
        await tx.insertOrder(order('o1'));
      });
      assert.equal(t.count(ID_CHECK), 0);
      // A taken id comes before the other refusals (PermissionReused, TransferPending).
      await refusedWith(
        t.store.transaction((tx) => tx.insertTransfer(outgoing('b', { permissionId: pid(1) }))),
        exists('transfer id b'),
      );
      await refusedWith(
        t.store.transaction((tx) => tx.insertTransfer(incoming('a', { state: 'failed' }))),
        exists('transfer id a'),
      );
      await refusedWith(
        t.store.transaction((tx) => tx.insertOrder(order('o1', { eid: EID2 }))),
        exists('order id o1'),
      );
      // The other refusals as before, for an id not taken.
      await refusedWith(
        t.store.transaction((tx) => tx.insertTransfer(outgoing('c', { eid: EID2, permissionId: pid(1) }))),
        new StoreConstraintError('PermissionReused', 'this permissionId has been seen before', {
          permissionId: '01'.repeat(16),
        }),
      );
      await refusedWith(
        t.store.transaction((tx) => tx.insertTransfer(outgoing('c'))),
        new StoreConstraintError('TransferPending', `chip ${EID} already has a transfer in progress`, {
          eid: EID,
          transferId: 'a',
        }),
      );
      const ids = await t.store.transaction(async (tx) => ({
        transfers: (await tx.listTransfers()).map((x) => x.id),
        orders: (await tx.listOrders()).map((x) => x.id),
      }));
      assert.deepEqual(ids, { transfers: ['a', 'b'], orders: ['o1'] });
    } finally {
      await t.dispose();
    }
  });
});

describe("SQLite store: a transaction's own reads and writes stand in for reading a row again", () => {
  const BY_ID = /^select .* from "(transfers|outbox)" where "id" = /;
  const later = (ms: number) => new Date(T0.getTime() + ms);

  /** A traced store holding a chip, outgoing transfer a and device item d1; disposed after `fn`. */
  async function withSeeded(fn: (t: Traced) => Promise<void>): Promise<void> {
    const t = await tracedStore();
    try {
      await t.store.transaction(async (tx) => {
        await tx.putChip(chip());
        await tx.insertTransfer(outgoing('a'));
        await tx.enqueue(deviceItem('d1'));
      });
      await fn(t);
    } finally {
      await t.dispose();
    }
  }

  it('a save after a read or a write in the same transaction reads nothing more', async () => {
    await withSeeded(async (t) => {
      t.count(BY_ID);
      await t.store.transaction(async (tx) => {
        const a = await tx.getTransfer('a');
        const d = await tx.getOutbox('d1');
        assert.ok(a && d?.channel === 'device');
        await tx.saveTransfer({ ...a, updatedAt: later(1) });
        await tx.saveTransfer({ ...a, updatedAt: later(2) });
        await tx.saveOutbox({ ...d, deliveries: 1 });
      });
      assert.equal(t.count(BY_ID), 2, 'the two reads, none for the saves');
      await t.store.transaction(async (tx) => {
        await tx.insertTransfer(outgoing('b', { eid: EID2, state: 'completed' }));
        const b = (await tx.listTransfers({ eid: EID2, direction: 'outgoing' }))[0];
        assert.ok(b);
        await tx.saveTransfer({ ...b, updatedAt: later(3) });
      });
      assert.equal(t.count(BY_ID), 0);
    });
  });

  it('a value changed and changed back in one transaction is written back', async () => {
    await withSeeded(async (t) => {
      const before = await t.store.transaction((tx) => tx.getTransfer('a'));
      assert.ok(before);
      await t.store.transaction(async (tx) => {
        const a = await tx.getTransfer('a');
        const d = await tx.getOutbox('d1');
        assert.ok(a && d?.channel === 'device');
        await tx.saveTransfer({ ...a, updatedAt: later(5) });
        await tx.saveTransfer({ ...a, updatedAt: later(9) });
        await tx.saveOutbox({ ...d, deliveries: 3 });
        await tx.saveOutbox({ ...d, deliveries: 4 });
      });
      const after = await t.store.transaction(async (tx) => [
        await tx.getTransfer('a'),
        await tx.getOutbox('d1'),
      ]);
      assert.deepEqual(after[0], { ...before, updatedAt: later(9) });
      assert.equal((after[1] as { deliveries: number }).deliveries, 4);
      // Back to the value read at the start of the transaction: a write, not "unchanged".
      await t.store.transaction(async (tx) => {
        const a = await tx.getTransfer('a');
        assert.ok(a);
        await tx.saveTransfer({ ...a, updatedAt: later(1) });
        await tx.saveTransfer(a);
      });
      assert.deepEqual(await t.store.transaction((tx) => tx.getTransfer('a')), {
        ...before,
        updatedAt: later(9),
      });
    });
  });

  it('a raw statement (transactionDb) makes the next save read the row again', async () => {
    await withSeeded(async (t) => {
      const original = await t.store.transaction((tx) => tx.getTransfer('a'));
      assert.ok(original);
      await t.store.transaction(async (tx) => {
        const a = await tx.getTransfer('a');
        assert.ok(a);
        await transactionDb(tx)
          .updateTable('transfers')
          .set({ updated_at: later(7).toISOString() })
          .where('id', '=', 'a')
          .execute();
        // The same values as read: the row now differs from them, so this writes them back.
        await tx.saveTransfer(a);
      });
      assert.deepEqual(await t.store.transaction((tx) => tx.getTransfer('a')), original);
    });
  });
});
