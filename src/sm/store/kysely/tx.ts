/** StoreTx over one SQL transaction: each method is a repository call on the transaction's connection. */
import type { Kysely } from 'kysely';
import type {
  AuditEntry,
  AuditFilter,
  AuditInput,
  BulkCounts,
  BulkItemFilter,
  BulkItemRecord,
  BulkJobFilter,
  BulkJobRecord,
  ChipPatch,
  ChipRecord,
  ChipStatus,
  OrderRecord,
  OutboxFilter,
  OutboxItem,
  StoreTx,
  TransferCountFilter,
  TransferFilter,
  TransferRecord,
} from '../types.ts';
import * as audit from './audit.ts';
import * as bulk from './bulk.ts';
import * as chips from './chips.ts';
import type { Conn } from './conn.ts';
import * as orders from './orders.ts';
import * as outbox from './outbox.ts';
import type { Database } from './schema.ts';
import * as transfers from './transfers.ts';

const connections = new WeakMap<StoreTx, Conn>();

/**
 * The kysely handle of an open SQL store transaction, for statements the StoreTx interface has
 * no method for (tests, maintenance). Database refusals from it are not mapped (storeErrorOf).
 */
export function transactionDb(tx: StoreTx): Kysely<Database> {
  const conn = connections.get(tx);
  if (!conn) throw new Error('not a SQL store transaction');
  // Raw statements may change rows this transaction remembers (conn.ts).
  conn.rows.clear();
  return conn.db;
}

/**
 * The connection of an open SQL store transaction, for repositories outside the StoreTx interface
 * (idempotency.ts): its `run` maps database refusals and notes PostgreSQL conflicts to retry.
 */
export function transactionConn(tx: StoreTx): Conn {
  const conn = connections.get(tx);
  if (!conn) throw new Error('not a SQL store transaction');
  return conn;
}

export class KyselyTx implements StoreTx {
  readonly #c: Conn;

  constructor(conn: Conn) {
    this.#c = conn;
    connections.set(this, conn);
  }

  getChip(eid: string): Promise<ChipRecord | undefined> {
    return chips.getChip(this.#c, eid);
  }
  listChips(filter?: { readonly operatorId?: string; readonly status?: ChipStatus }): Promise<ChipRecord[]> {
    return chips.listChips(this.#c, filter);
  }
  putChip(chip: ChipRecord): Promise<void> {
    return chips.putChip(this.#c, chip);
  }
  updateChip(eid: string, patch: ChipPatch): Promise<ChipRecord> {
    return chips.updateChip(this.#c, eid, patch);
  }
  useCounter(eid: string, counterValue: number): Promise<void> {
    return chips.useCounter(this.#c, eid, counterValue);
  }

  getTransfer(id: string): Promise<TransferRecord | undefined> {
    return transfers.getTransfer(this.#c, id);
  }
  findTransferByPermissionId(permissionId: Uint8Array): Promise<TransferRecord | undefined> {
    return transfers.findTransferByPermissionId(this.#c, permissionId);
  }
  listTransfers(filter?: TransferFilter): Promise<TransferRecord[]> {
    return transfers.listTransfers(this.#c, filter);
  }
  insertTransfer(transfer: TransferRecord): Promise<void> {
    return transfers.insertTransfer(this.#c, transfer);
  }
  saveTransfer(transfer: TransferRecord): Promise<void> {
    return transfers.saveTransfer(this.#c, transfer);
  }
  countTransfers(filter?: TransferCountFilter): Promise<Record<string, number>> {
    return transfers.countTransfers(this.#c, filter);
  }

  getOrder(id: string): Promise<OrderRecord | undefined> {
    return orders.getOrder(this.#c, id);
  }
  listOrders(filter?: {
    readonly eid?: string;
    readonly state?: OrderRecord['state'];
  }): Promise<OrderRecord[]> {
    return orders.listOrders(this.#c, filter);
  }
  insertOrder(order: OrderRecord): Promise<void> {
    return orders.insertOrder(this.#c, order);
  }
  saveOrder(order: OrderRecord): Promise<void> {
    return orders.saveOrder(this.#c, order);
  }

  enqueue(item: OutboxItem): Promise<void> {
    return outbox.enqueue(this.#c, item);
  }
  getOutbox(id: string): Promise<OutboxItem | undefined> {
    return outbox.getOutbox(this.#c, id);
  }
  saveOutbox(item: OutboxItem): Promise<void> {
    return outbox.saveOutbox(this.#c, item);
  }
  listOutbox(filter?: OutboxFilter): Promise<OutboxItem[]> {
    return outbox.listOutbox(this.#c, filter);
  }
  async eidsWithDeviceWork(eids: readonly string[]): Promise<Set<string>> {
    const unique = [...new Set(eids)];
    const found = await outbox.eidsWithPendingDevice(this.#c, unique);
    for (const eid of await chips.eidsWithUnconfirmedSwitch(this.#c, unique)) found.add(eid);
    return found;
  }

  appendAudit(entry: AuditInput): Promise<AuditEntry> {
    return audit.appendAudit(this.#c, entry);
  }
  listAudit(filter?: AuditFilter): Promise<AuditEntry[]> {
    return audit.listAudit(this.#c, filter);
  }

  insertBulkJob(job: BulkJobRecord, items: readonly BulkItemRecord[]): Promise<void> {
    return bulk.insertBulkJob(this.#c, job, items);
  }
  getBulkJob(id: string): Promise<BulkJobRecord | undefined> {
    return bulk.getBulkJob(this.#c, id);
  }
  listBulkJobs(filter?: BulkJobFilter): Promise<BulkJobRecord[]> {
    return bulk.listBulkJobs(this.#c, filter);
  }
  saveBulkJob(job: BulkJobRecord): Promise<void> {
    return bulk.saveBulkJob(this.#c, job);
  }
  listBulkItems(jobId: string, filter?: BulkItemFilter): Promise<BulkItemRecord[]> {
    return bulk.listBulkItems(this.#c, jobId, filter);
  }
  countBulkItems(jobId: string, filter?: { readonly startedSince?: Date }): Promise<BulkCounts> {
    return bulk.countBulkItems(this.#c, jobId, filter);
  }
  saveBulkItem(item: BulkItemRecord): Promise<void> {
    return bulk.saveBulkItem(this.#c, item);
  }
}
