import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findAuditBreak } from '../audit-chain.ts';
import { MemoryStore } from './memory.ts';
import type { ChipRecord, IncomingTransfer, OutgoingTransfer } from './types.ts';

const T0 = new Date('2026-01-01T00:00:00Z');
const EID = '89049032123451234512345678901235';

const chip = (over: Partial<ChipRecord> = {}): ChipRecord => ({
  eid: EID,
  operatorId: 'op',
  chipCertificate: new Uint8Array([0x30, 0]),
  eumCertificate: new Uint8Array([0x30, 0]),
  curve: 'p256',
  counter: 0,
  status: 'managed',
  lock: { kind: 'unlocked' },
  createdAt: T0,
  updatedAt: T0,
  ...over,
});

const outgoing = (id: string, over: Partial<OutgoingTransfer> = {}): OutgoingTransfer => ({
  id,
  direction: 'outgoing',
  state: 'permitted',
  eid: EID,
  operatorId: 'op',
  peerSmId: 'new-sm',
  origin: 'operator',
  newSmAddress: 'https://new.example',
  unlockedWithCode: false,
  createdAt: T0,
  updatedAt: T0,
  ...over,
});

const incoming = (id: string, over: Partial<IncomingTransfer> = {}): IncomingTransfer => ({
  id,
  direction: 'incoming',
  state: 'ordered',
  eid: EID,
  operatorId: 'op',
  peerSmId: 'cur-sm',
  orderId: `o-${id}`,
  expiresAt: T0,
  createdAt: T0,
  updatedAt: T0,
  ...over,
});

test('a throwing transaction leaves the store as it was', async () => {
  const store = new MemoryStore();
  await store.transaction((tx) => tx.putChip(chip()));
  const before = store.dump();
  await assert.rejects(
    store.transaction(async (tx) => {
      await tx.useCounter(EID, 1);
      await tx.updateChip(EID, { status: 'transferring' });
      await tx.insertTransfer(outgoing('t1'));
      await tx.appendAudit({ at: T0, actor: 'system', action: 'x', details: {} });
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(store.dump(), before);
});

test('records are copies: changing a returned record changes nothing stored', async () => {
  const store = new MemoryStore();
  const c = chip();
  await store.transaction((tx) => tx.putChip(c));
  (c.chipCertificate as Uint8Array)[0] = 9;
  const got = await store.transaction((tx) => tx.getChip(EID));
  assert.equal(got?.chipCertificate[0], 0x30);
  (got!.chipCertificate as Uint8Array)[0] = 9;
  assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.chipCertificate[0], 0x30);
});

test('a counter value is never used twice and only goes up', async () => {
  const store = new MemoryStore();
  await store.transaction((tx) => tx.putChip(chip()));
  await store.transaction((tx) => tx.useCounter(EID, 1));
  for (const v of [1, 0, -1]) {
    await assert.rejects(
      store.transaction((tx) => tx.useCounter(EID, v)),
      { code: 'CounterReused' },
    );
  }
  await store.transaction((tx) => tx.useCounter(EID, 5));
  assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.counter, 5);
  await assert.rejects(
    store.transaction((tx) => tx.useCounter('0'.repeat(32), 1)),
    { code: 'ChipNotManaged' },
  );
  // updateChip cannot move the counter.
  await store.transaction((tx) => tx.updateChip(EID, { counter: 0 } as never));
  assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.counter, 5);
});

test('a chip is registered once, unless it was released', async () => {
  const store = new MemoryStore();
  await store.transaction((tx) => tx.putChip(chip()));
  await assert.rejects(
    store.transaction((tx) => tx.putChip(chip())),
    { code: 'ChipExists' },
  );
  await store.transaction((tx) => tx.updateChip(EID, { status: 'released' }));
  await store.transaction((tx) => tx.putChip(chip({ operatorId: 'other' })));
  assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.operatorId, 'other');
});

test('a permissionId is unique across all transfers', async () => {
  const store = new MemoryStore();
  const pid = new Uint8Array(16).fill(1);
  await store.transaction((tx) =>
    tx.insertTransfer(outgoing('a', { permissionId: pid, state: 'completed' })),
  );
  await assert.rejects(
    store.transaction((tx) => tx.insertTransfer(incoming('b', { permissionId: Uint8Array.from(pid) }))),
    { code: 'PermissionReused' },
  );
  await store.transaction((tx) => tx.insertTransfer(incoming('b')));
  await assert.rejects(
    store.transaction((tx) => tx.saveTransfer(incoming('b', { permissionId: pid }))),
    { code: 'PermissionReused' },
  );
  assert.equal((await store.transaction((tx) => tx.findTransferByPermissionId(pid)))?.id, 'a');
});

test('one open outgoing and one open incoming transfer per chip', async () => {
  const store = new MemoryStore();
  await store.transaction((tx) => tx.insertTransfer(outgoing('a')));
  await assert.rejects(
    store.transaction((tx) => tx.insertTransfer(outgoing('b'))),
    { code: 'TransferPending' },
  );
  await store.transaction((tx) => tx.insertTransfer(outgoing('b', { state: 'cancelled' })));
  await assert.rejects(
    store.transaction((tx) => tx.saveTransfer(outgoing('b', { state: 'delivered' }))),
    {
      code: 'TransferPending',
    },
  );
  await store.transaction((tx) => tx.insertTransfer(incoming('c')));
  await assert.rejects(
    store.transaction((tx) => tx.insertTransfer(incoming('d', { state: 'asked' }))),
    {
      code: 'OrderPending',
    },
  );
  await store.transaction((tx) => tx.saveTransfer(outgoing('a', { state: 'expired' })));
  await store.transaction((tx) => tx.insertTransfer(outgoing('e', { state: 'awaitingApproval' })));
  await assert.rejects(
    store.transaction((tx) => tx.saveTransfer(incoming('a'))),
    { code: 'InvalidInput' },
  );
  await assert.rejects(
    store.transaction((tx) => tx.saveTransfer(outgoing('zz'))),
    { code: 'UnknownTransfer' },
  );
});

test('transactions run one at a time', async () => {
  const store = new MemoryStore();
  await store.transaction((tx) => tx.putChip(chip()));
  // Ten concurrent read-increment-write transactions: each must see the previous one's write.
  await Promise.all(
    Array.from({ length: 10 }, () =>
      store.transaction(async (tx) => {
        const c = await tx.getChip(EID);
        await new Promise((r) => setTimeout(r, 1));
        await tx.useCounter(EID, c!.counter + 1);
      }),
    ),
  );
  assert.equal((await store.transaction((tx) => tx.getChip(EID)))?.counter, 10);
});

test('the audit log is append-only and hash-chained', async () => {
  const store = new MemoryStore();
  for (let i = 0; i < 5; i++) {
    await store.transaction((tx) =>
      tx.appendAudit({ at: T0, actor: 'system', action: `a${i}`, eid: EID, details: { i } }),
    );
  }
  const log = await store.transaction((tx) => tx.listAudit());
  assert.deepEqual(
    log.map((e) => e.seq),
    [1, 2, 3, 4, 5],
  );
  assert.equal(log[0]?.prevHash, '0'.repeat(64));
  for (let i = 1; i < log.length; i++) assert.equal(log[i]?.prevHash, log[i - 1]?.hash);
  assert.equal(findAuditBreak(log), undefined);
  const edited = log.map((e) => (e.seq === 3 ? { ...e, details: { i: 99 } } : e));
  assert.equal(findAuditBreak(edited), 3);
  assert.equal(findAuditBreak([log[0]!, log[2]!]), 3);
});

test('outbox items are listed by channel, state and due time', async () => {
  const store = new MemoryStore();
  await store.transaction(async (tx) => {
    await tx.enqueue({
      id: 'p1',
      channel: 'peer',
      targetSmId: 'x',
      eid: EID,
      message: { type: 'Completed', handoverResult: new Uint8Array(1) },
      state: 'pending',
      attempts: 0,
      nextAttemptAt: new Date(T0.getTime() + 1000),
      createdAt: T0,
    });
    await tx.enqueue({
      id: 'd1',
      channel: 'device',
      eid: EID,
      kind: 'CancelPermission',
      bytes: new Uint8Array(1),
      state: 'pending',
      deliveries: 0,
      createdAt: T0,
    });
  });
  const due = (at: Date) =>
    store.transaction((tx) => tx.listOutbox({ channel: 'peer', states: ['pending'], dueAt: at }));
  assert.equal((await due(T0)).length, 0);
  assert.equal((await due(new Date(T0.getTime() + 1000))).length, 1);
  assert.equal((await store.transaction((tx) => tx.listOutbox({ channel: 'device', eid: EID }))).length, 1);
  await assert.rejects(
    store.transaction((tx) =>
      tx.enqueue({
        id: 'd1',
        channel: 'device',
        eid: EID,
        kind: 'CancelPermission',
        bytes: new Uint8Array(1),
        state: 'pending',
        deliveries: 0,
        createdAt: T0,
      }),
    ),
    { code: 'InvalidInput' },
  );
});
