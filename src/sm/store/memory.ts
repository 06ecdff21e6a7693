/**
 * In-memory SmStore: transactions run one at a time on the live state, with a snapshot taken
 * before and restored if the function throws. Records are copied in and out, so a caller can
 * never change stored state except through the store's methods. Each transaction copies the
 * whole state once (the snapshot): fine for tests and demos, not meant for large fleets.
 */
import { COUNTER_MAX } from '../../protocol/asn1/permission.ts';
import { chainAuditEntry } from '../audit-chain.ts';
import { pastExpiryDeadline } from '../domain/expiry-deadline.ts';
import { isOpenTransfer as isOpen } from '../domain/transfer-states.ts';
import {
  type AuditEntry,
  type AuditFilter,
  type AuditInput,
  BULK_ITEM_STATES,
  type BulkCounts,
  type BulkItemFilter,
  type BulkItemRecord,
  type BulkJobFilter,
  type BulkJobRecord,
  type ChipPatch,
  type ChipRecord,
  type ChipStatus,
  type OrderRecord,
  type OutboxFilter,
  type OutboxItem,
  type SmStore,
  StoreConstraintError,
  type StoreTx,
  type TransferCountFilter,
  type TransferFilter,
  type TransferRecord,
} from './types.ts';

export interface MemoryState {
  chips: Map<string, ChipRecord>;
  transfers: Map<string, TransferRecord>;
  orders: Map<string, OrderRecord>;
  outbox: Map<string, OutboxItem>;
  audit: AuditEntry[];
  bulkJobs: Map<string, BulkJobRecord>;
  /** Per job, its items by position. */
  bulkItems: Map<string, BulkItemRecord[]>;
}

const copy = <T>(v: T): T => structuredClone(v);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function emptyState(): MemoryState {
  return {
    chips: new Map(),
    transfers: new Map(),
    orders: new Map(),
    outbox: new Map(),
    audit: [],
    bulkJobs: new Map(),
    bulkItems: new Map(),
  };
}

export class MemoryStore implements SmStore {
  #state: MemoryState = emptyState();
  #queue: Promise<unknown> = Promise.resolve();

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const snapshot = copy(this.#state);
      const tx = new MemoryTx(this.#state);
      try {
        const result = await fn(tx);
        tx.close();
        return result;
      } catch (e) {
        tx.close();
        this.#state = snapshot;
        throw e;
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** A deep copy of everything, for tests ("a refusal leaves the store unchanged"). */
  dump(): MemoryState {
    return copy(this.#state);
  }
}

class MemoryTx implements StoreTx {
  #s: MemoryState | undefined;
  constructor(state: MemoryState) {
    this.#s = state;
  }

  close(): void {
    this.#s = undefined;
  }

  get #state(): MemoryState {
    if (!this.#s) throw new Error('store transaction used after it ended');
    return this.#s;
  }

  // ---- chips ----

  async getChip(eid: string): Promise<ChipRecord | undefined> {
    const c = this.#state.chips.get(eid);
    return c && copy(c);
  }

  async listChips(filter: { operatorId?: string; status?: ChipStatus } = {}): Promise<ChipRecord[]> {
    return [...this.#state.chips.values()]
      .filter((c) => filter.operatorId === undefined || c.operatorId === filter.operatorId)
      .filter((c) => filter.status === undefined || c.status === filter.status)
      .map(copy);
  }

  async putChip(chip: ChipRecord): Promise<void> {
    const existing = this.#state.chips.get(chip.eid);
    if (existing && existing.status !== 'released') {
      throw new StoreConstraintError('ChipExists', `chip ${chip.eid} is already managed here`, {
        eid: chip.eid,
      });
    }
    if (!Number.isInteger(chip.counter) || chip.counter < 0 || chip.counter > COUNTER_MAX) {
      throw new StoreConstraintError('InvalidInput', 'a chip counter is an integer from 0', {
        eid: chip.eid,
      });
    }
    this.#state.chips.set(chip.eid, copy(chip));
  }

  async updateChip(eid: string, patch: ChipPatch): Promise<ChipRecord> {
    const existing = this.#state.chips.get(eid);
    if (!existing) throw new StoreConstraintError('ChipNotManaged', `no chip ${eid}`, { eid });
    const { eid: _e, counter: _c, createdAt: _t, ...allowed } = patch as ChipRecord;
    const next: ChipRecord = { ...existing, ...copy(allowed) };
    // `undefined` in a patch removes the field (keys wiped, switch closed).
    for (const [k, v] of Object.entries(allowed))
      if (v === undefined) delete (next as unknown as Record<string, unknown>)[k];
    this.#state.chips.set(eid, next);
    return copy(next);
  }

  async useCounter(eid: string, counterValue: number): Promise<void> {
    const existing = this.#state.chips.get(eid);
    if (!existing) throw new StoreConstraintError('ChipNotManaged', `no chip ${eid}`, { eid });
    if (!Number.isInteger(counterValue) || counterValue > COUNTER_MAX) {
      throw new StoreConstraintError('InvalidInput', `counter value ${counterValue} is out of range`, {
        eid,
      });
    }
    if (counterValue <= existing.counter) {
      throw new StoreConstraintError(
        'CounterReused',
        `counter value ${counterValue} toward chip ${eid} is not above the last one used (${existing.counter})`,
        { eid, counterValue, counter: existing.counter },
      );
    }
    this.#state.chips.set(eid, { ...existing, counter: counterValue });
  }

  // ---- transfers ----

  async getTransfer(id: string): Promise<TransferRecord | undefined> {
    const t = this.#state.transfers.get(id);
    return t && copy(t);
  }

  async findTransferByPermissionId(permissionId: Uint8Array): Promise<TransferRecord | undefined> {
    const key = hex(permissionId);
    for (const t of this.#state.transfers.values()) {
      if (t.permissionId && hex(t.permissionId) === key) return copy(t);
    }
    return undefined;
  }

  async listTransfers(filter: TransferFilter = {}): Promise<TransferRecord[]> {
    const all = [...this.#state.transfers.values()]
      .filter((t) => filter.eid === undefined || t.eid === filter.eid)
      .filter((t) => filter.direction === undefined || t.direction === filter.direction)
      .filter((t) => filter.operatorId === undefined || t.operatorId === filter.operatorId)
      .filter((t) => filter.states === undefined || filter.states.includes(t.state))
      .filter((t) => filter.deadlineBefore === undefined || pastExpiryDeadline(t, filter.deadlineBefore))
      .filter((t) => filter.afterId === undefined || t.id > filter.afterId);
    if (filter.limit === undefined) return all.map(copy);
    return all
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, filter.limit)
      .map(copy);
  }

  #checkTransfer(t: TransferRecord): void {
    for (const other of this.#state.transfers.values()) {
      if (other.id === t.id) continue;
      if (t.permissionId && other.permissionId && hex(other.permissionId) === hex(t.permissionId)) {
        throw new StoreConstraintError('PermissionReused', 'this permissionId has been seen before', {
          permissionId: hex(t.permissionId),
        });
      }
      if (other.eid === t.eid && other.direction === t.direction && isOpen(other) && isOpen(t)) {
        throw t.direction === 'outgoing'
          ? new StoreConstraintError('TransferPending', `chip ${t.eid} already has a transfer in progress`, {
              eid: t.eid,
              transferId: other.id,
            })
          : new StoreConstraintError('OrderPending', `chip ${t.eid} already has a port-in in progress`, {
              eid: t.eid,
              transferId: other.id,
            });
      }
    }
  }

  async insertTransfer(transfer: TransferRecord): Promise<void> {
    if (this.#state.transfers.has(transfer.id)) {
      throw new StoreConstraintError('InvalidInput', `transfer id ${transfer.id} exists`);
    }
    this.#checkTransfer(transfer);
    this.#state.transfers.set(transfer.id, copy(transfer));
  }

  async saveTransfer(transfer: TransferRecord): Promise<void> {
    const existing = this.#state.transfers.get(transfer.id);
    if (!existing) throw new StoreConstraintError('UnknownTransfer', `no transfer ${transfer.id}`);
    if (existing.direction !== transfer.direction || existing.eid !== transfer.eid) {
      throw new StoreConstraintError('InvalidInput', 'a transfer keeps its direction and EID');
    }
    this.#checkTransfer(transfer);
    this.#state.transfers.set(transfer.id, copy(transfer));
  }

  async countTransfers(filter: TransferCountFilter = {}): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const t of this.#state.transfers.values()) {
      if (filter.direction !== undefined && t.direction !== filter.direction) continue;
      if (filter.operatorId !== undefined && t.operatorId !== filter.operatorId) continue;
      counts[t.state] = (counts[t.state] ?? 0) + 1;
    }
    return counts;
  }

  // ---- orders ----

  async getOrder(id: string): Promise<OrderRecord | undefined> {
    const o = this.#state.orders.get(id);
    return o && copy(o);
  }

  async listOrders(filter: { eid?: string; state?: OrderRecord['state'] } = {}): Promise<OrderRecord[]> {
    return [...this.#state.orders.values()]
      .filter((o) => filter.eid === undefined || o.eid === filter.eid)
      .filter((o) => filter.state === undefined || o.state === filter.state)
      .map(copy);
  }

  async insertOrder(order: OrderRecord): Promise<void> {
    if (this.#state.orders.has(order.id))
      throw new StoreConstraintError('InvalidInput', `order id ${order.id} exists`);
    this.#state.orders.set(order.id, copy(order));
  }

  async saveOrder(order: OrderRecord): Promise<void> {
    if (!this.#state.orders.has(order.id))
      throw new StoreConstraintError('InvalidInput', `no order ${order.id}`);
    this.#state.orders.set(order.id, copy(order));
  }

  // ---- outbox ----

  async enqueue(item: OutboxItem): Promise<void> {
    if (this.#state.outbox.has(item.id))
      throw new StoreConstraintError('InvalidInput', `outbox id ${item.id} exists`);
    this.#state.outbox.set(item.id, copy(item));
  }

  async getOutbox(id: string): Promise<OutboxItem | undefined> {
    const i = this.#state.outbox.get(id);
    return i && copy(i);
  }

  async saveOutbox(item: OutboxItem): Promise<void> {
    const existing = this.#state.outbox.get(item.id);
    if (!existing || existing.channel !== item.channel) {
      throw new StoreConstraintError('InvalidInput', `no ${item.channel} outbox item ${item.id}`);
    }
    this.#state.outbox.set(item.id, copy(item));
  }

  async listOutbox(filter: OutboxFilter = {}): Promise<OutboxItem[]> {
    return [...this.#state.outbox.values()]
      .filter((i) => filter.channel === undefined || i.channel === filter.channel)
      .filter((i) => filter.eid === undefined || i.eid === filter.eid)
      .filter((i) => filter.transferId === undefined || i.transferId === filter.transferId)
      .filter((i) => filter.states === undefined || filter.states.includes(i.state))
      .filter(
        (i) =>
          filter.dueAt === undefined ||
          (i.channel !== 'device' && i.nextAttemptAt.getTime() <= filter.dueAt.getTime()),
      )
      .slice(0, filter.limit ?? Number.POSITIVE_INFINITY)
      .map(copy);
  }

  async eidsWithDeviceWork(eids: readonly string[]): Promise<Set<string>> {
    const wanted = new Set(eids);
    const found = new Set<string>();
    for (const eid of wanted) {
      const c = this.#state.chips.get(eid);
      if (c?.status === 'managed' && c.profileSwitch?.state === 'unconfirmed') found.add(eid);
    }
    for (const i of this.#state.outbox.values()) {
      if (i.channel === 'device' && i.state === 'pending' && wanted.has(i.eid)) found.add(i.eid);
    }
    return found;
  }

  // ---- audit ----

  async appendAudit(entry: AuditInput): Promise<AuditEntry> {
    const audit = this.#state.audit;
    const chained = chainAuditEntry(audit[audit.length - 1], entry);
    audit.push(chained);
    return copy(chained);
  }

  async listAudit(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    return this.#state.audit
      .filter((e) => filter.operatorId === undefined || e.operatorId === filter.operatorId)
      .filter((e) => filter.eid === undefined || e.eid === filter.eid)
      .filter((e) => filter.transferId === undefined || e.transferId === filter.transferId)
      .map(copy);
  }

  // ---- bulk jobs ----

  async insertBulkJob(job: BulkJobRecord, items: readonly BulkItemRecord[]): Promise<void> {
    if (this.#state.bulkJobs.has(job.id))
      throw new StoreConstraintError('InvalidInput', `bulk job id ${job.id} exists`);
    const eids = new Set<string>();
    items.forEach((item, i) => {
      if (item.jobId !== job.id || item.position !== i || eids.has(item.eid)) {
        throw new StoreConstraintError(
          'InvalidInput',
          "bulk items are the job's, in position order, EIDs distinct",
        );
      }
      eids.add(item.eid);
    });
    this.#state.bulkJobs.set(job.id, copy(job));
    this.#state.bulkItems.set(job.id, items.map(copy));
  }

  async getBulkJob(id: string): Promise<BulkJobRecord | undefined> {
    const j = this.#state.bulkJobs.get(id);
    return j && copy(j);
  }

  async listBulkJobs(filter: BulkJobFilter = {}): Promise<BulkJobRecord[]> {
    const started = (j: BulkJobRecord) =>
      (this.#state.bulkItems.get(j.id) ?? []).some((i) => i.state === 'started');
    return [...this.#state.bulkJobs.values()]
      .filter((j) => filter.states === undefined || filter.states.includes(j.state))
      .filter((j) => !filter.withStartedItems || started(j))
      .map(copy);
  }

  async saveBulkJob(job: BulkJobRecord): Promise<void> {
    if (!this.#state.bulkJobs.has(job.id))
      throw new StoreConstraintError('InvalidInput', `no bulk job ${job.id}`);
    this.#state.bulkJobs.set(job.id, copy(job));
  }

  async listBulkItems(jobId: string, filter: BulkItemFilter = {}): Promise<BulkItemRecord[]> {
    const since = filter.startedSince?.getTime();
    const found = (this.#state.bulkItems.get(jobId) ?? [])
      .filter((i) => filter.states === undefined || filter.states.includes(i.state))
      .filter((i) => since === undefined || (i.startedAt !== undefined && i.startedAt.getTime() >= since))
      .filter((i) => filter.afterPosition === undefined || i.position > filter.afterPosition)
      .filter((i) => {
        if (filter.transferEnded !== true || i.transferId === undefined) return true;
        const t = this.#state.transfers.get(i.transferId);
        return t === undefined || !isOpen(t);
      });
    return (filter.limit === undefined ? found : found.slice(0, filter.limit)).map(copy);
  }

  async countBulkItems(jobId: string, filter: { readonly startedSince?: Date } = {}): Promise<BulkCounts> {
    const counts = Object.fromEntries(BULK_ITEM_STATES.map((s) => [s, 0])) as BulkCounts;
    for (const i of await this.listBulkItems(jobId, filter)) counts[i.state] += 1;
    return counts;
  }

  async saveBulkItem(item: BulkItemRecord): Promise<void> {
    const items = this.#state.bulkItems.get(item.jobId);
    const existing = items?.[item.position];
    if (!items || !existing || existing.eid !== item.eid) {
      throw new StoreConstraintError('InvalidInput', `no bulk item ${item.jobId}/${item.position}`);
    }
    items[item.position] = copy(item);
  }
}
