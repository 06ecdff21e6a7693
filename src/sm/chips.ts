/** Operator API on chips (PROTOCOL.md §9): register, read, set the lock policy (§8). */

import { validateChipChain } from './chip-identity.ts';
import type { SmContext } from './config.ts';
import { type LockRequest, makeLockPolicy } from './domain/locks.ts';
import { isOpenTransfer } from './domain/transfer-states.ts';
import { audit } from './effects.ts';
import { SmError } from './errors.ts';
import { checkBytes, checkEid, requireOperator } from './input.ts';
import type { ChipRecord, StoreTx } from './store/types.ts';
import { type ChipView, chipView } from './views.ts';

export interface ChipRegistration {
  readonly chipCertificate: Uint8Array;
  readonly eumCertificate: Uint8Array;
}

/** The chip, managed here (or being transferred away) and belonging to `operatorId`. */
export async function ownChip(tx: StoreTx, operatorId: string, eid: string): Promise<ChipRecord> {
  const chip = await tx.getChip(eid);
  if (!chip || chip.status === 'released') {
    throw new SmError('ChipNotManaged', `chip ${eid} is not managed by this SM`, { eid });
  }
  if (chip.operatorId !== operatorId) {
    throw new SmError('NotAuthorised', `chip ${eid} belongs to another operator`, { eid, operatorId });
  }
  return chip;
}

export async function registerChip(
  ctx: SmContext,
  operatorId: string,
  reg: ChipRegistration,
): Promise<ChipView> {
  requireOperator(ctx, operatorId);
  const chipCertificate = checkBytes(reg.chipCertificate, 'chipCertificate');
  const eumCertificate = checkBytes(reg.eumCertificate, 'eumCertificate');
  const now = ctx.clock();
  const identity = validateChipChain(ctx, chipCertificate, eumCertificate, now);
  return ctx.store.transaction(async (tx) => {
    // A port-in in progress will register the chip itself, from the chip's own proof.
    const incoming = (await tx.listTransfers({ eid: identity.eid, direction: 'incoming' })).find(
      isOpenTransfer,
    );
    if (incoming) {
      throw new SmError('OrderPending', `chip ${identity.eid} is being ported in (transfer ${incoming.id})`, {
        eid: identity.eid,
        transferId: incoming.id,
      });
    }
    const chip: ChipRecord = {
      eid: identity.eid,
      operatorId,
      chipCertificate: Uint8Array.from(chipCertificate),
      eumCertificate: Uint8Array.from(eumCertificate),
      curve: identity.curve,
      counter: 0,
      status: 'managed',
      lock: { kind: 'unlocked' },
      createdAt: now,
      updatedAt: now,
    };
    await tx.putChip(chip);
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: 'chipRegistered',
      operatorId,
      eid: chip.eid,
      details: { curve: chip.curve },
    });
    return chipView(chip);
  });
}

export async function setLock(
  ctx: SmContext,
  operatorId: string,
  eid: string,
  request: LockRequest,
): Promise<ChipView> {
  requireOperator(ctx, operatorId);
  checkEid(eid);
  const lock = makeLockPolicy(request, ctx.random(16), ctx.unlockScrypt);
  return ctx.store.transaction(async (tx) => {
    await ownChip(tx, operatorId, eid);
    const chip = await tx.updateChip(eid, { lock, updatedAt: ctx.clock() });
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: 'lockChanged',
      operatorId,
      eid,
      details: { kind: lock.kind, ...(lock.kind === 'lockedUntil' && { until: lock.until.toISOString() }) },
    });
    return chipView(chip);
  });
}

export async function getChip(ctx: SmContext, operatorId: string, eid: string): Promise<ChipView> {
  requireOperator(ctx, operatorId);
  checkEid(eid);
  return ctx.store.transaction(async (tx) => chipView(await ownChip(tx, operatorId, eid)));
}

export async function listChips(ctx: SmContext, operatorId: string): Promise<ChipView[]> {
  requireOperator(ctx, operatorId);
  return ctx.store.transaction(async (tx) =>
    (await tx.listChips({ operatorId })).filter((c) => c.status !== 'released').map(chipView),
  );
}
