/**
 * The SM store (PROTOCOL.md §4 "SM"): chips, transfers (both directions), port-in orders, an
 * outbox of effects, and an append-only audit log. Everything happens inside `transaction`: a
 * refused operation throws, and the transaction leaves the store as it was.
 *
 * Constraints are the store's own (a SQL dialect makes them UNIQUE indexes and guarded updates),
 * not only the callers': a permissionId is used once; a chip has at most one non-terminal
 * outgoing transfer and at most one non-terminal incoming one; a counter value toward a chip is
 * never used twice (useCounter only moves it up).
 */
import type { ProfileSwitch } from '../../protocol/asn1/permission.ts';
import type { Curve } from '../../protocol/crypto/curves.ts';
import type { Keyset } from '../../protocol/handover-keys.ts';
import type { LockPolicy } from '../domain/locks.ts';
import type { CurrentSmState, NewSmState } from '../domain/transfer-states.ts';
import { SmError } from '../errors.ts';
import type { OperatorNotification, PeerMessage } from '../peer-api.ts';

export type StoreConstraint =
  | 'ChipExists'
  | 'ChipNotManaged'
  | 'CounterReused'
  | 'PermissionReused'
  | 'TransferPending'
  | 'OrderPending'
  | 'UnknownTransfer'
  | 'InvalidInput';

/** A write the store refuses. `code` is the same stable code the SM reports. */
export class StoreConstraintError extends SmError {
  constructor(code: StoreConstraint, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
  }
}

// ---- chips ----

/** managed: ours; transferring: a permission for it is out; released: moved to another SM. */
export type ChipStatus = 'managed' | 'transferring' | 'released';

/** §7 at the new SM: the switch the chip applied at the commit, until the chip confirms it. */
export interface ProfileSwitchRecord {
  readonly profileSwitch: ProfileSwitch;
  /** closed: the chip had nothing left to confirm (rolled back, or confirmed before). */
  readonly state: 'unconfirmed' | 'confirmIssued' | 'confirmed' | 'rolledBack' | 'closed';
  readonly transferId: string;
  /** The handover's permissionId: the chip names it in its answers about the switch. */
  readonly permissionId: Uint8Array;
}

export interface ChipRecord {
  readonly eid: string;
  readonly operatorId: string;
  readonly chipCertificate: Uint8Array;
  readonly eumCertificate: Uint8Array;
  readonly curve: Curve;
  /** The last counterValue this SM signed toward the chip; 0 when none. Raised only by useCounter. */
  readonly counter: number;
  readonly status: ChipStatus;
  readonly lock: LockPolicy;
  /** This SM's management keyset with the chip (after a handover to this SM); wiped on release. */
  readonly keyset?: Keyset;
  readonly profileSwitch?: ProfileSwitchRecord;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type ChipPatch = Partial<Omit<ChipRecord, 'eid' | 'counter' | 'createdAt'>>;

// ---- transfers ----

interface TransferCommon {
  readonly id: string;
  readonly eid: string;
  /** The operator on this SM's side (current MNO for outgoing, new MNO for incoming). */
  readonly operatorId: string;
  /** The other SM: the new SM of an outgoing transfer, the current SM of an incoming one. */
  readonly peerSmId: string;
  /** Unique across the store once set. */
  readonly permissionId?: Uint8Array;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** Why a transfer ended (a stable code), for terminal states other than completed. */
  readonly endReason?: string;
}

export interface IssuedPermission {
  readonly counterValue: number;
  readonly notAfter: Date;
  /** The TransferPermissionMessage for the device. */
  readonly message: Uint8Array;
  readonly issuedAt: Date;
}

export interface IssuedCancel {
  readonly counterValue: number;
  /** The CancelPermission for the device. */
  readonly message: Uint8Array;
  readonly issuedAt: Date;
}

/** At the current SM (§6.1, §6.5, §6.6). */
export interface OutgoingTransfer extends TransferCommon {
  readonly direction: 'outgoing';
  readonly state: CurrentSmState;
  readonly origin: 'operator' | 'peer';
  /** The new SM's id for this transfer when it asked (TransferAsk.askId). */
  readonly peerAskId?: string;
  readonly newSmAddress: string;
  readonly activationCodeHash?: Uint8Array;
  readonly profileSwitch?: ProfileSwitch;
  /** A valid unlock code was presented with the request (§8). */
  readonly unlockedWithCode: boolean;
  /** Until when an approval is awaited (awaitingApproval only). */
  readonly approvalDeadline?: Date;
  readonly permission?: IssuedPermission;
  readonly cancel?: IssuedCancel;
  /** The chip-signed HandoverResult or ChipResult that ended the transfer. */
  readonly evidence?: Uint8Array;
}

/** What the new SM keeps of an accepted TransferRequest (§6.3). */
export interface AcceptedRequest {
  readonly transferRequest: Uint8Array;
  readonly handoverCommand: Uint8Array;
  readonly chipCertificate: Uint8Array;
  readonly eumCertificate: Uint8Array;
  readonly curve: Curve;
  readonly notAfter: Date;
  readonly keysetVersion: number;
  readonly profileSwitch?: ProfileSwitch;
}

/** At the new SM (§6.3, §6.5, §6.6). */
export interface IncomingTransfer extends TransferCommon {
  readonly direction: 'incoming';
  readonly state: NewSmState;
  readonly orderId: string;
  /** The current SM's transfer id, when it accepted our ask. */
  readonly peerTransferId?: string;
  /** Until when the order may be matched; never applied from keyEstablished on. */
  readonly expiresAt: Date;
  readonly request?: AcceptedRequest;
  /** Held from keyEstablished until the receipt is checked; wiped at the end. */
  readonly receiptKey?: Uint8Array;
  readonly keyset?: Keyset;
  readonly evidence?: Uint8Array;
}

export type TransferRecord = OutgoingTransfer | IncomingTransfer;

export interface TransferFilter {
  readonly eid?: string;
  readonly direction?: 'outgoing' | 'incoming';
  readonly operatorId?: string;
  readonly states?: readonly string[];
  /**
   * Only transfers whose expiry deadline (domain/expiry-deadline.ts) is strictly before this time;
   * transfers with no deadline are left out.
   */
  readonly deadlineBefore?: Date;
  /**
   * Paging: with a limit the list is in id order (the store's own collation) and holds at most
   * `limit` transfers whose id sorts after `afterId`; without one it is in creation order.
   */
  readonly limit?: number;
  readonly afterId?: string;
}

export interface TransferCountFilter {
  readonly direction?: 'outgoing' | 'incoming';
  readonly operatorId?: string;
}

// ---- port-in orders (the new MNO's durable request) ----

export interface OrderRecord {
  readonly id: string;
  readonly operatorId: string;
  readonly eid: string;
  readonly currentSmId: string;
  /** SHA-256 of the activation code the new MNO was given, if any. */
  readonly activationCodeHash?: Uint8Array;
  readonly ask: boolean;
  readonly state: 'open' | 'matched' | 'closed';
  readonly transferId: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
}

// ---- outbox ----

export type DeviceMessageKind = 'TransferPermissionMessage' | 'CancelPermission' | 'ConfirmProfileSwitch';

interface OutboxCommon {
  readonly id: string;
  readonly createdAt: Date;
  readonly eid: string;
  readonly transferId?: string;
}

export interface Delivery {
  readonly state: 'pending' | 'delivered' | 'refused';
  readonly attempts: number;
  readonly nextAttemptAt: Date;
  readonly lastError?: { readonly code: string; readonly message: string };
  readonly deliveredAt?: Date;
}

export interface PeerOutboxItem extends OutboxCommon, Delivery {
  readonly channel: 'peer';
  readonly targetSmId: string;
  readonly message: PeerMessage;
}

export interface OperatorOutboxItem extends OutboxCommon, Delivery {
  readonly channel: 'operator';
  readonly operatorId: string;
  readonly notification: OperatorNotification;
}

/** Offered on every poll for the EID until retired (the device may lose an answer). */
export interface DeviceOutboxItem extends OutboxCommon {
  readonly channel: 'device';
  readonly kind: DeviceMessageKind;
  readonly bytes: Uint8Array;
  readonly state: 'pending' | 'retired';
  readonly deliveries: number;
  readonly lastDeliveredAt?: Date;
}

export type OutboxItem = PeerOutboxItem | OperatorOutboxItem | DeviceOutboxItem;

export interface OutboxFilter {
  readonly channel?: OutboxItem['channel'];
  readonly eid?: string;
  readonly transferId?: string;
  readonly states?: readonly string[];
  /** Only items whose nextAttemptAt is at or before this time (peer and operator items). */
  readonly dueAt?: Date;
  /** At most this many, the oldest first (in the order they were queued). */
  readonly limit?: number;
}

// ---- audit (append-only, hash-chained) ----

export type AuditValue = string | number | boolean | null;

export interface AuditInput {
  readonly at: Date;
  /** operator:<id>, peer:<smId>, device, or system. */
  readonly actor: string;
  readonly action: string;
  readonly operatorId?: string;
  readonly eid?: string;
  readonly transferId?: string;
  /** Never secrets: no keys, no codes. Bytes as hex. */
  readonly details: Readonly<Record<string, AuditValue>>;
}

export interface AuditEntry extends AuditInput {
  readonly seq: number;
  /** Hex SHA-256 of the previous entry (64 zeros for the first). */
  readonly prevHash: string;
  readonly hash: string;
}

export interface AuditFilter {
  readonly operatorId?: string;
  readonly eid?: string;
  readonly transferId?: string;
}

// ---- bulk transfers (one operator's job over many chips, bulk/*.ts) ----

export type BulkKind = 'release' | 'portIn';
export type BulkJobState = 'running' | 'paused' | 'cancelled' | 'completed';
export type BulkItemState = 'pending' | 'started' | 'completed' | 'failed' | 'skipped';
export const BULK_ITEM_STATES: readonly BulkItemState[] = [
  'pending',
  'started',
  'completed',
  'failed',
  'skipped',
];

export interface BulkJobRecord {
  readonly id: string;
  readonly operatorId: string;
  readonly kind: BulkKind;
  /** release: the new SM; portIn: the current SM. */
  readonly peerSmId: string;
  /** SHA-256 of an activation code bound to every transfer of the job (never the code). */
  readonly activationCodeHash?: Uint8Array;
  /** At most this many items started and not yet ended. */
  readonly concurrency: number;
  /** At most this many items started in any one second. */
  readonly ratePerSecond: number;
  readonly state: BulkJobState;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface BulkItemRecord {
  readonly jobId: string;
  readonly eid: string;
  /** 0-based place in the job's list; items start in this order. */
  readonly position: number;
  readonly state: BulkItemState;
  readonly transferId?: string;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  readonly startedAt?: Date;
  readonly updatedAt: Date;
}

export interface BulkJobFilter {
  readonly states?: readonly BulkJobState[];
  /** Only jobs with at least one item in state `started` (a transfer still in flight). */
  readonly withStartedItems?: boolean;
}

export interface BulkItemFilter {
  readonly states?: readonly BulkItemState[];
  /** Only items started at or after this time. */
  readonly startedSince?: Date;
  /** Only items after this position. */
  readonly afterPosition?: number;
  /**
   * Only items with no transfer recorded, or whose transfer is gone or no longer open (what the
   * bulk runner has to settle), so that it does not read every transfer in flight on each step.
   */
  readonly transferEnded?: boolean;
  readonly limit?: number;
}

export type BulkCounts = Record<BulkItemState, number>;

// ---- the store ----

export interface StoreTx {
  getChip(eid: string): Promise<ChipRecord | undefined>;
  listChips(filter?: { readonly operatorId?: string; readonly status?: ChipStatus }): Promise<ChipRecord[]>;
  /** Inserts a chip, or replaces a released one (a chip coming back); ChipExists otherwise. */
  putChip(chip: ChipRecord): Promise<void>;
  updateChip(eid: string, patch: ChipPatch): Promise<ChipRecord>;
  /** Records the use of `counterValue` toward the chip; CounterReused unless it exceeds the stored counter. */
  useCounter(eid: string, counterValue: number): Promise<void>;

  getTransfer(id: string): Promise<TransferRecord | undefined>;
  findTransferByPermissionId(permissionId: Uint8Array): Promise<TransferRecord | undefined>;
  listTransfers(filter?: TransferFilter): Promise<TransferRecord[]>;
  insertTransfer(transfer: TransferRecord): Promise<void>;
  /** Replaces a transfer; id, direction and eid are fixed, constraints are checked again. */
  saveTransfer(transfer: TransferRecord): Promise<void>;
  /** How many transfers are in each state (states with none are left out). */
  countTransfers(filter?: TransferCountFilter): Promise<Record<string, number>>;

  getOrder(id: string): Promise<OrderRecord | undefined>;
  listOrders(filter?: {
    readonly eid?: string;
    readonly state?: OrderRecord['state'];
  }): Promise<OrderRecord[]>;
  insertOrder(order: OrderRecord): Promise<void>;
  saveOrder(order: OrderRecord): Promise<void>;

  enqueue(item: OutboxItem): Promise<void>;
  getOutbox(id: string): Promise<OutboxItem | undefined>;
  saveOutbox(item: OutboxItem): Promise<void>;
  listOutbox(filter?: OutboxFilter): Promise<OutboxItem[]>;
  /**
   * Of `eids`, those a device poll (poll.ts) would answer or change: with a pending device outbox
   * item, or a managed chip whose profile switch is unconfirmed. Any number of EIDs; unknown ones
   * are simply not in the result.
   */
  eidsWithDeviceWork(eids: readonly string[]): Promise<Set<string>>;

  appendAudit(entry: AuditInput): Promise<AuditEntry>;
  listAudit(filter?: AuditFilter): Promise<AuditEntry[]>;

  /** Inserts a job with its items (positions 0..n-1, EIDs distinct). */
  insertBulkJob(job: BulkJobRecord, items: readonly BulkItemRecord[]): Promise<void>;
  getBulkJob(id: string): Promise<BulkJobRecord | undefined>;
  listBulkJobs(filter?: BulkJobFilter): Promise<BulkJobRecord[]>;
  saveBulkJob(job: BulkJobRecord): Promise<void>;
  /** A job's items in position order. */
  listBulkItems(jobId: string, filter?: BulkItemFilter): Promise<BulkItemRecord[]>;
  countBulkItems(jobId: string, filter?: { readonly startedSince?: Date }): Promise<BulkCounts>;
  /** Replaces an item (jobId and position name it). */
  saveBulkItem(item: BulkItemRecord): Promise<void>;
}

export interface SmStore {
  /** Runs `fn` atomically and in isolation; if it throws, nothing it wrote stays. */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
}
