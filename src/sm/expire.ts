/**
 * Maintenance (PROTOCOL.md §6.6). Current SM: an approval that never came, or a permission never
 * fetched by the device, expires; a delivered permission past notAfter is withdrawn with a signed
 * CancelPermission (counter + 1 in the same transaction), and only the chip's answer ends it.
 * New SM: an order past its time expires, unless keys are established: then it waits for the
 * chip's word, never assuming failure on its own.
 */
import { encodeCancelPermission, encodeCancelPermissionData } from '../protocol/asn1/results.ts';
import type { SmContext } from './config.ts';
import { pastExpiryDeadline } from './domain/expiry-deadline.ts';
import { advance, CURRENT_SM } from './domain/transfer-states.ts';
import { audit, hex, notifyOperator, queueDevice, queuePeer, retireDeviceMessages } from './effects.ts';
import { endIncoming } from './port-in.ts';
import type { OutgoingTransfer, StoreTx, TransferRecord } from './store/types.ts';

export interface ExpiryReport {
  /** Transfers that ended as expired. */
  readonly expired: string[];
  /** Transfers for which a CancelPermission was issued. */
  readonly cancelsIssued: string[];
}

async function expireOutgoing(
  tx: StoreTx,
  ctx: SmContext,
  t: OutgoingTransfer,
  reason: string,
): Promise<void> {
  const now = ctx.clock();
  const { approvalDeadline: _d, ...rest } = t;
  const state = advance(CURRENT_SM, t.state, 'expire');
  await tx.saveTransfer({ ...rest, state, endReason: reason, updatedAt: now });
  await retireDeviceMessages(tx, { eid: t.eid, transferId: t.id });
  if (t.permission) await tx.updateChip(t.eid, { status: 'managed', updatedAt: now });
  const base = { actor: 'system', operatorId: t.operatorId, eid: t.eid, transferId: t.id };
  await audit(tx, ctx, { ...base, action: 'transferExpired', details: { reason } });
  await notifyOperator(tx, ctx, t.operatorId, 'transferExpired', { eid: t.eid, transferId: t.id, state });
  if (t.origin === 'peer' && t.peerAskId !== undefined) {
    await queuePeer(
      tx,
      ctx,
      t.peerSmId,
      { type: 'AskOutcome', askId: t.peerAskId, eid: t.eid, outcome: 'expired' },
      { eid: t.eid, transferId: t.id },
    );
  }
}

async function issueCancel(tx: StoreTx, ctx: SmContext, t: OutgoingTransfer): Promise<void> {
  const chip = (await tx.getChip(t.eid))!;
  const counterValue = chip.counter + 1;
  await tx.useCounter(t.eid, counterValue);
  const dataRaw = encodeCancelPermissionData({
    permissionId: t.permissionId!,
    eid: t.eid,
    currentSmId: ctx.smId,
    counterValue,
  });
  const message = encodeCancelPermission(dataRaw, ctx.signer.sign(dataRaw));
  const now = ctx.clock();
  await tx.saveTransfer({ ...t, cancel: { counterValue, message, issuedAt: now }, updatedAt: now });
  await retireDeviceMessages(tx, { eid: t.eid, transferId: t.id }, ['TransferPermissionMessage']);
  await queueDevice(tx, ctx, 'CancelPermission', message, { eid: t.eid, transferId: t.id });
  await audit(tx, ctx, {
    actor: 'system',
    action: 'cancelIssued',
    operatorId: t.operatorId,
    eid: t.eid,
    transferId: t.id,
    details: { permissionId: hex(t.permissionId!), counterValue },
  });
}

/**
 * What expiry does to one transfer now, inside its own transaction. It returns what it did rather
 * than recording it, because a PostgreSQL transaction may run again after a serialization conflict.
 */
async function expireOne(
  tx: StoreTx,
  ctx: SmContext,
  id: string,
  now: Date,
): Promise<'expired' | 'cancelIssued' | undefined> {
  const t: TransferRecord | undefined = await tx.getTransfer(id);
  if (!t || !pastExpiryDeadline(t, now)) return undefined;
  if (t.direction === 'incoming') {
    await endIncoming(tx, ctx, t, 'expire', 'orderExpired', 'system');
    return 'expired';
  }
  if (t.state === 'delivered') {
    await issueCancel(tx, ctx, t);
    return 'cancelIssued';
  }
  await expireOutgoing(tx, ctx, t, t.state === 'awaitingApproval' ? 'approvalTimeout' : 'notDelivered');
  return 'expired';
}

/** Transfers past a deadline read per transaction. */
export const EXPIRY_PAGE = 500;

export async function expire(ctx: SmContext, now: Date = ctx.clock()): Promise<ExpiryReport> {
  const report: ExpiryReport = { expired: [], cancelsIssued: [] };
  // Only the transfers past their deadline (an indexed column: a fleet has many transfers open
  // and few past a deadline; reading every open one every few seconds grew with the fleet), page
  // by page, so that memory does not grow with them either.
  const candidates: string[] = [];
  let afterId: string | undefined;
  for (;;) {
    const page = await ctx.store.transaction((tx) =>
      tx.listTransfers({
        deadlineBefore: now,
        limit: EXPIRY_PAGE,
        ...(afterId !== undefined && { afterId }),
      }),
    );
    // The store selected them by the same rule; expireOne asks again inside its own transaction.
    for (const t of page) candidates.push(t.id);
    if (page.length < EXPIRY_PAGE) break;
    afterId = page[page.length - 1]!.id;
  }
  for (const id of candidates) {
    const done = await ctx.store.transaction((tx) => expireOne(tx, ctx, id, now));
    if (done === 'expired') report.expired.push(id);
    if (done === 'cancelIssued') report.cancelsIssued.push(id);
  }
  return report;
}
