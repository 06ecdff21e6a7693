/**
 * The bulk runner in process (jobs.ts), stepped by hand with the world's clock: the rate limit
 * over time, refusals as failed items, and the recovery of an item started when the SM stopped
 * before recording its transfer.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { registeredChip } from '../../../test/support/sm-flows.ts';
import { CURRENT, createSmWorld, MNO_A, MNO_B, NEW, worldEid } from '../../../test/support/sm-world.ts';
import { decodeTransferPermissionMessage } from '../../protocol/asn1/permission.ts';
import { itemTransferId, LOST_START_MS } from './jobs.ts';

/** A release job over chips 1 and 2 at the current SM, nothing stepped yet. */
async function twoChipRelease(limits: { ratePerSecond?: number } = {}) {
  const world = createSmWorld();
  await registeredChip(world, 1);
  await registeredChip(world, 2);
  const { sm, store } = world.get(CURRENT);
  const { job } = await sm.createBulkJob(MNO_A, {
    kind: 'release',
    eids: [worldEid(1), worldEid(2)],
    peerSmId: NEW,
    concurrency: 2,
    ratePerSecond: limits.ratePerSecond ?? 10,
  });
  return { world, sm, store, job };
}

const counts = async (world: ReturnType<typeof createSmWorld>, jobId: string) =>
  (await world.get(CURRENT).sm.getBulkJob(MNO_A, jobId)).report.counts;

test('the runner starts no more than the rate per second, and records refusals with their code', async () => {
  const world = createSmWorld();
  const eids: string[] = [];
  for (let i = 1; i <= 4; i++) {
    await registeredChip(world, i);
    eids.push(worldEid(i));
  }
  eids.push(worldEid(99)); // not managed here
  const sm = world.get(CURRENT).sm;
  const { job } = await sm.createBulkJob(MNO_A, {
    kind: 'release',
    eids,
    peerSmId: NEW,
    concurrency: 10,
    ratePerSecond: 2,
  });
  await sm.stepBulkJobs();
  await sm.stepBulkJobs();
  assert.equal((await counts(world, job.id)).started, 2, 'two in the first second');
  world.clock.advance(1000);
  await sm.stepBulkJobs();
  assert.equal((await counts(world, job.id)).started, 4);
  world.clock.advance(1000);
  await sm.stepBulkJobs();
  const c = await counts(world, job.id);
  assert.deepEqual(c, { pending: 0, started: 4, completed: 0, failed: 1, skipped: 0 });
  const failed = await sm.listBulkItems(MNO_A, job.id, { states: ['failed'] });
  assert.deepEqual(
    failed.map((i) => [i.eid, i.errorCode]),
    [[worldEid(99), 'ChipNotManaged']],
  );
  // An operator not configured here is refused.
  await assert.rejects(sm.getBulkJob('mno-x', job.id));
});

test('an item started when the SM stopped is adopted (its transfer exists) or started again', async () => {
  const { world, sm, store, job } = await twoChipRelease({ ratePerSecond: 1 });
  const now = world.clock.now;
  // A step starts chip 1 (the rate allows one); as if the SM had stopped before recording its
  // transfer, and before chip 2's call, which a step had marked started, ever ran.
  await sm.stepBulkJobs();
  const released = (await sm.listBulkItems(MNO_A, job.id))[0]!.transferId!;
  await store.transaction(async (tx) => {
    const [first, second] = await tx.listBulkItems(job.id);
    const { transferId: _t, ...unrecorded } = first!;
    await tx.saveBulkItem(unrecorded);
    await tx.saveBulkItem({ ...second!, state: 'started', startedAt: now, updatedAt: now });
  });
  world.clock.advance(5000);
  await sm.stepBulkJobs();
  const items = await sm.listBulkItems(MNO_A, job.id);
  assert.equal(items[0]?.state, 'started');
  assert.equal(items[0]?.transferId, released, 'the transfer the call made is adopted');
  assert.equal(released, itemTransferId(job, items[0]!));
  // Chip 2 has no transfer: its call may still be running (in another replica), so it is left
  // alone until LOST_START_MS after its start; then back to pending, and started for real.
  assert.equal(items[1]?.state, 'started');
  assert.equal(items[1]?.transferId, undefined);
  world.clock.advance(LOST_START_MS - 5000 - 1);
  await sm.stepBulkJobs();
  assert.equal((await sm.listBulkItems(MNO_A, job.id))[1]?.transferId, undefined, 'not yet');
  assert.equal((await sm.listTransfers(MNO_A, { eid: worldEid(2) })).length, 0);
  world.clock.advance(1);
  await sm.stepBulkJobs();
  const again = await sm.listBulkItems(MNO_A, job.id);
  assert.equal(again[1]?.state, 'started');
  assert.ok(again[1]?.transferId !== undefined);
  assert.equal((await sm.listTransfers(MNO_A, { eid: worldEid(2) })).length, 1);
});

test('a job with an activation code binds it to every transfer, keeping only its SHA-256', async () => {
  const world = createSmWorld();
  await registeredChip(world, 1);
  await registeredChip(world, 2);
  const code = 'FLEET-2026-11';
  const hash = new Uint8Array(createHash('sha256').update(code, 'utf8').digest());
  const current = world.get(CURRENT);
  const release = await current.sm.createBulkJob(MNO_A, {
    kind: 'release',
    eids: [worldEid(1), worldEid(2)],
    peerSmId: NEW,
    activationCode: code,
  });
  assert.deepEqual(release.job.activationCodeHash, hash);
  await current.sm.stepBulkJobs();
  const items = await current.sm.listBulkItems(MNO_A, release.job.id);
  assert.deepEqual(
    items.map((i) => i.state),
    ['started', 'started'],
  );
  for (const item of items) {
    const t = await current.store.transaction((tx) => tx.getTransfer(item.transferId!));
    assert.equal(t?.direction, 'outgoing');
    if (t?.direction !== 'outgoing') return;
    assert.deepEqual(t.activationCodeHash, hash);
    // In the permission the chip receives, as for a single release with that code.
    assert.ok(t.permission, 'the permission is issued at once (no approval configured)');
    const pd = decodeTransferPermissionMessage(t.permission.message).permission.data;
    assert.deepEqual(pd.activationCodeHash, hash);
  }
  // Port-in at the new SM: each order holds the hash (and its ask carries it).
  const neu = world.get(NEW);
  await registeredChip(world, 3);
  const portIn = await neu.sm.createBulkJob(MNO_B, {
    kind: 'portIn',
    eids: [worldEid(3)],
    peerSmId: CURRENT,
    activationCode: code,
  });
  await neu.sm.stepBulkJobs();
  const orders = await neu.store.transaction((tx) => tx.listOrders({ eid: worldEid(3) }));
  assert.equal(orders.length, 1);
  assert.deepEqual(orders[0]?.activationCodeHash, hash);
  assert.equal((await neu.sm.listBulkItems(MNO_B, portIn.job.id))[0]?.state, 'started');
  // The code itself is nowhere in either audit log.
  for (const sm of [current, neu]) {
    const entries = await sm.store.transaction((tx) => tx.listAudit());
    assert.ok(entries.some((e) => e.action === 'bulkJobCreated' && e.details.activationCode === true));
    assert.ok(!JSON.stringify(entries).includes(code));
  }
  // A code that is not one is refused before anything is stored.
  for (const bad of ['', 'line\nbreak', 'x'.repeat(257)]) {
    await assert.rejects(
      current.sm.createBulkJob(MNO_A, {
        kind: 'release',
        eids: [worldEid(1)],
        peerSmId: NEW,
        activationCode: bad,
      }),
      { code: 'InvalidInput' },
    );
  }
});

test('a bulk job with an SM that is not in the directory is refused up front, not item by item', async () => {
  const world = createSmWorld();
  const current = world.get(CURRENT);
  for (const kind of ['release', 'portIn'] as const) {
    await assert.rejects(
      current.sm.createBulkJob(MNO_A, { kind, eids: [worldEid(1)], peerSmId: 'sm-nobody.example' }),
      { code: 'UnknownPeer' },
    );
  }
  assert.equal(
    (await current.store.transaction((tx) => tx.listAudit())).some((e) => e.action === 'bulkJobCreated'),
    false,
  );
});

test('a cancelled job: a start that never happened is skipped, not pending again, and the job is finished', async () => {
  const { world, sm, store, job } = await twoChipRelease();
  const now = world.clock.now;
  // As if a step had marked chip 1 started and the SM had stopped before its call ran.
  await store.transaction(async (tx) => {
    const [first] = await tx.listBulkItems(job.id, { limit: 1 });
    await tx.saveBulkItem({ ...first!, state: 'started', startedAt: now, updatedAt: now });
  });
  const cancelled = await sm.controlBulkJob(MNO_A, job.id, 'cancel');
  assert.deepEqual(cancelled.report.counts, { pending: 0, started: 1, completed: 0, failed: 0, skipped: 1 });
  assert.equal(cancelled.report.finished, false, 'one item is still in flight');
  world.clock.advance(LOST_START_MS);
  await sm.stepBulkJobs();
  const after = await sm.getBulkJob(MNO_A, job.id);
  assert.deepEqual(after.report.counts, { pending: 0, started: 0, completed: 0, failed: 0, skipped: 2 });
  assert.equal(after.report.finished, true);
  assert.equal(
    (await sm.listTransfers(MNO_A, { eid: worldEid(1) })).length,
    0,
    'nothing started after the cancel',
  );
  // Nothing in flight: later steps leave the job alone.
  assert.deepEqual(await store.transaction((tx) => tx.listBulkJobs({ withStartedItems: true })), []);
});

test("an item never takes another job's transfer for its chip as its own", async () => {
  const { world, sm, store, job } = await twoChipRelease();
  const now = world.clock.now;
  // Job X's items marked started when the SM stopped, before either call ran.
  await store.transaction(async (tx) => {
    for (const item of await tx.listBulkItems(job.id))
      await tx.saveBulkItem({ ...item, state: 'started', startedAt: now, updatedAt: now });
  });
  // Job Y over the same chips runs meanwhile and makes their transfers.
  const y = await sm.createBulkJob(MNO_A, {
    kind: 'release',
    eids: [worldEid(1), worldEid(2)],
    peerSmId: NEW,
  });
  await sm.stepBulkJobs();
  const ys = await sm.listBulkItems(MNO_A, y.job.id);
  assert.deepEqual(
    ys.map((i) => i.state),
    ['started', 'started'],
  );
  world.clock.advance(LOST_START_MS);
  await sm.stepBulkJobs();
  await sm.stepBulkJobs();
  // X's starts were lost: started again, refused (the chips have Y's transfers), not adopted.
  const xs = await sm.listBulkItems(MNO_A, job.id);
  assert.deepEqual(
    xs.map((i) => [i.state, i.errorCode, i.transferId]),
    [
      ['failed', 'TransferPending', undefined],
      ['failed', 'TransferPending', undefined],
    ],
  );
  assert.equal((await sm.listTransfers(MNO_A, { eid: worldEid(1) })).length, 1);
});
