/**
 * Bulk transfers (issue 4 item 1): one operator's job over many chips, each a release
 * (requestRelease) or a port-in (orderPortIn with ask), started in list order with bounded
 * concurrency and a rate limit (plan.ts), paused, resumed or cancelled by the operator. Every
 * decision is in the store, so a restarted SM goes on where it stopped: `stepBulkJobs`, run by the
 * server's background loop, settles started items whose transfer ended, then starts the next ones.
 *
 * An item is marked started (in the same transaction that counts the limits) before its transfer
 * is asked for; if the SM stops in between, a later step adopts the transfer the call made
 * (the chip's open transfer to the same peer created since) or, once LOST_START_MS have passed
 * (the call may still be running in another replica until then), puts the item back to pending.
 */
import { HandoverError } from '../../protocol/errors.ts';
import type { SmContext } from '../config.ts';
import { hashActivationCode } from '../domain/activation-code.ts';
import { isOpenTransfer } from '../domain/transfer-states.ts';
import { audit, newId } from '../effects.ts';
import { SmError } from '../errors.ts';
import { checkEid, checkId, checkSmId, requireOperator } from '../input.ts';
import { requirePeer } from '../peers.ts';
import { orderPortIn } from '../port-in.ts';
import { requestRelease } from '../release.ts';
import type {
  BulkCounts,
  BulkItemRecord,
  BulkItemState,
  BulkJobRecord,
  BulkKind,
  StoreTx,
  TransferRecord,
} from '../store/types.ts';
import { isFinished, itemsToStart, RATE_WINDOW_MS } from './plan.ts';

export const MAX_BULK_ITEMS = 200_000;
export const DEFAULT_CONCURRENCY = 10;
export const DEFAULT_RATE_PER_SECOND = 10;
/** Failures listed in a report (the items endpoint pages through all of them). */
export const REPORT_FAILURES = 1000;

export interface BulkJobRequest {
  readonly kind: BulkKind;
  readonly eids: readonly string[];
  /** release: the new SM; portIn: the current SM. */
  readonly peerSmId: string;
  readonly concurrency?: number;
  readonly ratePerSecond?: number;
  /**
   * One activation code for every transfer of the job (release: in each permission; port-in: in
   * each order and its ask). Only its SHA-256 is kept, as for one transfer.
   */
  readonly activationCode?: string;
}

export interface BulkFailure {
  readonly position: number;
  readonly eid: string;
  readonly code: string;
  readonly message: string;
  readonly transferId?: string;
}

export interface BulkReport {
  readonly total: number;
  readonly counts: BulkCounts;
  /** Completed, or cancelled with nothing in flight: the counts are final. */
  readonly finished: boolean;
  readonly failures: readonly BulkFailure[];
  readonly failuresTruncated: boolean;
}

export interface BulkJobStatus {
  readonly job: BulkJobRecord;
  readonly report: BulkReport;
}

export type BulkAction = 'pause' | 'resume' | 'cancel';

const invalid = (field: string, message: string, details: Record<string, unknown> = {}): SmError =>
  new SmError('InvalidInput', message, { field, ...details });

function checkLimit(v: number | undefined, fallback: number, max: number, field: string): number {
  const n = v ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw invalid(field, `${field} is an integer from 1 to ${max}`);
  return n;
}

/** Every EID checked; the bad ones (up to 100) named with their index in the list. */
function checkEids(eids: readonly string[]): void {
  if (eids.length === 0 || eids.length > MAX_BULK_ITEMS)
    throw invalid('eids', `a bulk job has 1 to ${MAX_BULK_ITEMS} EIDs`);
  const problems: { index: number; eid: string; problem: string }[] = [];
  const seen = new Map<string, number>();
  eids.forEach((eid, index) => {
    try {
      checkEid(eid);
    } catch (e) {
      // Echoed back (and kept with the idempotency key): a bounded piece of what was sent.
      problems.push({
        index,
        eid: String(eid).slice(0, 40),
        problem: e instanceof Error ? e.message : String(e),
      });
      return;
    }
    const first = seen.get(eid);
    if (first !== undefined) problems.push({ index, eid, problem: `repeats the EID at index ${first}` });
    else seen.set(eid, index);
  });
  if (problems.length > 0) {
    throw invalid('eids', `${problems.length} of the EIDs are invalid or repeated`, {
      invalid: problems.slice(0, 100),
    });
  }
}

async function ownJob(tx: StoreTx, operatorId: string, jobId: string): Promise<BulkJobRecord> {
  const job = await tx.getBulkJob(jobId);
  // Another operator's job is reported as unknown, as transfers are.
  if (!job || job.operatorId !== operatorId)
    throw new SmError('UnknownBulkJob', `no bulk job ${jobId}`, { jobId });
  return job;
}

async function reportOf(tx: StoreTx, job: BulkJobRecord): Promise<BulkReport> {
  const counts = await tx.countBulkItems(job.id);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const failed = await tx.listBulkItems(job.id, { states: ['failed'], limit: REPORT_FAILURES });
  return {
    total,
    counts,
    // Completed is set by the runner's next step once nothing is pending or in flight.
    finished: job.state === 'completed' || (job.state === 'cancelled' && counts.started === 0),
    failures: failed.map((i) => ({
      position: i.position,
      eid: i.eid,
      code: i.errorCode ?? 'Failed',
      message: i.errorMessage ?? '',
      ...(i.transferId !== undefined && { transferId: i.transferId }),
    })),
    failuresTruncated: counts.failed > failed.length,
  };
}

export async function createBulkJob(
  ctx: SmContext,
  operatorId: string,
  request: BulkJobRequest,
): Promise<BulkJobStatus> {
  requireOperator(ctx, operatorId);
  if (request.kind !== 'release' && request.kind !== 'portIn')
    throw invalid('kind', 'kind is release or portIn');
  checkSmId(request.peerSmId, request.kind === 'release' ? 'newSmId' : 'currentSmId');
  if (request.peerSmId === ctx.smId) throw invalid('peerSmId', 'the other SM of a bulk job is not this SM');
  // As for one transfer: a peer that is not in the directory (or whose certificate does not
  // validate) is refused now, not once per item.
  requirePeer(ctx, request.peerSmId, ctx.clock());
  checkEids(request.eids);
  const concurrency = checkLimit(request.concurrency, DEFAULT_CONCURRENCY, 10_000, 'concurrency');
  const ratePerSecond = checkLimit(request.ratePerSecond, DEFAULT_RATE_PER_SECOND, 100_000, 'ratePerSecond');
  const activationCodeHash =
    request.activationCode === undefined ? undefined : hashActivationCode(request.activationCode);
  const now = ctx.clock();
  const job: BulkJobRecord = {
    id: newId(ctx, 'bulk'),
    operatorId,
    kind: request.kind,
    peerSmId: request.peerSmId,
    ...(activationCodeHash && { activationCodeHash }),
    concurrency,
    ratePerSecond,
    state: 'running',
    createdAt: now,
    updatedAt: now,
  };
  const items: BulkItemRecord[] = request.eids.map((eid, position) => ({
    jobId: job.id,
    eid,
    position,
    state: 'pending',
    updatedAt: now,
  }));
  return ctx.store.transaction(async (tx) => {
    await tx.insertBulkJob(job, items);
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: 'bulkJobCreated',
      operatorId,
      details: {
        jobId: job.id,
        kind: job.kind,
        peerSmId: job.peerSmId,
        items: items.length,
        concurrency,
        ratePerSecond,
        activationCode: activationCodeHash !== undefined,
      },
    });
    return { job, report: await reportOf(tx, job) };
  });
}

export async function getBulkJob(ctx: SmContext, operatorId: string, jobId: string): Promise<BulkJobStatus> {
  requireOperator(ctx, operatorId);
  checkId(jobId, 'jobId');
  return ctx.store.transaction(async (tx) => {
    const job = await ownJob(tx, operatorId, jobId);
    return { job, report: await reportOf(tx, job) };
  });
}

export interface BulkItemQuery {
  readonly states?: readonly BulkItemState[];
  readonly afterPosition?: number;
  readonly limit?: number;
}

export async function listBulkItems(
  ctx: SmContext,
  operatorId: string,
  jobId: string,
  q: BulkItemQuery = {},
): Promise<BulkItemRecord[]> {
  requireOperator(ctx, operatorId);
  checkId(jobId, 'jobId');
  return ctx.store.transaction(async (tx) => {
    await ownJob(tx, operatorId, jobId);
    return tx.listBulkItems(jobId, { ...q, limit: Math.min(q.limit ?? 1000, 10_000) });
  });
}

/** pause: running → paused; resume: paused → running; cancel: pending items skipped, started ones run to their end. */
export async function controlBulkJob(
  ctx: SmContext,
  operatorId: string,
  jobId: string,
  action: BulkAction,
): Promise<BulkJobStatus> {
  requireOperator(ctx, operatorId);
  checkId(jobId, 'jobId');
  return ctx.store.transaction(async (tx) => {
    const job = await ownJob(tx, operatorId, jobId);
    const allowed =
      action === 'pause'
        ? job.state === 'running'
        : action === 'resume'
          ? job.state === 'paused'
          : job.state === 'running' || job.state === 'paused';
    if (!allowed) {
      throw new SmError('InvalidState', `a ${job.state} bulk job cannot ${action}`, {
        jobId,
        state: job.state,
      });
    }
    const now = ctx.clock();
    const state = action === 'pause' ? 'paused' : action === 'resume' ? 'running' : 'cancelled';
    const next: BulkJobRecord = { ...job, state, updatedAt: now };
    await tx.saveBulkJob(next);
    if (action === 'cancel') {
      for (const item of await tx.listBulkItems(jobId, { states: ['pending'] })) {
        await tx.saveBulkItem({ ...item, state: 'skipped', updatedAt: now });
      }
    }
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: { pause: 'bulkJobPaused', resume: 'bulkJobResumed', cancel: 'bulkJobCancelled' }[action],
      operatorId,
      details: { jobId },
    });
    return { job: next, report: await reportOf(tx, next) };
  });
}

// ---- the runner ----

export interface BulkStepReport {
  readonly started: number;
  readonly ended: number;
  readonly jobsCompleted: number;
}

const direction = (kind: BulkKind) => (kind === 'release' ? 'outgoing' : 'incoming');

/** When an item was started (its job's creation for an item stored without the time). */
const startedAtMs = (job: BulkJobRecord, item: BulkItemRecord): number =>
  item.startedAt?.getTime() ?? job.createdAt.getTime();

/** The transfer a started item's call made, if the SM stopped before recording it. */
/**
 * The id of the transfer an item starts: its own, so the item finds the transfer its start made
 * (even when the start ran in a replica that stalled, or the SM stopped before recording it),
 * and never takes another job's or an operator's transfer for the same chip.
 */
export function itemTransferId(job: BulkJobRecord, item: BulkItemRecord): string {
  return `tr_${job.id}_${item.position}`;
}

async function madeTransfer(
  tx: StoreTx,
  job: BulkJobRecord,
  item: BulkItemRecord,
): Promise<TransferRecord | undefined> {
  const t = await tx.getTransfer(itemTransferId(job, item));
  return t && t.eid === item.eid && t.direction === direction(job.kind) ? t : undefined;
}

/**
 * How long a started item may have no transfer before the runner takes it for lost and puts it
 * back to pending: the call that starts it runs after the step's transaction, so until it ends
 * another runner on the same database (a replica) would see the item started with no transfer.
 */
export const LOST_START_MS = 30_000;

/** Settles the job's started items; returns how many ended. */
async function settle(tx: StoreTx, job: BulkJobRecord, now: Date): Promise<number> {
  let ended = 0;
  for (const item of await tx.listBulkItems(job.id, { states: ['started'], transferEnded: true })) {
    let transferId = item.transferId;
    if (transferId === undefined) {
      const made = await madeTransfer(tx, job, item);
      if (!made) {
        if (now.getTime() - startedAtMs(job, item) < LOST_START_MS) continue;
        const { startedAt: _s, ...rest } = item;
        // Never started after all: pending again, or skipped when the job was cancelled since.
        await tx.saveBulkItem({
          ...rest,
          state: job.state === 'cancelled' ? 'skipped' : 'pending',
          updatedAt: now,
        });
        continue;
      }
      transferId = made.id;
      await tx.saveBulkItem({ ...item, transferId, updatedAt: now });
    }
    const t = await tx.getTransfer(transferId);
    if (t && isOpenTransfer(t)) continue;
    ended += 1;
    if (t?.state === 'completed') {
      await tx.saveBulkItem({ ...item, transferId, state: 'completed', updatedAt: now });
    } else {
      await tx.saveBulkItem({
        ...item,
        transferId,
        state: 'failed',
        errorCode:
          t?.endReason ?? (t ? `Transfer${t.state[0]?.toUpperCase()}${t.state.slice(1)}` : 'UnknownTransfer'),
        errorMessage: t ? `the transfer ended ${t.state}` : `transfer ${transferId} is gone`,
        updatedAt: now,
      });
    }
  }
  return ended;
}

async function startItem(ctx: SmContext, job: BulkJobRecord, item: BulkItemRecord): Promise<void> {
  const code = job.activationCodeHash && { activationCodeHash: job.activationCodeHash };
  const own = { transferId: itemTransferId(job, item) };
  let transferId: string;
  try {
    transferId =
      job.kind === 'release'
        ? (await requestRelease(ctx, job.operatorId, { eid: item.eid, newSmId: job.peerSmId, ...code }, own))
            .id
        : (
            await orderPortIn(
              ctx,
              job.operatorId,
              { eid: item.eid, currentSmId: job.peerSmId, ask: true, ...code },
              own,
            )
          ).transfer.id;
  } catch (e) {
    // A refusal ends the item; anything else leaves it started for the next step to sort out.
    if (!(e instanceof HandoverError)) throw e;
    await ctx.store.transaction(async (tx) => {
      // Refused because an earlier start of this very item made the transfer after all (a
      // replica that stalled past LOST_START_MS): the item follows that transfer.
      const made = await madeTransfer(tx, job, item);
      if (made) {
        await tx.saveBulkItem({ ...item, transferId: made.id, updatedAt: ctx.clock() });
        return;
      }
      await tx.saveBulkItem({
        ...item,
        state: 'failed',
        errorCode: e.code,
        errorMessage: e.message,
        updatedAt: ctx.clock(),
      });
    });
    return;
  }
  await ctx.store.transaction((tx) => tx.saveBulkItem({ ...item, transferId, updatedAt: ctx.clock() }));
}

/** One step for one job: settle, complete it when done, start what the limits allow. */
async function stepJob(ctx: SmContext, jobId: string, now: Date): Promise<BulkStepReport> {
  const planned = await ctx.store.transaction(async (tx) => {
    const job = await tx.getBulkJob(jobId);
    if (!job || job.state === 'completed') return { job, ended: 0, items: [], completed: false };
    const ended = await settle(tx, job, now);
    const counts = await tx.countBulkItems(jobId);
    if (job.state === 'running' && isFinished({ pending: counts.pending, inFlight: counts.started })) {
      await tx.saveBulkJob({ ...job, state: 'completed', updatedAt: now });
      await audit(tx, ctx, {
        actor: 'system',
        action: 'bulkJobCompleted',
        operatorId: job.operatorId,
        details: { jobId, completed: counts.completed, failed: counts.failed, skipped: counts.skipped },
      });
      return { job, ended, items: [], completed: true };
    }
    const window = await tx.countBulkItems(jobId, {
      startedSince: new Date(now.getTime() - RATE_WINDOW_MS + 1),
    });
    const n = itemsToStart(job, {
      pending: counts.pending,
      inFlight: counts.started,
      startedInWindow: Object.values(window).reduce((a, b) => a + b, 0),
    });
    const items = n === 0 ? [] : await tx.listBulkItems(jobId, { states: ['pending'], limit: n });
    const started: BulkItemRecord[] = items.map((i) => ({
      ...i,
      state: 'started',
      startedAt: now,
      updatedAt: now,
    }));
    for (const item of started) await tx.saveBulkItem(item);
    return { job, ended, items: started, completed: false };
  });
  const { job } = planned;
  if (job && planned.items.length > 0) {
    const results = await Promise.allSettled(planned.items.map((item) => startItem(ctx, job, item)));
    const fault = results.find((r) => r.status === 'rejected');
    if (fault) throw fault.reason;
  }
  return { started: planned.items.length, ended: planned.ended, jobsCompleted: planned.completed ? 1 : 0 };
}

/** Runs one step of every unfinished job (the server's bulk loop; never two steps at once). */
export async function stepBulkJobs(ctx: SmContext, now: Date = ctx.clock()): Promise<BulkStepReport> {
  // A paused or cancelled job needs a step only to settle what is in flight: one with nothing
  // started is not read at all (cancelled jobs stay in the store for good).
  const jobs = await ctx.store.transaction(async (tx) => [
    ...(await tx.listBulkJobs({ states: ['running'] })),
    ...(await tx.listBulkJobs({ states: ['paused', 'cancelled'], withStartedItems: true })),
  ]);
  let started = 0;
  let ended = 0;
  let jobsCompleted = 0;
  for (const job of jobs) {
    const r = await stepJob(ctx, job.id, now);
    started += r.started;
    ended += r.ended;
    jobsCompleted += r.jobsCompleted;
  }
  return { started, ended, jobsCompleted };
}
