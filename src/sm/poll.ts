/**
 * Device API: poll(eid) returns the signed messages waiting for the chip, oldest first. They stay
 * on offer until they no longer apply (an answer may be lost on the way). At the current SM the
 * first fetch of a permission marks its transfer delivered; at the new SM the first contact after
 * a profile-switching commit issues the ConfirmProfileSwitch (§7).
 */
import type { SmContext } from './config.ts';
import { advance, CURRENT_SM } from './domain/transfer-states.ts';
import { audit, hex } from './effects.ts';
import { checkEid } from './input.ts';
import { issueProfileConfirmation } from './profile-confirm.ts';
import type { DeviceOutboxItem } from './store/types.ts';

export async function poll(ctx: SmContext, eid: string): Promise<Uint8Array[]> {
  checkEid(eid);
  return ctx.store.transaction(async (tx) => {
    const chip = await tx.getChip(eid);
    if (chip) await issueProfileConfirmation(tx, ctx, chip);
    const now = ctx.clock();
    const items = (await tx.listOutbox({ channel: 'device', eid, states: ['pending'] }))
      .filter((i): i is DeviceOutboxItem => i.channel === 'device')
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    for (const item of items) {
      await tx.saveOutbox({ ...item, deliveries: item.deliveries + 1, lastDeliveredAt: now });
      if (item.kind !== 'TransferPermissionMessage' || item.transferId === undefined) continue;
      const t = await tx.getTransfer(item.transferId);
      if (t?.direction !== 'outgoing' || t.state !== 'permitted') continue;
      await tx.saveTransfer({ ...t, state: advance(CURRENT_SM, t.state, 'deliver'), updatedAt: now });
      await audit(tx, ctx, {
        actor: 'device',
        action: 'permissionDelivered',
        operatorId: t.operatorId,
        eid,
        transferId: t.id,
        details: { permissionId: t.permissionId ? hex(t.permissionId) : null },
      });
    }
    return items.map((i) => i.bytes);
  });
}

/** Most EIDs one batch poll takes (the Device API's POST /device/v1/poll). */
export const MAX_POLL_BATCH = 1000;

/**
 * poll() for many chips: every EID is checked before any is polled (a bad one changes nothing).
 * One read-only pass (one transaction, StoreTx.eidsWithDeviceWork: a few queries per 500 EIDs)
 * finds the chips poll() would answer or change: pending device messages, or a profile switch to
 * confirm. Only those are then polled, each in its own transaction, all queued at once (so they
 * share commits); what arrives in between is offered at the next poll. Only chips with messages
 * are in the map. If one chip's poll fails the call fails; the others' messages stay pending and
 * are offered again.
 */
export async function pollMany(ctx: SmContext, eids: readonly string[]): Promise<Map<string, Uint8Array[]>> {
  for (const eid of eids) checkEid(eid);
  const unique = [...new Set(eids)];
  const work = await ctx.store.transaction((tx) => tx.eidsWithDeviceWork(unique));
  const busy = unique.filter((eid) => work.has(eid));
  // Side by side: each chip's poll is its own store transaction, and transactions queued
  // together share one commit (sequential awaits paid a commit each).
  const polled = await Promise.all(busy.map(async (eid) => [eid, await poll(ctx, eid)] as const));
  const out = new Map<string, Uint8Array[]>();
  for (const [eid, messages] of polled) if (messages.length > 0) out.set(eid, messages);
  return out;
}
