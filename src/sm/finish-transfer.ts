/**
 * The two ways a transfer ends on chip evidence (PROTOCOL.md §6.5, §6.6), one per side:
 * the current SM releases the chip (it moved) or keeps it (it stayed); the new SM takes the chip
 * over with counter 0 and the new keyset.
 */
import type { SmContext } from './config.ts';
import { advance, CURRENT_SM, type CurrentSmEvent, NEW_SM } from './domain/transfer-states.ts';
import { audit, notifyOperator, retireDeviceMessages } from './effects.ts';
import type { IncomingTransfer, OutgoingTransfer, StoreTx } from './store/types.ts';

/** Current SM: `chipMoved` → completed and released, keys wiped; `chipStayed` → cancelled, managed again. */
export async function finishOutgoing(
  tx: StoreTx,
  ctx: SmContext,
  t: OutgoingTransfer,
  event: 'chipMoved' | 'chipStayed',
  evidence: Uint8Array,
  actor: string,
): Promise<OutgoingTransfer> {
  const now = ctx.clock();
  // A chip can only answer a permission the device fetched: an undelivered one counts as delivered.
  const events: CurrentSmEvent[] = t.state === 'permitted' ? ['deliver', event] : [event];
  const state = advance(CURRENT_SM, t.state, ...events);
  const ended: OutgoingTransfer = {
    ...t,
    state,
    evidence,
    ...(event === 'chipStayed' && { endReason: 'cancelled' }),
    updatedAt: now,
  };
  await tx.saveTransfer(ended);
  await retireDeviceMessages(tx, { eid: t.eid, transferId: t.id });
  const base = { actor, operatorId: t.operatorId, eid: t.eid, transferId: t.id };
  if (event === 'chipMoved') {
    await tx.updateChip(t.eid, {
      status: 'released',
      keyset: undefined,
      profileSwitch: undefined,
      updatedAt: now,
    });
    await audit(tx, ctx, { ...base, action: 'transferCompleted', details: { newSmId: t.peerSmId } });
    await audit(tx, ctx, { ...base, action: 'chipReleased', details: { keysWiped: true } });
    await notifyOperator(tx, ctx, t.operatorId, 'transferCompleted', { eid: t.eid, transferId: t.id, state });
  } else {
    await tx.updateChip(t.eid, { status: 'managed', updatedAt: now });
    await audit(tx, ctx, { ...base, action: 'transferCancelled', details: {} });
    await notifyOperator(tx, ctx, t.operatorId, 'transferCancelled', { eid: t.eid, transferId: t.id, state });
  }
  return ended;
}

/** New SM: the chip is ours from its commit on: counter 0, the new keyset, the pending profile switch. */
export async function finishIncoming(
  tx: StoreTx,
  ctx: SmContext,
  t: IncomingTransfer,
  evidence: Uint8Array,
  actor: string,
): Promise<IncomingTransfer> {
  const now = ctx.clock();
  const request = t.request!;
  const { receiptKey: _r, keyset, ...rest } = t;
  const completed: IncomingTransfer = {
    ...rest,
    state: advance(NEW_SM, t.state, 'chipMoved'),
    evidence,
    updatedAt: now,
  };
  await tx.saveTransfer(completed);
  const switching = request.profileSwitch?.rollbackOnFailure ? request.profileSwitch : undefined;
  await tx.putChip({
    eid: t.eid,
    operatorId: t.operatorId,
    chipCertificate: request.chipCertificate,
    eumCertificate: request.eumCertificate,
    curve: request.curve,
    counter: 0,
    status: 'managed',
    lock: { kind: 'unlocked' },
    ...(keyset && { keyset }),
    ...(switching && {
      profileSwitch: {
        profileSwitch: switching,
        state: 'unconfirmed',
        transferId: t.id,
        permissionId: t.permissionId!,
      },
    }),
    createdAt: now,
    updatedAt: now,
  });
  const base = { actor, operatorId: t.operatorId, eid: t.eid, transferId: t.id };
  await audit(tx, ctx, { ...base, action: 'transferCompleted', details: { previousSmId: t.peerSmId } });
  await audit(tx, ctx, {
    ...base,
    action: 'chipAdopted',
    details: { keysetVersion: request.keysetVersion, profileSwitchPending: switching !== undefined },
  });
  await notifyOperator(tx, ctx, t.operatorId, 'transferCompleted', {
    eid: t.eid,
    transferId: t.id,
    state: completed.state,
  });
  return completed;
}
