/**
 * The bulk runner's decision, pure: given a job's limits and state and what its items are doing,
 * how many pending items to start now. Never more in flight than `concurrency`, never more
 * started within any one second than `ratePerSecond`, nothing while paused, cancelled or done.
 */
import type { BulkJobState } from '../store/types.ts';

/** The sliding window the rate counts over. */
export const RATE_WINDOW_MS = 1000;

export interface PlanJob {
  readonly state: BulkJobState;
  readonly concurrency: number;
  readonly ratePerSecond: number;
}

export interface PlanCounts {
  readonly pending: number;
  /** Started and not yet ended. */
  readonly inFlight: number;
  /** Items started in (now - RATE_WINDOW_MS, now]. */
  readonly startedInWindow: number;
}

/** How many of the first pending items to start now (0 or more, at most `pending`). */
export function itemsToStart(job: PlanJob, counts: PlanCounts): number {
  if (job.state !== 'running') return 0;
  const n = Math.min(
    counts.pending,
    job.concurrency - counts.inFlight,
    job.ratePerSecond - counts.startedInWindow,
  );
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** A running job is done when nothing is pending or in flight. */
export function isFinished(counts: Pick<PlanCounts, 'pending' | 'inFlight'>): boolean {
  return counts.pending === 0 && counts.inFlight === 0;
}
