/**
 * When a transfer falls due for expiry (PROTOCOL.md §6.6): the one rule, kept where both the
 * expiry job and the stores read it. The stores keep it in a column of its own, so that the job
 * asks for the transfers past their deadline instead of reading every open one.
 */
import type { TransferRecord } from '../store/types.ts';

/**
 * The time after which `t` is to be expired (or, for a delivered permission, withdrawn), or
 * undefined when nothing is waiting on a deadline: an incoming transfer not yet keyed (its order's
 * expiresAt); an outgoing one awaiting approval (approvalDeadline), permitted, or delivered and
 * not yet withdrawn (the permission's notAfter).
 */
export function expiryDeadline(t: TransferRecord): Date | undefined {
  if (t.direction === 'incoming') {
    const waiting = t.state === 'ordered' || t.state === 'asked' || t.state === 'permitted';
    return waiting ? t.expiresAt : undefined;
  }
  if (t.state === 'awaitingApproval') return t.approvalDeadline;
  if (t.state === 'permitted') return t.permission?.notAfter;
  return t.state === 'delivered' && !t.cancel ? t.permission?.notAfter : undefined;
}

/** Whether `t` is past its deadline at `now` (strictly after it). */
export function pastExpiryDeadline(t: TransferRecord, now: Date): boolean {
  const deadline = expiryDeadline(t);
  return deadline !== undefined && now.getTime() > deadline.getTime();
}
