/**
 * One subscription manager (PROTOCOL.md §4 "SM", §6, §9): the operator, peer and device APIs
 * over one store. Each method validates its input, decides, and persists its state change with
 * its effects (audit, outbox) in one transaction before answering; a refusal throws an SmError
 * with a stable code and leaves the store unchanged (the one exception: a wrong unlock code
 * counts as an attempt, §8). The class only composes: each procedure lives in its own file.
 */
import {
  type BulkAction,
  type BulkItemQuery,
  type BulkJobRequest,
  type BulkJobStatus,
  type BulkStepReport,
  controlBulkJob,
  createBulkJob,
  getBulkJob,
  listBulkItems,
  stepBulkJobs,
} from './bulk/jobs.ts';
import { type CancelOutcome, handleCancelOutcome } from './cancel-outcome.ts';
import { type ChipResultOutcome, postChipResult } from './chip-result.ts';
import { type ChipRegistration, getChip, listChips, registerChip, setLock } from './chips.ts';
import { createContext, type SmContext, type SubscriptionManagerOptions } from './config.ts';
import type { LockRequest } from './domain/locks.ts';
import { type ExpiryReport, expire } from './expire.ts';
import { type CompletionResult, handleCompleted, postHandoverResult } from './handover-result.ts';
import { type DrainReport, drainOutbox } from './outbox.ts';
import type { OperatorNotifier, PeerMessage, PeerReply, PeerTransport } from './peer-api.ts';
import { poll, pollMany } from './poll.ts';
import {
  type AskOutcome,
  handleAskOutcome,
  orderPortIn,
  type PortInOrder,
  type PortInResult,
} from './port-in.ts';
import {
  approve,
  handleTransferAsk,
  type ReleaseRequest,
  reject,
  requestRelease,
  type TransferAsk,
} from './release.ts';
import type { AuditEntry, BulkItemRecord } from './store/types.ts';
import { postTransferRequest } from './transfer-request.ts';
import { countTransfers, getTransfer, listAudit, listTransfers, type TransferQuery } from './transfers.ts';
import type { ChipView, TransferView } from './views.ts';

export type { SubscriptionManagerOptions } from './config.ts';

export class SubscriptionManager {
  readonly #ctx: SmContext;

  constructor(options: SubscriptionManagerOptions) {
    this.#ctx = createContext(options);
  }

  get smId(): string {
    return this.#ctx.smId;
  }

  // ---- operator API (operatorId: from the operator's credentials) ----

  /** Validates the chain CI → EUM → chip (role chip, EID rules) and manages the chip, counter 0, unlocked. */
  registerChip(operatorId: string, registration: ChipRegistration): Promise<ChipView> {
    return registerChip(this.#ctx, operatorId, registration);
  }
  /** §8: only the chip's operator; the unlock code is stored as a salted scrypt hash. */
  setLock(operatorId: string, eid: string, policy: LockRequest): Promise<ChipView> {
    return setLock(this.#ctx, operatorId, eid, policy);
  }
  /** §6.1: the current MNO releases its chip to a new SM; the permission is issued at once. */
  requestRelease(operatorId: string, request: ReleaseRequest): Promise<TransferView> {
    return requestRelease(this.#ctx, operatorId, request);
  }
  approve(operatorId: string, transferId: string): Promise<TransferView> {
    return approve(this.#ctx, operatorId, transferId);
  }
  reject(operatorId: string, transferId: string): Promise<TransferView> {
    return reject(this.#ctx, operatorId, transferId);
  }
  /** At the new SM: the new MNO's order; with `ask`, a TransferAsk goes to the current SM. */
  orderPortIn(operatorId: string, order: PortInOrder): Promise<PortInResult> {
    return orderPortIn(this.#ctx, operatorId, order);
  }
  getChip(operatorId: string, eid: string): Promise<ChipView> {
    return getChip(this.#ctx, operatorId, eid);
  }
  listChips(operatorId: string): Promise<ChipView[]> {
    return listChips(this.#ctx, operatorId);
  }
  listTransfers(operatorId: string, query?: TransferQuery): Promise<TransferView[]> {
    return listTransfers(this.#ctx, operatorId, query);
  }
  countTransfers(
    operatorId: string,
    query?: { direction?: 'outgoing' | 'incoming' },
  ): Promise<Record<string, number>> {
    return countTransfers(this.#ctx, operatorId, query);
  }
  getTransfer(operatorId: string, transferId: string): Promise<TransferView> {
    return getTransfer(this.#ctx, operatorId, transferId);
  }
  listAudit(operatorId: string, query?: { eid?: string; transferId?: string }): Promise<AuditEntry[]> {
    return listAudit(this.#ctx, operatorId, query);
  }

  // ---- bulk transfers (bulk/jobs.ts) ----

  createBulkJob(operatorId: string, request: BulkJobRequest): Promise<BulkJobStatus> {
    return createBulkJob(this.#ctx, operatorId, request);
  }
  getBulkJob(operatorId: string, jobId: string): Promise<BulkJobStatus> {
    return getBulkJob(this.#ctx, operatorId, jobId);
  }
  listBulkItems(operatorId: string, jobId: string, query?: BulkItemQuery): Promise<BulkItemRecord[]> {
    return listBulkItems(this.#ctx, operatorId, jobId, query);
  }
  controlBulkJob(operatorId: string, jobId: string, action: BulkAction): Promise<BulkJobStatus> {
    return controlBulkJob(this.#ctx, operatorId, jobId, action);
  }

  // ---- peer API (callerSmId: from the authenticated channel, the mTLS certificate's CN) ----

  handleTransferAsk(callerSmId: string, ask: TransferAsk): Promise<PeerReply> {
    return handleTransferAsk(this.#ctx, callerSmId, ask);
  }
  handleCompleted(callerSmId: string, handoverResult: Uint8Array): Promise<PeerReply> {
    return handleCompleted(this.#ctx, callerSmId, handoverResult);
  }
  handleCancelOutcome(callerSmId: string, outcome: CancelOutcome): Promise<PeerReply> {
    return handleCancelOutcome(this.#ctx, callerSmId, outcome);
  }
  handleAskOutcome(callerSmId: string, outcome: AskOutcome): Promise<PeerReply> {
    return handleAskOutcome(this.#ctx, callerSmId, outcome);
  }

  /** One entry point for every peer message (what a transport calls). */
  handlePeerMessage(callerSmId: string, m: PeerMessage): Promise<PeerReply> {
    switch (m.type) {
      case 'TransferAsk':
        return this.handleTransferAsk(callerSmId, m);
      case 'Completed':
        return this.handleCompleted(callerSmId, m.handoverResult);
      case 'CancelOutcome':
        return this.handleCancelOutcome(callerSmId, m);
      case 'AskOutcome':
        return this.handleAskOutcome(callerSmId, m);
    }
  }

  // ---- device API (unauthenticated: every payload is signed end to end) ----

  /** Signed messages waiting for the chip (TransferPermissionMessage, CancelPermission, ConfirmProfileSwitch). */
  poll(eid: string): Promise<Uint8Array[]> {
    return poll(this.#ctx, eid);
  }
  /** poll() for many chips at once (every EID checked first); only chips with messages are in the map. */
  pollMany(eids: readonly string[]): Promise<Map<string, Uint8Array[]>> {
    return pollMany(this.#ctx, eids);
  }
  /** §6.3 at the new SM: answers the signed HandoverCommand (the same one for the same request). */
  postTransferRequest(transferRequest: Uint8Array): Promise<Uint8Array> {
    return postTransferRequest(this.#ctx, transferRequest);
  }
  /** §6.5 at the new SM: verifies the chip signature and the receipt; the chip is managed here from now on. */
  postHandoverResult(handoverResult: Uint8Array): Promise<CompletionResult> {
    return postHandoverResult(this.#ctx, handoverResult);
  }
  /** §6.6 / §7: a chip-signed ChipResult (cancellation outcome, profile-switch answer, or refusal). */
  postChipResult(chipResult: Uint8Array): Promise<ChipResultOutcome> {
    return postChipResult(this.#ctx, chipResult);
  }

  // ---- maintenance ----

  expire(now?: Date): Promise<ExpiryReport> {
    return expire(this.#ctx, now);
  }
  /** One step of every unfinished bulk job: settle ended transfers, start what the limits allow. */
  stepBulkJobs(now?: Date): Promise<BulkStepReport> {
    return stepBulkJobs(this.#ctx, now);
  }
  drainOutbox(transport: PeerTransport, notifier?: OperatorNotifier): Promise<DrainReport> {
    return drainOutbox(this.#ctx, transport, notifier);
  }
}
