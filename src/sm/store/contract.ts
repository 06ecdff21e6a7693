/**
 * The SmStore contract (types.ts), as one node:test suite that every implementation runs:
 * `storeContract('SQLite', backend)`. The memory store is the reference: a SQL store must give
 * back exactly what it gives (plain Uint8Arrays, Date objects, no extra keys) and refuse
 * exactly what it refuses, with the same codes.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { findAuditBreak } from '../audit-chain.ts';
import type {
  AuditEntry,
  BulkItemRecord,
  BulkJobRecord,
  ChipRecord,
  DeviceOutboxItem,
  IncomingTransfer,
  OperatorOutboxItem,
  OrderRecord,
  OutboxItem,
  OutgoingTransfer,
  PeerOutboxItem,
  SmStore,
  StoreTx,
  TransferRecord,
} from './types.ts';

export interface ContractBackend {
  /** A fresh, empty store (called once per test). */
  open(): Promise<SmStore>;
  /** Releases a store from `open` or `reopen` (close it, drop its database). */
  dispose?(store: SmStore): Promise<void>;
  /** Persistent backends: closes the store and opens the same database again (a restart). */
  reopen?(store: SmStore): Promise<SmStore>;
  /** When set, the backend is unavailable and every test calls t.skip(skip). */
  readonly skip?: string;
}

/** The store of a running test; `reopen` replaces it. */
export interface ContractStore {
  store: SmStore;
  reopen(): Promise<SmStore>;
}

export const T0 = new Date('2026-01-01T00:00:00.000Z');
export const EID = '89049032123451234512345678901235';
export const EID2 = '89049032123451234512345678901236';
const at = (ms: number) => new Date(T0.getTime() + ms);
const bytes = (...v: number[]) => Uint8Array.from(v);
const filled = (n: number, v: number) => new Uint8Array(n).fill(v);

export const chip = (over: Partial<ChipRecord> = {}): ChipRecord => ({
  eid: EID,
  operatorId: 'op',
  chipCertificate: bytes(0x30, 0),
  eumCertificate: bytes(0x30, 0),
  curve: 'p256',
  counter: 0,
  status: 'managed',
  lock: { kind: 'unlocked' },
  createdAt: T0,
  updatedAt: T0,
  ...over,
});

export const outgoing = (id: string, over: Partial<OutgoingTransfer> = {}): OutgoingTransfer => ({
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

export const incoming = (id: string, over: Partial<IncomingTransfer> = {}): IncomingTransfer => ({
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

export const order = (id: string, over: Partial<OrderRecord> = {}): OrderRecord => ({
  id,
  operatorId: 'op',
  eid: EID,
  currentSmId: 'cur-sm',
  ask: false,
  state: 'open',
  transferId: `t-${id}`,
  createdAt: T0,
  expiresAt: at(86_400_000),
  ...over,
});

export const deviceItem = (id: string, over: Partial<DeviceOutboxItem> = {}): DeviceOutboxItem => ({
  id,
  channel: 'device',
  eid: EID,
  kind: 'CancelPermission',
  bytes: bytes(0xbf, 0x25, 0),
  state: 'pending',
  deliveries: 0,
  createdAt: T0,
  ...over,
});

export const peerItem = (id: string, over: Partial<PeerOutboxItem> = {}): PeerOutboxItem => ({
  id,
  channel: 'peer',
  targetSmId: 'x',
  eid: EID,
  message: { type: 'Completed', handoverResult: bytes(1, 2, 3) },
  state: 'pending',
  attempts: 0,
  nextAttemptAt: at(1000),
  createdAt: T0,
  ...over,
});

// ---- records with every optional field set ----

const ICCID_A = '8944100000000000001';
const ICCID_B = '8944200000000000002';

export const FULL_CHIP: ChipRecord = chip({
  curve: 'brainpoolP256r1',
  counter: 7,
  status: 'transferring',
  chipCertificate: bytes(0x30, 0x82, 0x01, 0x00, 0xff, 0x00),
  eumCertificate: filled(300, 0xa5),
  lock: {
    kind: 'lockedUntilCode',
    salt: filled(16, 7),
    hash: filled(32, 0),
    scrypt: { N: 1024, r: 8, p: 1 },
    failedAttempts: 2,
  },
  keyset: { version: 3, sEnc: filled(16, 1), sMac: filled(16, 2), initialMcv: filled(16, 3) },
  profileSwitch: {
    profileSwitch: { disableIccid: ICCID_A, enableIccid: ICCID_B, rollbackOnFailure: true },
    state: 'confirmIssued',
    transferId: 't-full',
    permissionId: filled(16, 9),
  },
  createdAt: at(-5000),
  updatedAt: at(123),
});

export const FULL_OUTGOING: OutgoingTransfer = outgoing('out-full', {
  state: 'cancelled',
  origin: 'peer',
  permissionId: filled(16, 0xaa),
  endReason: 'chipStayed',
  evidence: new Uint8Array(0),
  peerAskId: 'ask-1',
  activationCodeHash: filled(32, 0xcc),
  profileSwitch: { disableIccid: ICCID_A, enableIccid: ICCID_B, rollbackOnFailure: false },
  unlockedWithCode: true,
  approvalDeadline: at(60_000),
  permission: { counterValue: 8, notAfter: at(86_400_000), message: bytes(0xbf, 2, 0), issuedAt: at(1) },
  cancel: { counterValue: 9, message: bytes(0xbf, 3, 0), issuedAt: at(2) },
  createdAt: at(-1),
  updatedAt: at(3),
});

export const FULL_INCOMING: IncomingTransfer = incoming('in-full', {
  state: 'completed',
  permissionId: filled(16, 0xbb),
  endReason: 'done',
  evidence: bytes(0xbf, 0x27, 1, 0),
  peerTransferId: 'peer-t',
  expiresAt: at(7 * 86_400_000),
  request: {
    transferRequest: bytes(0xbf, 4, 0),
    handoverCommand: bytes(0xbf, 5, 0),
    chipCertificate: bytes(0x30, 1),
    eumCertificate: bytes(0x30, 2),
    curve: 'p256',
    notAfter: at(86_400_000),
    keysetVersion: 2,
    profileSwitch: { disableIccid: ICCID_A, enableIccid: ICCID_B, rollbackOnFailure: true },
  },
  receiptKey: filled(16, 0x11),
  keyset: { version: 2, sEnc: filled(16, 4), sMac: filled(16, 5), initialMcv: filled(16, 6) },
});

export const FULL_ORDER: OrderRecord = order('o-full', { activationCodeHash: filled(32, 1), ask: true });

export const FULL_OUTBOX: readonly OutboxItem[] = [
  peerItem('p-ask', {
    transferId: 'in-full',
    message: {
      type: 'TransferAsk',
      askId: 'in-full',
      eid: EID,
      activationCodeHash: filled(32, 2),
      unlockCode: 'open sesame',
    },
    state: 'refused',
    attempts: 3,
    lastError: { code: 'ChipLocked', message: 'locked' },
    deliveredAt: at(5),
  }),
  peerItem('p-cancel', {
    message: { type: 'CancelOutcome', permissionId: filled(16, 3), askId: 'a', chipResult: bytes(1) },
  }),
  peerItem('p-ask-outcome', {
    message: { type: 'AskOutcome', askId: 'a', eid: EID, outcome: 'expired' },
  }),
  {
    id: 'op-1',
    channel: 'operator',
    operatorId: 'op',
    eid: EID,
    transferId: 'out-full',
    notification: {
      event: 'transferCancelled',
      eid: EID,
      transferId: 'out-full',
      state: 'cancelled',
      at: at(9),
    },
    state: 'delivered',
    attempts: 1,
    nextAttemptAt: at(9),
    deliveredAt: at(9),
    createdAt: at(8),
  } satisfies OperatorOutboxItem,
  deviceItem('d-full', {
    transferId: 'out-full',
    kind: 'TransferPermissionMessage',
    state: 'retired',
    deliveries: 4,
    lastDeliveredAt: at(10),
  }),
];

// ---- helpers ----

/** Everything a store holds, read through the interface. */
export async function dumpStore(store: SmStore) {
  return store.transaction(async (tx) => ({
    chips: await tx.listChips(),
    transfers: await tx.listTransfers(),
    orders: await tx.listOrders(),
    outbox: await tx.listOutbox(),
    audit: await tx.listAudit(),
  }));
}

/** Asserts a value and all nested bytes are plain Uint8Arrays (not Buffers), dates Dates. */
function assertPlain(v: unknown, path = 'record'): void {
  if (v instanceof Uint8Array) {
    assert.equal(Object.getPrototypeOf(v), Uint8Array.prototype, `${path} is a plain Uint8Array`);
    return;
  }
  if (v instanceof Date || v === null || typeof v !== 'object') return;
  for (const [k, x] of Object.entries(v)) {
    assert.notEqual(x, undefined, `${path}.${k} is left out, not undefined`);
    assertPlain(x, `${path}.${k}`);
  }
}

const tx = <T>(store: SmStore, fn: (tx: StoreTx) => Promise<T>) => store.transaction(fn);

export function storeContract(name: string, backend: ContractBackend): void {
  const it = (title: string, body: (s: ContractStore, t: TestContext) => Promise<void>) =>
    test(title, async (t) => {
      if (backend.skip !== undefined) {
        t.skip(backend.skip);
        return;
      }
      const s: ContractStore = {
        store: await backend.open(),
        async reopen() {
          if (!backend.reopen) throw new Error(`${name} cannot be reopened`);
          s.store = await backend.reopen(s.store);
          return s.store;
        },
      };
      try {
        await body(s, t);
      } finally {
        await backend.dispose?.(s.store);
      }
    });

  describe(`SmStore contract: ${name}`, () => {
    it('every record comes back exactly as it was stored', async ({ store }) => {
      const minimal = [outgoing('out-min'), incoming('in-min', { eid: EID2 })];
      await tx(store, async (tx) => {
        await tx.putChip(FULL_CHIP);
        await tx.putChip(chip({ eid: EID2 }));
        await tx.insertTransfer(FULL_OUTGOING);
        await tx.insertTransfer(FULL_INCOMING);
        for (const t of minimal) await tx.insertTransfer(t);
        await tx.insertOrder(FULL_ORDER);
        await tx.insertOrder(order('o-min'));
        for (const i of FULL_OUTBOX) await tx.enqueue(i);
        await tx.enqueue(deviceItem('d-min'));
      });
      await tx(store, async (tx) => {
        const full = await tx.getChip(EID);
        assert.deepEqual(full, FULL_CHIP);
        assertPlain(full);
        assert.deepEqual(await tx.getChip(EID2), chip({ eid: EID2 }));
        for (const t of [FULL_OUTGOING, FULL_INCOMING, ...minimal]) {
          const got = await tx.getTransfer(t.id);
          assert.deepEqual(got, t);
          assertPlain(got);
        }
        assert.deepEqual(await tx.findTransferByPermissionId(filled(16, 0xbb)), FULL_INCOMING);
        assert.equal(await tx.findTransferByPermissionId(filled(16, 0xbc)), undefined);
        assert.deepEqual(await tx.getOrder('o-full'), FULL_ORDER);
        assert.deepEqual(await tx.getOrder('o-min'), order('o-min'));
        for (const i of [...FULL_OUTBOX, deviceItem('d-min')]) {
          const got = await tx.getOutbox(i.id);
          assert.deepEqual(got, i);
          assertPlain(got);
        }
        assert.equal(await tx.getChip('0'.repeat(32)), undefined);
        assert.equal(await tx.getTransfer('nope'), undefined);
        assert.equal(await tx.getOrder('nope'), undefined);
        assert.equal(await tx.getOutbox('nope'), undefined);
      });
    });

    it('bytes given as a Buffer come back as a plain Uint8Array', async ({ store }) => {
      await tx(store, (tx) => tx.putChip(chip({ chipCertificate: Buffer.from([0x30, 9]) })));
      const got = await tx(store, (tx) => tx.getChip(EID));
      assert.equal(Object.getPrototypeOf(got?.chipCertificate), Uint8Array.prototype);
      assert.deepEqual(got?.chipCertificate, bytes(0x30, 9));
    });

    it('a throwing transaction leaves the store as it was', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.putChip(chip());
        await tx.insertTransfer(outgoing('t0', { state: 'completed' }));
        await tx.appendAudit({ at: T0, actor: 'system', action: 'first', details: {} });
      });
      const before = await dumpStore(store);
      await assert.rejects(
        tx(store, async (tx) => {
          await tx.useCounter(EID, 1);
          await tx.updateChip(EID, { status: 'transferring' });
          await tx.putChip(chip({ eid: EID2 }));
          await tx.insertTransfer(outgoing('t1'));
          await tx.saveTransfer(outgoing('t0', { state: 'completed', endReason: 'changed' }));
          await tx.insertOrder(order('o1'));
          await tx.enqueue(deviceItem('d1'));
          await tx.appendAudit({ at: T0, actor: 'system', action: 'x', details: {} });
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.deepEqual(await dumpStore(store), before);
    });

    it('a refused write makes the whole transaction refused: nothing of it stays', async ({ store }) => {
      await tx(store, (tx) => tx.insertTransfer(outgoing('a')));
      const before = await dumpStore(store);
      await assert.rejects(
        tx(store, async (tx) => {
          await tx.putChip(chip({ eid: EID2 }));
          await tx.appendAudit({ at: T0, actor: 'system', action: 'x', details: {} });
          await tx.insertTransfer(outgoing('b'));
        }),
        { code: 'TransferPending' },
      );
      assert.deepEqual(await dumpStore(store), before);
    });

    it('a refusal the transaction catches leaves the transaction usable', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.putChip(chip());
        await tx.insertTransfer(outgoing('a'));
        await assert.rejects(tx.insertTransfer(outgoing('b')), { code: 'TransferPending' });
        await assert.rejects(tx.useCounter(EID, 0), { code: 'CounterReused' });
        await tx.useCounter(EID, 1);
        await tx.insertTransfer(outgoing('c', { state: 'expired' }));
      });
      const d = await dumpStore(store);
      assert.deepEqual(
        d.transfers.map((t) => t.id),
        ['a', 'c'],
      );
      assert.equal(d.chips[0]?.counter, 1);
    });

    it("a transaction's result and error pass through; its StoreTx ends with it", async ({ store }) => {
      assert.equal(await tx(store, async () => 42), 42);
      const error = new Error('mine');
      await assert.rejects(
        tx(store, async () => {
          throw error;
        }),
        (e) => e === error,
      );
      let leaked: StoreTx | undefined;
      await tx(store, async (tx) => {
        leaked = tx;
      });
      await assert.rejects(leaked!.getChip(EID), /used after it ended/);
    });

    it('records are copies: changing a returned record changes nothing stored', async ({ store }) => {
      const c = chip();
      await tx(store, (tx) => tx.putChip(c));
      (c.chipCertificate as Uint8Array)[0] = 9;
      const got = await tx(store, (tx) => tx.getChip(EID));
      assert.equal(got?.chipCertificate[0], 0x30);
      (got!.chipCertificate as Uint8Array)[0] = 9;
      assert.equal((await tx(store, (tx) => tx.getChip(EID)))?.chipCertificate[0], 0x30);
    });

    it('a counter value is never used twice and only goes up', async ({ store }) => {
      await tx(store, (tx) => tx.putChip(chip()));
      await tx(store, (tx) => tx.useCounter(EID, 1));
      for (const v of [1, 0, -1]) {
        await assert.rejects(
          tx(store, (tx) => tx.useCounter(EID, v)),
          { code: 'CounterReused' },
        );
      }
      await assert.rejects(
        tx(store, (tx) => tx.useCounter(EID, 1)),
        { code: 'CounterReused', details: { eid: EID, counterValue: 1, counter: 1 } },
      );
      await tx(store, (tx) => tx.useCounter(EID, 5));
      assert.equal((await tx(store, (tx) => tx.getChip(EID)))?.counter, 5);
      for (const v of [5.5, 2 ** 31, Number.NaN]) {
        await assert.rejects(
          tx(store, (tx) => tx.useCounter(EID, v)),
          { code: 'InvalidInput' },
        );
      }
      await tx(store, (tx) => tx.useCounter(EID, 2 ** 31 - 1));
      await assert.rejects(
        tx(store, (tx) => tx.useCounter('0'.repeat(32), 1)),
        { code: 'ChipNotManaged' },
      );
      // updateChip cannot move the counter.
      await tx(store, (tx) => tx.updateChip(EID, { counter: 0 } as never));
      assert.equal((await tx(store, (tx) => tx.getChip(EID)))?.counter, 2 ** 31 - 1);
    });

    it('a released chip registered again starts counting anew', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.putChip(chip());
        await tx.useCounter(EID, 1);
        await tx.useCounter(EID, 2);
        await tx.updateChip(EID, { status: 'released' });
      });
      await assert.rejects(
        tx(store, (tx) => tx.putChip(chip({ eid: EID, counter: -1 }))),
        { code: 'InvalidInput' },
      );
      await tx(store, (tx) => tx.putChip(chip({ operatorId: 'back' })));
      await tx(store, (tx) => tx.useCounter(EID, 1));
      await assert.rejects(
        tx(store, (tx) => tx.useCounter(EID, 1)),
        { code: 'CounterReused' },
      );
      const got = await tx(store, (tx) => tx.getChip(EID));
      assert.deepEqual([got?.operatorId, got?.counter], ['back', 1]);
    });

    it('a chip is registered once, unless it was released', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.putChip(chip());
        await tx.putChip(chip({ eid: EID2 }));
      });
      await assert.rejects(
        tx(store, (tx) => tx.putChip(chip())),
        { code: 'ChipExists', details: { eid: EID } },
      );
      await tx(store, (tx) => tx.updateChip(EID, { status: 'transferring' }));
      await assert.rejects(
        tx(store, (tx) => tx.putChip(chip())),
        { code: 'ChipExists' },
      );
      await tx(store, (tx) => tx.updateChip(EID, { status: 'released' }));
      const back = chip({ operatorId: 'other', counter: 3, createdAt: at(50), updatedAt: at(50) });
      await tx(store, (tx) => tx.putChip(back));
      assert.deepEqual(await tx(store, (tx) => tx.getChip(EID)), back);
      // The chip keeps its place in listings.
      assert.deepEqual(
        (await tx(store, (tx) => tx.listChips())).map((c) => c.eid),
        [EID, EID2],
      );
    });

    it('updateChip merges a patch; undefined removes a field; eid, counter, createdAt stay', async ({
      store,
    }) => {
      await tx(store, (tx) => tx.putChip(FULL_CHIP));
      const updated = await tx(store, (tx) =>
        tx.updateChip(EID, {
          keyset: undefined,
          profileSwitch: undefined,
          lock: { kind: 'lockedUntil', until: at(99) },
          status: 'managed',
          operatorId: 'op2',
          updatedAt: at(1000),
          eid: 'other',
          createdAt: at(5),
        } as never),
      );
      const { keyset: _k, profileSwitch: _p, ...rest } = FULL_CHIP;
      const expected: ChipRecord = {
        ...rest,
        lock: { kind: 'lockedUntil', until: at(99) },
        status: 'managed',
        operatorId: 'op2',
        updatedAt: at(1000),
      };
      assert.deepEqual(updated, expected);
      assert.deepEqual(await tx(store, (tx) => tx.getChip(EID)), expected);
      assert.equal(await tx(store, (tx) => tx.getChip('other')), undefined);
      await assert.rejects(
        tx(store, (tx) => tx.updateChip(EID2, { status: 'managed' })),
        { code: 'ChipNotManaged' },
      );
    });

    it('a permissionId is unique across all transfers', async ({ store }) => {
      const pid = filled(16, 1);
      await tx(store, (tx) => tx.insertTransfer(outgoing('a', { permissionId: pid, state: 'completed' })));
      await assert.rejects(
        tx(store, (tx) => tx.insertTransfer(incoming('b', { permissionId: Uint8Array.from(pid) }))),
        { code: 'PermissionReused', details: { permissionId: '01'.repeat(16) } },
      );
      await tx(store, (tx) => tx.insertTransfer(incoming('b')));
      await assert.rejects(
        tx(store, (tx) => tx.saveTransfer(incoming('b', { permissionId: pid }))),
        { code: 'PermissionReused' },
      );
      // Saving a transfer with its own permissionId is no reuse.
      await tx(store, (tx) =>
        tx.saveTransfer(outgoing('a', { permissionId: pid, state: 'completed', endReason: 'x' })),
      );
      assert.equal((await tx(store, (tx) => tx.findTransferByPermissionId(pid)))?.id, 'a');
    });

    it('one open outgoing and one open incoming transfer per chip', async ({ store }) => {
      await tx(store, (tx) => tx.insertTransfer(outgoing('a')));
      await assert.rejects(
        tx(store, (tx) => tx.insertTransfer(outgoing('b'))),
        { code: 'TransferPending', details: { eid: EID, transferId: 'a' } },
      );
      await tx(store, (tx) => tx.insertTransfer(outgoing('b', { state: 'cancelled' })));
      await assert.rejects(
        tx(store, (tx) => tx.saveTransfer(outgoing('b', { state: 'delivered' }))),
        { code: 'TransferPending' },
      );
      await tx(store, (tx) => tx.insertTransfer(incoming('c')));
      await assert.rejects(
        tx(store, (tx) => tx.insertTransfer(incoming('d', { state: 'asked' }))),
        { code: 'OrderPending', details: { eid: EID, transferId: 'c' } },
      );
      // Another chip is another matter.
      await tx(store, (tx) => tx.insertTransfer(outgoing('o2', { eid: EID2 })));
      await tx(store, (tx) => tx.saveTransfer(outgoing('a', { state: 'expired' })));
      await tx(store, (tx) => tx.insertTransfer(outgoing('e', { state: 'awaitingApproval' })));
      // An open transfer saved again is not its own rival.
      await tx(store, (tx) => tx.saveTransfer(outgoing('e', { state: 'permitted' })));
      await assert.rejects(
        tx(store, (tx) => tx.saveTransfer(incoming('a'))),
        { code: 'InvalidInput' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.saveTransfer(outgoing('a', { eid: EID2, state: 'expired' }))),
        { code: 'InvalidInput' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.saveTransfer(outgoing('zz'))),
        { code: 'UnknownTransfer' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.insertTransfer(outgoing('a', { state: 'completed' }))),
        { code: 'InvalidInput' },
      );
    });

    it('transfers are listed in insertion order, by eid, direction, operator and states', async ({
      store,
    }) => {
      const all: TransferRecord[] = [
        outgoing('z', { state: 'completed' }),
        incoming('y'),
        outgoing('x', { eid: EID2, operatorId: 'op2' }),
        incoming('w', { eid: EID2, state: 'failed', operatorId: 'op2' }),
        outgoing('v', { state: 'requested' }),
      ];
      await tx(store, async (tx) => {
        for (const t of all) await tx.insertTransfer(t);
        // Saving does not move a transfer in the list.
        await tx.saveTransfer(outgoing('z', { state: 'completed', endReason: 'r' }));
      });
      const ids = async (f: Parameters<StoreTx['listTransfers']>[0]) =>
        (await tx(store, (tx) => tx.listTransfers(f))).map((t) => t.id);
      assert.deepEqual(await ids(undefined), ['z', 'y', 'x', 'w', 'v']);
      assert.deepEqual(await ids({ eid: EID }), ['z', 'y', 'v']);
      assert.deepEqual(await ids({ direction: 'incoming' }), ['y', 'w']);
      assert.deepEqual(await ids({ operatorId: 'op2' }), ['x', 'w']);
      assert.deepEqual(await ids({ states: ['permitted', 'ordered', 'requested'] }), ['y', 'x', 'v']);
      assert.deepEqual(await ids({ states: [] }), []);
      assert.deepEqual(await ids({ eid: EID, direction: 'outgoing', states: ['completed'] }), ['z']);
      // Paging: id order, at most `limit`, after `afterId`; filters still apply.
      assert.deepEqual(await ids({ limit: 2 }), ['v', 'w']);
      assert.deepEqual(await ids({ limit: 2, afterId: 'w' }), ['x', 'y']);
      assert.deepEqual(await ids({ limit: 2, afterId: 'y' }), ['z']);
      assert.deepEqual(await ids({ limit: 10, afterId: 'z' }), []);
      assert.deepEqual(await ids({ limit: 10, states: ['permitted', 'ordered', 'requested'] }), [
        'v',
        'x',
        'y',
      ]);
    });

    it('transfers past their expiry deadline are listed by deadlineBefore (strictly before)', async ({
      store,
    }) => {
      const permission = (notAfter: Date) => ({
        counterValue: 2,
        notAfter,
        message: bytes(0xbf, 2, 0),
        issuedAt: T0,
      });
      await tx(store, async (tx) => {
        await tx.insertTransfer(incoming('a', { expiresAt: at(1000) }));
        await tx.insertTransfer(incoming('b', { eid: EID2, state: 'keyEstablished', expiresAt: at(0) }));
        await tx.insertTransfer(outgoing('c', { state: 'awaitingApproval', approvalDeadline: at(2000) }));
        await tx.insertTransfer(
          outgoing('d', { eid: EID2, state: 'delivered', permission: permission(at(3000)) }),
        );
      });
      const ids = async (ms: number, more: Parameters<StoreTx['listTransfers']>[0] = {}) =>
        (await tx(store, (tx) => tx.listTransfers({ deadlineBefore: at(ms), ...more }))).map((t) => t.id);
      assert.deepEqual(await ids(1000), [], 'at the deadline is not past it');
      assert.deepEqual(await ids(1001), ['a']);
      assert.deepEqual(await ids(5000), ['a', 'c', 'd'], 'a keyed incoming transfer has no deadline');
      assert.deepEqual(await ids(5000, { limit: 2, afterId: 'a' }), ['c', 'd']);
      // The deadline follows the record on every save.
      await tx(store, async (tx) => {
        const d = outgoing('d', { eid: EID2, state: 'delivered', permission: permission(at(3000)) });
        await tx.saveTransfer({
          ...d,
          cancel: { counterValue: 3, message: bytes(0xbf, 3, 0), issuedAt: T0 },
        });
        await tx.saveTransfer(outgoing('c', { state: 'permitted', permission: permission(at(10_000)) }));
      });
      assert.deepEqual(await ids(5000), ['a'], 'withdrawn and re-dated transfers left the list');
      assert.deepEqual(await ids(10_001), ['a', 'c']);
      await tx(store, (tx) => tx.saveTransfer(incoming('a', { state: 'expired', expiresAt: at(1000) })));
      assert.deepEqual(await ids(10_001), ['c'], 'an ended transfer has no deadline');
    });

    it('chips are listed by operator and status', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.putChip(chip({ eid: EID2, operatorId: 'b' }));
        await tx.putChip(chip({ eid: EID, status: 'released' }));
      });
      const eids = async (f: Parameters<StoreTx['listChips']>[0]) =>
        (await tx(store, (tx) => tx.listChips(f))).map((c) => c.eid);
      assert.deepEqual(await eids(undefined), [EID2, EID]);
      assert.deepEqual(await eids({ operatorId: 'op' }), [EID]);
      assert.deepEqual(await eids({ status: 'managed' }), [EID2]);
      assert.deepEqual(await eids({ operatorId: 'b', status: 'released' }), []);
    });

    it('orders: inserted once, saved only when they exist, listed by eid and state', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.insertOrder(order('o1'));
        await tx.insertOrder(order('o2', { eid: EID2 }));
        await tx.insertOrder(order('o3', { state: 'closed' }));
      });
      await assert.rejects(
        tx(store, (tx) => tx.insertOrder(order('o1'))),
        { code: 'InvalidInput' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.saveOrder(order('o9'))),
        { code: 'InvalidInput' },
      );
      await tx(store, (tx) =>
        tx.saveOrder(order('o1', { state: 'matched', activationCodeHash: filled(32, 4) })),
      );
      assert.deepEqual(
        await tx(store, (tx) => tx.getOrder('o1')),
        order('o1', { state: 'matched', activationCodeHash: filled(32, 4) }),
      );
      await tx(store, (tx) => tx.saveOrder(order('o1', { state: 'matched' })));
      assert.deepEqual(await tx(store, (tx) => tx.getOrder('o1')), order('o1', { state: 'matched' }));
      const ids = async (f: Parameters<StoreTx['listOrders']>[0]) =>
        (await tx(store, (tx) => tx.listOrders(f))).map((o) => o.id);
      assert.deepEqual(await ids(undefined), ['o1', 'o2', 'o3']);
      assert.deepEqual(await ids({ eid: EID }), ['o1', 'o3']);
      assert.deepEqual(await ids({ state: 'closed' }), ['o3']);
      assert.deepEqual(await ids({ eid: EID2, state: 'open' }), ['o2']);
    });

    it('outbox items are listed by channel, eid, transfer, state and due time', async ({ store }) => {
      await tx(store, async (tx) => {
        await tx.enqueue(peerItem('p1', { transferId: 't1' }));
        await tx.enqueue(deviceItem('d1', { transferId: 't1' }));
        await tx.enqueue(peerItem('p2', { eid: EID2, nextAttemptAt: at(5000) }));
        await tx.enqueue(deviceItem('d2', { eid: EID2, state: 'retired' }));
      });
      const ids = async (f: Parameters<StoreTx['listOutbox']>[0]) =>
        (await tx(store, (tx) => tx.listOutbox(f))).map((i) => i.id);
      assert.deepEqual(await ids(undefined), ['p1', 'd1', 'p2', 'd2']);
      assert.deepEqual(await ids({ channel: 'peer', states: ['pending'], dueAt: T0 }), []);
      assert.deepEqual(await ids({ channel: 'peer', states: ['pending'], dueAt: at(999) }), []);
      assert.deepEqual(await ids({ channel: 'peer', states: ['pending'], dueAt: at(1000) }), ['p1']);
      assert.deepEqual(await ids({ states: ['pending'], dueAt: at(10_000) }), ['p1', 'p2']);
      assert.deepEqual(await ids({ states: ['pending'], dueAt: at(10_000), limit: 1 }), ['p1']);
      assert.deepEqual(await ids({ limit: 3 }), ['p1', 'd1', 'p2']);
      assert.deepEqual(await ids({ channel: 'device', eid: EID }), ['d1']);
      assert.deepEqual(await ids({ transferId: 't1' }), ['p1', 'd1']);
      assert.deepEqual(await ids({ states: ['retired'] }), ['d2']);
      assert.deepEqual(await ids({ states: [] }), []);
      // Saving moves nothing in the list, and a delivered item is no longer due.
      await tx(store, (tx) =>
        tx.saveOutbox(
          peerItem('p1', { transferId: 't1', state: 'delivered', attempts: 1, deliveredAt: at(2) }),
        ),
      );
      assert.deepEqual(await ids({ states: ['pending'], dueAt: at(10_000) }), ['p2']);
      assert.deepEqual(await ids(undefined), ['p1', 'd1', 'p2', 'd2']);
    });

    it('eidsWithDeviceWork: EIDs with pending device items or an unconfirmed switch', async ({ store }) => {
      const eid = (n: number) => `89049032${String(n).padStart(24, '0')}`;
      const unconfirmed = (state: 'unconfirmed' | 'confirmIssued') => ({
        profileSwitch: { disableIccid: ICCID_A, enableIccid: ICCID_B, rollbackOnFailure: true },
        state,
        transferId: 't-switch',
        permissionId: filled(16, 3),
      });
      const operatorItem = (id: string, e: string): OperatorOutboxItem => ({
        id,
        channel: 'operator',
        operatorId: 'op',
        eid: e,
        notification: { event: 'transferCancelled', eid: e, transferId: 't', state: 'cancelled', at: T0 },
        state: 'pending',
        attempts: 0,
        nextAttemptAt: T0,
        createdAt: T0,
      });
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork([EID, EID2])), new Set());
      await tx(store, async (tx) => {
        await tx.enqueue(deviceItem('d1'));
        // EID2: only items poll() does not offer.
        await tx.enqueue(deviceItem('d2', { eid: EID2, state: 'retired', deliveries: 1 }));
        await tx.enqueue(peerItem('p2', { eid: EID2 }));
        await tx.enqueue(operatorItem('o2', EID2));
        await tx.enqueue(peerItem('p3', { eid: eid(3), state: 'delivered', deliveredAt: T0 }));
        await tx.putChip(chip({ eid: eid(3), profileSwitch: unconfirmed('unconfirmed') }));
        await tx.putChip(chip({ eid: eid(4), profileSwitch: unconfirmed('confirmIssued') }));
        await tx.putChip(
          chip({ eid: eid(5), status: 'transferring', profileSwitch: unconfirmed('unconfirmed') }),
        );
        await tx.putChip(chip({ eid: eid(6) }));
        await tx.enqueue(deviceItem('d6', { eid: eid(6), kind: 'TransferPermissionMessage' }));
        await tx.enqueue(deviceItem('d6b', { eid: eid(6), state: 'retired' }));
        // Not asked about: never in the result.
        await tx.enqueue(deviceItem('d8', { eid: eid(8) }));
        await tx.putChip(chip({ eid: eid(9), profileSwitch: unconfirmed('unconfirmed') }));
      });
      const asked = [EID, EID2, eid(3), eid(4), eid(5), eid(6), eid(7), EID, eid(6)];
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork(asked)), new Set([EID, eid(3), eid(6)]));
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork([])), new Set());
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork([eid(7), EID2])), new Set());
      // A retired item is no longer work; a confirmation issued is not either.
      await tx(store, (tx) => tx.saveOutbox(deviceItem('d1', { state: 'retired', deliveries: 1 })));
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork(asked)), new Set([eid(3), eid(6)]));
    });

    it('eidsWithDeviceWork answers for more EIDs than one SQL statement takes', async ({ store }) => {
      const eid = (n: number) => `89049033${String(n).padStart(24, '0')}`;
      const many = Array.from({ length: 2500 }, (_, i) => eid(i));
      const pending = [0, 499, 500, 999, 1000, 1001, 2499];
      const switching = [1, 501, 1500, 2498];
      await tx(store, async (tx) => {
        for (const n of pending) await tx.enqueue(deviceItem(`d${n}`, { eid: eid(n) }));
        for (const n of switching) {
          await tx.putChip(
            chip({
              eid: eid(n),
              profileSwitch: {
                profileSwitch: { disableIccid: ICCID_A, enableIccid: ICCID_B, rollbackOnFailure: true },
                state: 'unconfirmed',
                transferId: `t${n}`,
                permissionId: filled(16, 1),
              },
            }),
          );
        }
      });
      const expected = new Set([...pending, ...switching].map(eid));
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork(many)), expected);
      assert.deepEqual(await tx(store, (tx) => tx.eidsWithDeviceWork([...many].reverse())), expected);
    });

    it('countTransfers counts transfers per state, by direction and operator', async ({ store }) => {
      assert.deepEqual(await tx(store, (tx) => tx.countTransfers()), {});
      await tx(store, async (tx) => {
        await tx.insertTransfer(outgoing('a', { state: 'completed' }));
        await tx.insertTransfer(outgoing('b', { state: 'completed', operatorId: 'op2' }));
        await tx.insertTransfer(outgoing('c'));
        await tx.insertTransfer(outgoing('d', { eid: EID2, state: 'requested', operatorId: 'op2' }));
        await tx.insertTransfer(incoming('e'));
        await tx.insertTransfer(incoming('f', { state: 'failed', operatorId: 'op2' }));
        await tx.insertTransfer(incoming('g', { eid: EID2, state: 'completed' }));
      });
      const count = (f?: Parameters<StoreTx['countTransfers']>[0]) => tx(store, (tx) => tx.countTransfers(f));
      assert.deepEqual(await count(), { completed: 3, permitted: 1, requested: 1, ordered: 1, failed: 1 });
      assert.deepEqual(await count({}), await count());
      assert.deepEqual(await count({ direction: 'outgoing' }), { completed: 2, permitted: 1, requested: 1 });
      assert.deepEqual(await count({ direction: 'incoming' }), { ordered: 1, failed: 1, completed: 1 });
      assert.deepEqual(await count({ operatorId: 'op2' }), { completed: 1, requested: 1, failed: 1 });
      assert.deepEqual(await count({ direction: 'outgoing', operatorId: 'op2' }), {
        completed: 1,
        requested: 1,
      });
      assert.deepEqual(await count({ operatorId: 'nobody' }), {});
      // A save moves the count.
      await tx(store, (tx) => tx.saveTransfer(outgoing('c', { state: 'cancelled' })));
      assert.deepEqual(await count({ direction: 'outgoing', operatorId: 'op' }), {
        completed: 1,
        cancelled: 1,
      });
    });

    it('an outbox item is enqueued once and saved only on its own channel', async ({ store }) => {
      await tx(store, (tx) => tx.enqueue(deviceItem('d1')));
      await assert.rejects(
        tx(store, (tx) => tx.enqueue(deviceItem('d1'))),
        { code: 'InvalidInput' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.enqueue(peerItem('d1'))),
        { code: 'InvalidInput' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.saveOutbox(peerItem('d1'))),
        { code: 'InvalidInput' },
      );
      await assert.rejects(
        tx(store, (tx) => tx.saveOutbox(deviceItem('d9'))),
        { code: 'InvalidInput' },
      );
      const saved = deviceItem('d1', { state: 'retired', deliveries: 2, lastDeliveredAt: at(7) });
      await tx(store, (tx) => tx.saveOutbox(saved));
      assert.deepEqual(await tx(store, (tx) => tx.getOutbox('d1')), saved);
      // Dropping an optional field on save drops it from the store.
      await tx(store, (tx) => tx.saveOutbox(deviceItem('d1')));
      assert.deepEqual(await tx(store, (tx) => tx.getOutbox('d1')), deviceItem('d1'));
    });

    it('the audit log is append-only and hash-chained', async ({ store }) => {
      const returned: AuditEntry[] = [];
      for (let i = 0; i < 5; i++) {
        returned.push(
          await tx(store, (tx) =>
            tx.appendAudit({
              at: at(i),
              actor: i % 2 ? 'system' : 'operator:op',
              action: `a${i}`,
              eid: EID,
              ...(i % 2 === 0 && { operatorId: 'op', transferId: `t${i}` }),
              details: { i, s: 'x', b: i === 2, n: null },
            }),
          ),
        );
      }
      const log = await tx(store, (tx) => tx.listAudit());
      assert.deepEqual(log, returned);
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
      const seqs = async (f: Parameters<StoreTx['listAudit']>[0]) =>
        (await tx(store, (tx) => tx.listAudit(f))).map((e) => e.seq);
      assert.deepEqual(await seqs({ operatorId: 'op' }), [1, 3, 5]);
      assert.deepEqual(await seqs({ transferId: 't2' }), [3]);
      assert.deepEqual(await seqs({ eid: EID2 }), []);
      // A rolled-back append leaves no gap in the chain.
      await assert.rejects(
        tx(store, async (tx) => {
          await tx.appendAudit({ at: T0, actor: 'system', action: 'lost', details: {} });
          throw new Error('boom');
        }),
      );
      const next = await tx(store, (tx) =>
        tx.appendAudit({ at: T0, actor: 'system', action: 'kept', details: {} }),
      );
      assert.deepEqual([next.seq, next.prevHash], [6, log[4]?.hash]);
      assert.equal(findAuditBreak(await tx(store, (tx) => tx.listAudit())), undefined);
    });

    it('transactions are serializable: concurrent read-modify-writes lose no update', async ({ store }) => {
      await tx(store, (tx) => tx.putChip(chip()));
      // Ten concurrent read-increment-write transactions: each must see the previous one's write.
      await Promise.all(
        Array.from({ length: 10 }, () =>
          tx(store, async (tx) => {
            const c = await tx.getChip(EID);
            await new Promise((r) => setTimeout(r, 1));
            await tx.useCounter(EID, c!.counter + 1);
            await tx.appendAudit({ at: T0, actor: 'system', action: 'inc', details: { to: c!.counter + 1 } });
          }),
        ),
      );
      assert.equal((await tx(store, (tx) => tx.getChip(EID)))?.counter, 10);
      const log = await tx(store, (tx) => tx.listAudit());
      assert.deepEqual(
        log.map((e) => e.details.to),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      assert.equal(findAuditBreak(log), undefined);
    });

    if (backend.reopen) {
      it('a restart (close, open the same database) keeps everything', async (s) => {
        await tx(s.store, async (tx) => {
          await tx.putChip(FULL_CHIP);
          await tx.putChip(chip({ eid: EID2 }));
          await tx.useCounter(EID, 8);
          await tx.insertTransfer(FULL_OUTGOING);
          await tx.insertTransfer(FULL_INCOMING);
          await tx.insertTransfer(outgoing('open-1', { eid: EID2 }));
          await tx.insertOrder(FULL_ORDER);
          for (const i of FULL_OUTBOX) await tx.enqueue(i);
          for (let i = 0; i < 3; i++) {
            await tx.appendAudit({ at: at(i), actor: 'system', action: `a${i}`, details: { i } });
          }
        });
        const before = await dumpStore(s.store);
        await s.reopen();
        assert.deepEqual(await dumpStore(s.store), before);
        // The constraints and the chain carry on from where they were.
        await assert.rejects(
          tx(s.store, (tx) => tx.useCounter(EID, 8)),
          { code: 'CounterReused' },
        );
        await assert.rejects(
          tx(s.store, (tx) => tx.insertTransfer(outgoing('open-2', { eid: EID2 }))),
          { code: 'TransferPending' },
        );
        await assert.rejects(
          tx(s.store, (tx) => tx.insertTransfer(incoming('x', { permissionId: filled(16, 0xaa) }))),
          { code: 'PermissionReused' },
        );
        const next = await tx(s.store, (tx) =>
          tx.appendAudit({ at: T0, actor: 'system', action: 'after', details: {} }),
        );
        assert.equal(next.seq, 4);
        assert.equal(findAuditBreak(await tx(s.store, (tx) => tx.listAudit())), undefined);
      });
    }
    it('bulk jobs and items come back as stored, in position order, filtered and counted', async ({
      store,
    }) => {
      const job: BulkJobRecord = {
        id: 'bulk-1',
        operatorId: 'mno-a',
        kind: 'release',
        peerSmId: 'sm-beta.example',
        activationCodeHash: filled(32, 7),
        concurrency: 3,
        ratePerSecond: 5,
        state: 'running',
        createdAt: T0,
        updatedAt: T0,
      };
      const items: BulkItemRecord[] = [EID, EID2].map((eid, position) => ({
        jobId: job.id,
        eid,
        position,
        state: 'pending',
        updatedAt: T0,
      }));
      await tx(store, (tx) => tx.insertBulkJob(job, items));
      assert.deepEqual(await tx(store, (tx) => tx.getBulkJob(job.id)), job);
      await assert.rejects(
        tx(store, (tx) =>
          tx.insertBulkJob({ ...job, id: 'bulk-2' }, [items[0]!, { ...items[1]!, eid: EID }]),
        ),
        { code: 'InvalidInput' },
      );
      const later = new Date(T0.getTime() + 1000);
      const started: BulkItemRecord = {
        ...items[1]!,
        state: 'failed',
        transferId: 'tr-1',
        errorCode: 'ChipNotManaged',
        errorMessage: 'no chip',
        startedAt: later,
        updatedAt: later,
      };
      await tx(store, async (tx) => {
        await tx.saveBulkItem(started);
        await tx.saveBulkJob({ ...job, state: 'paused', updatedAt: later });
      });
      assert.deepEqual(await tx(store, (tx) => tx.listBulkItems(job.id)), [items[0], started]);
      assert.deepEqual(await tx(store, (tx) => tx.listBulkItems(job.id, { states: ['failed'] })), [started]);
      assert.deepEqual(await tx(store, (tx) => tx.listBulkItems(job.id, { startedSince: later })), [started]);
      assert.deepEqual(await tx(store, (tx) => tx.listBulkItems(job.id, { afterPosition: 0, limit: 5 })), [
        started,
      ]);
      assert.deepEqual(await tx(store, (tx) => tx.listBulkItems(job.id, { limit: 1 })), [items[0]]);
      assert.deepEqual(await tx(store, (tx) => tx.countBulkItems(job.id)), {
        pending: 1,
        started: 0,
        completed: 0,
        failed: 1,
        skipped: 0,
      });
      assert.equal((await tx(store, (tx) => tx.countBulkItems(job.id, { startedSince: later }))).pending, 0);
      assert.deepEqual(
        (await tx(store, (tx) => tx.listBulkJobs({ states: ['paused'] }))).map((j) => j.id),
        [job.id],
      );
      assert.deepEqual(await tx(store, (tx) => tx.listBulkJobs({ states: ['running'] })), []);
      // Nothing in flight: not listed among the jobs with started items, until one item starts.
      assert.deepEqual(await tx(store, (tx) => tx.listBulkJobs({ withStartedItems: true })), []);
      await tx(store, (tx) =>
        tx.saveBulkItem({ ...items[0]!, state: 'started', startedAt: later, updatedAt: later }),
      );
      assert.deepEqual(
        (await tx(store, (tx) => tx.listBulkJobs({ states: ['paused'], withStartedItems: true }))).map(
          (j) => j.id,
        ),
        [job.id],
      );
      assert.deepEqual(
        await tx(store, (tx) => tx.listBulkJobs({ states: ['cancelled'], withStartedItems: true })),
        [],
      );
      await tx(store, (tx) => tx.saveBulkItem(items[0]!));
      await assert.rejects(
        tx(store, (tx) => tx.saveBulkItem({ ...items[0]!, position: 9 })),
        { code: 'InvalidInput' },
      );
    });

    it('bulk items whose transfer ended (or was never recorded) are listed by transferEnded', async ({
      store,
    }) => {
      const job: BulkJobRecord = {
        id: 'bulk-e',
        operatorId: 'op',
        kind: 'release',
        peerSmId: 'new-sm',
        concurrency: 5,
        ratePerSecond: 5,
        state: 'running',
        createdAt: T0,
        updatedAt: T0,
      };
      const eid = (n: number) => `${'8'.repeat(31)}${n}`;
      const item = (position: number, transferId?: string): BulkItemRecord => ({
        jobId: job.id,
        eid: eid(position),
        position,
        state: 'started',
        ...(transferId !== undefined && { transferId }),
        startedAt: T0,
        updatedAt: T0,
      });
      await tx(store, async (tx) => {
        await tx.insertTransfer(outgoing('open-out'));
        await tx.insertTransfer(incoming('open-in', { state: 'keyEstablished' }));
        await tx.insertTransfer(outgoing('done-out', { eid: EID2, state: 'completed' }));
        await tx.insertTransfer(incoming('done-in', { eid: EID2, state: 'failed' }));
        await tx.insertBulkJob(job, [
          item(0, 'open-out'),
          item(1, 'open-in'),
          item(2, 'done-out'),
          item(3, 'done-in'),
          item(4),
          item(5, 'no-such-transfer'),
        ]);
      });
      const positions = async (filter: Parameters<StoreTx['listBulkItems']>[1]) =>
        (await tx(store, (tx) => tx.listBulkItems(job.id, filter))).map((i) => i.position);
      assert.deepEqual(await positions({ states: ['started'], transferEnded: true }), [2, 3, 4, 5]);
      assert.deepEqual(await positions({ states: ['started'], transferEnded: false }), [0, 1, 2, 3, 4, 5]);
      await tx(store, (tx) => tx.saveTransfer(outgoing('open-out', { state: 'expired' })));
      assert.deepEqual(await positions({ transferEnded: true, limit: 2 }), [0, 2]);
    });
  });
}
