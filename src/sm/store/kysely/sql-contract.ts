/**
 * What the SQL stores promise beyond the SmStore contract, run on each dialect: migrations are
 * idempotent, and the constraints live in the database itself, so a write that goes around the
 * repositories (a racing replica, a person with a SQL prompt) is refused with the same codes.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { type Kysely, sql } from 'kysely';
import { findAuditBreak } from '../../audit-chain.ts';
import { chip, dumpStore, EID, EID2, incoming, outgoing, T0 } from '../contract.ts';
import type { StoreConstraint } from '../types.ts';
import { storeErrorOf, type WriteHint } from './errors.ts';
import { migrate } from './migrations.ts';
import type { Database } from './schema.ts';
import type { SqlStore } from './store.ts';
import { transactionDb } from './tx.ts';

export interface SqlTestStore {
  readonly store: SqlStore;
  /** PostgreSQL: the store's schema. */
  readonly schema?: string;
  dispose(): Promise<void>;
}

export interface SqlBackend {
  open(): Promise<SqlTestStore>;
  readonly skip?: string;
}

/** Asserts that `p` fails with a database error that maps to `code`. */
export async function refusedByDatabase(
  p: Promise<unknown>,
  code: StoreConstraint,
  hint: WriteHint = {},
): Promise<void> {
  await assert.rejects(p, (e) => {
    const mapped = storeErrorOf(e, hint);
    assert.equal(mapped?.code, code, `${String(e)} maps to ${code}`);
    return true;
  });
}

const pid = (v: number) => Buffer.alloc(16, v);
const MIGRATIONS = [
  '0001_initial',
  '0002_idempotency_keys',
  '0003_bulk_transfers',
  '0004_outbox_device_work',
  '0005_transfer_expiry_deadline',
  '0006_bulk_items_started',
];

async function seed(store: SqlStore): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.putChip(chip());
    await tx.useCounter(EID, 1);
    await tx.insertTransfer(outgoing('open', { permissionId: pid(1) }));
    await tx.insertTransfer(outgoing('done', { state: 'completed', permissionId: pid(2) }));
    await tx.insertTransfer(incoming('in-open'));
    await tx.insertTransfer(incoming('in-done', { state: 'failed' }));
    await tx.enqueue({
      id: 'd1',
      channel: 'device',
      eid: EID,
      kind: 'CancelPermission',
      bytes: new Uint8Array([1]),
      state: 'pending',
      deliveries: 0,
      createdAt: T0,
    });
    for (let i = 0; i < 3; i++)
      await tx.appendAudit({ at: T0, actor: 'system', action: `a${i}`, details: {} });
  });
}

export function sqlStoreSuite(name: string, backend: SqlBackend): void {
  const it = (title: string, body: (s: SqlTestStore, t: TestContext) => Promise<void>) =>
    test(title, async (t) => {
      if (backend.skip !== undefined) {
        t.skip(backend.skip);
        return;
      }
      const s = await backend.open();
      try {
        await body(s, t);
      } finally {
        await s.dispose();
      }
    });

  describe(`SQL store: ${name}`, () => {
    it('migrations are recorded once and running them again changes nothing', async ({ store, schema }) => {
      const names = async () =>
        (
          await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(store.db)
        ).rows.map((r) => r.name);
      assert.deepEqual(await names(), MIGRATIONS);
      await seed(store);
      const before = await dumpStore(store);
      const options = schema === undefined ? {} : { schema };
      assert.deepEqual(await migrate(store.db, store.dialect, options), []);
      assert.deepEqual(await migrate(store.db, store.dialect, options), []);
      assert.deepEqual(await names(), MIGRATIONS);
      assert.deepEqual(await dumpStore(store), before);
    });

    it('a database made before 0002 is brought up to date with its data', async ({ store, schema }) => {
      await seed(store);
      const before = await dumpStore(store);
      // Back to the schema of 0001, as a store released before idempotency keys left it.
      await sql`DROP INDEX bulk_items_started`.execute(store.db);
      await sql`DROP TABLE bulk_items`.execute(store.db);
      await sql`DROP TABLE bulk_jobs`.execute(store.db);
      await sql`DROP TABLE idempotency_keys`.execute(store.db);
      await sql`DROP INDEX outbox_device_work`.execute(store.db);
      await sql`DROP INDEX transfers_expiry_deadline`.execute(store.db);
      await sql`ALTER TABLE transfers DROP COLUMN expiry_deadline`.execute(store.db);
      await sql`DELETE FROM kysely_migration WHERE name <> '0001_initial'`.execute(store.db);
      const options = schema === undefined ? {} : { schema };
      assert.deepEqual(await migrate(store.db, store.dialect, options), MIGRATIONS.slice(1));
      assert.deepEqual(await dumpStore(store), before);
      const keys = await sql<{ n: number | string }>`SELECT count(*) AS n FROM idempotency_keys`.execute(
        store.db,
      );
      assert.equal(Number(keys.rows[0]?.n), 0);
      // 0005 gave the open transfers already stored their expiry deadline (in-open: expiresAt T0).
      const due = await store.transaction((tx) =>
        tx.listTransfers({ deadlineBefore: new Date(T0.getTime() + 1) }),
      );
      assert.deepEqual(
        due.map((t) => t.id),
        ['in-open'],
      );
    });

    it('the database refuses a reused permissionId and a second open transfer per chip', async ({
      store,
    }) => {
      await seed(store);
      const db: Kysely<Database> = store.db;
      await refusedByDatabase(
        db
          .updateTable('transfers')
          .set({ permission_id: pid(1) })
          .where('id', '=', 'done')
          .execute(),
        'PermissionReused',
      );
      await refusedByDatabase(
        db
          .updateTable('transfers')
          .set({ permission_id: pid(2) })
          .where('id', '=', 'in-done')
          .execute(),
        'PermissionReused',
      );
      await refusedByDatabase(
        db.updateTable('transfers').set({ state: 'delivered' }).where('id', '=', 'done').execute(),
        'TransferPending',
        { direction: 'outgoing', eid: EID },
      );
      await refusedByDatabase(
        db.updateTable('transfers').set({ state: 'asked' }).where('id', '=', 'in-done').execute(),
        'OrderPending',
        { direction: 'incoming', eid: EID },
      );
      // A terminal state is no rival.
      await db.updateTable('transfers').set({ state: 'expired' }).where('id', '=', 'done').execute();
      const transfers = await store.transaction((tx) => tx.listTransfers());
      assert.deepEqual(
        transfers.map((t) => [t.id, t.eid, t.state]),
        [
          ['open', EID, 'permitted'],
          ['done', EID, 'expired'],
          ['in-open', EID, 'ordered'],
          ['in-done', EID, 'failed'],
        ],
      );
    });

    it('the database keeps a transfer or outbox item on its direction, EID and channel', async ({
      store,
    }) => {
      await seed(store);
      const db = store.db;
      await refusedByDatabase(
        db.updateTable('transfers').set({ eid: EID2 }).where('id', '=', 'done').execute(),
        'InvalidInput',
      );
      await refusedByDatabase(
        db.updateTable('transfers').set({ direction: 'incoming' }).where('id', '=', 'done').execute(),
        'InvalidInput',
      );
      await refusedByDatabase(
        db.updateTable('transfers').set({ state: 'bogus' }).where('id', '=', 'done').execute(),
        'InvalidInput',
      );
      await refusedByDatabase(
        db.updateTable('outbox').set({ channel: 'peer' }).where('id', '=', 'd1').execute(),
        'InvalidInput',
      );
    });

    it('the database never lets a counter value be used twice or move down', async ({ store }) => {
      await seed(store);
      const db = store.db;
      await refusedByDatabase(
        db.insertInto('used_counters').values({ eid: EID, generation: 1, counter: 1 }).execute(),
        'CounterReused',
        { eid: EID },
      );
      await refusedByDatabase(
        db.updateTable('chips').set({ counter: 0 }).where('eid', '=', EID).execute(),
        'CounterReused',
      );
      // A raise must be a recorded use.
      await refusedByDatabase(
        db.updateTable('chips').set({ counter: 99 }).where('eid', '=', EID).execute(),
        'InvalidInput',
      );
      // Only a released chip starts a new generation.
      await refusedByDatabase(
        db.updateTable('chips').set({ generation: 2, counter: 0 }).where('eid', '=', EID).execute(),
        'ChipExists',
      );
      await refusedByDatabase(
        db.insertInto('used_counters').values({ eid: EID2, generation: 1, counter: 1 }).execute(),
        'ChipNotManaged',
        { eid: EID2 },
      );
      await refusedByDatabase(
        db.updateTable('chips').set({ curve: 'p384' }).where('eid', '=', EID).execute(),
        'InvalidInput',
      );
      assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.counter, 1);
    });

    it('the database keeps the audit log append-only and chained', async ({ store }) => {
      await seed(store);
      const db = store.db;
      const before = await store.transaction((tx) => tx.listAudit());
      await refusedByDatabase(db.updateTable('audit').set({ action: 'forged' }).execute(), 'InvalidInput');
      await refusedByDatabase(db.deleteFrom('audit').where('seq', '=', 3).execute(), 'InvalidInput');
      if (store.dialect === 'postgres') {
        await refusedByDatabase(sql`TRUNCATE audit`.execute(db), 'InvalidInput');
      }
      const last = before[before.length - 1]!;
      const row = {
        at: T0.toISOString(),
        actor: 'system',
        action: 'forged',
        operator_id: null,
        eid: null,
        transfer_id: null,
        details: '{}',
        hash: 'f'.repeat(64),
      };
      // Not the next seq; the next seq but not chained to the last hash.
      await refusedByDatabase(
        db
          .insertInto('audit')
          .values({ ...row, seq: 5, prev_hash: last.hash })
          .execute(),
        'InvalidInput',
      );
      await refusedByDatabase(
        db
          .insertInto('audit')
          .values({ ...row, seq: 4, prev_hash: '0'.repeat(64) })
          .execute(),
        'InvalidInput',
      );
      const after = await store.transaction((tx) => tx.listAudit());
      assert.deepEqual(after, before);
      assert.equal(findAuditBreak(after), undefined);
    });

    it('a constraint violation inside a transaction rolls the whole transaction back', async ({ store }) => {
      await seed(store);
      const before = await dumpStore(store);
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.putChip(chip({ eid: EID2 }));
          await tx.useCounter(EID2, 1);
          await tx.updateChip(EID, { status: 'transferring' });
          await tx.appendAudit({ at: T0, actor: 'system', action: 'lost', details: {} });
          await tx.enqueue({
            id: 'd2',
            channel: 'device',
            eid: EID2,
            kind: 'CancelPermission',
            bytes: new Uint8Array([2]),
            state: 'pending',
            deliveries: 0,
            createdAt: T0,
          });
          // Straight to the database, past the repositories' checks.
          await transactionDb(tx)
            .insertInto('used_counters')
            .values({ eid: EID, generation: 1, counter: 1 })
            .execute();
        }),
        (e) => storeErrorOf(e)?.code === 'CounterReused',
      );
      assert.deepEqual(await dumpStore(store), before);
      // And the store goes on normally.
      await store.transaction((tx) => tx.useCounter(EID, 2));
    });
  });
}
