/**
 * PROTOCOL.md §6.1, the current SM's side of a release: an operator's request or a new SM's
 * TransferAsk is authorised (chip managed here, caller authorised, new SM's certificate valid,
 * nothing pending, lock policy, approval) and the permission issued, or the request waits for
 * the current MNO's approval.
 */
import type { ProfileSwitch } from '../protocol/asn1/permission.ts';
import { ownChip } from './chips.ts';
import type { SmContext } from './config.ts';
import { codeHashOf } from './domain/activation-code.ts';
import { checkLock, MAX_UNLOCK_ATTEMPTS } from './domain/locks.ts';
import { advance, CURRENT_SM, isOpenTransfer } from './domain/transfer-states.ts';
import { audit, newId, notifyOperator, queuePeer } from './effects.ts';
import { SmError } from './errors.ts';
import { checkEid, checkHash, checkId, checkProfileSwitch, checkSmId, requireOperator } from './input.ts';
import { issuePermission } from './issue-permission.ts';
import type { PeerReply } from './peer-api.ts';
import { requirePeer } from './peers.ts';
import type { ChipRecord, OutgoingTransfer, StoreTx } from './store/types.ts';
import { type TransferView, transferView } from './views.ts';

export interface ReleaseRequest {
  readonly eid: string;
  readonly newSmId: string;
  readonly activationCode?: string;
  /** Instead of activationCode: its SHA-256, as a bulk job keeps it (never both). */
  readonly activationCodeHash?: Uint8Array;
  readonly unlockCode?: string;
  readonly profileSwitch?: ProfileSwitch;
}

export interface TransferAsk {
  readonly eid: string;
  readonly askId?: string;
  readonly activationCodeHash?: Uint8Array;
  readonly unlockCode?: string;
}

interface Authorisation {
  readonly origin: 'operator' | 'peer';
  readonly actor: string;
  /** The requesting operator (origin operator only). */
  readonly operatorId?: string;
  readonly eid: string;
  readonly newSmId: string;
  readonly peerAskId?: string;
  readonly activationCodeHash?: Uint8Array;
  readonly unlockCode?: string;
  readonly profileSwitch?: ProfileSwitch;
  /** The id the new transfer takes (a bulk job's item names its own); default a new random id. */
  readonly transferId?: string;
}

type Outcome = { readonly transfer: OutgoingTransfer } | { readonly refused: SmError };

async function managedChip(tx: StoreTx, eid: string): Promise<ChipRecord> {
  const chip = await tx.getChip(eid);
  if (!chip || chip.status === 'released') {
    throw new SmError('ChipNotManaged', `chip ${eid} is not managed by this SM`, { eid });
  }
  return chip;
}

async function authorise(ctx: SmContext, a: Authorisation): Promise<OutgoingTransfer> {
  const now = ctx.clock();
  const outcome = await ctx.store.transaction(async (tx): Promise<Outcome> => {
    if (a.peerAskId !== undefined) {
      // The same ask again (a retry): the same answer, no second effect.
      const asked = (await tx.listTransfers({ eid: a.eid, direction: 'outgoing' })).find(
        (t): t is OutgoingTransfer =>
          t.direction === 'outgoing' &&
          t.origin === 'peer' &&
          t.peerSmId === a.newSmId &&
          t.peerAskId === a.peerAskId,
      );
      if (asked) return { transfer: asked };
    }
    const chip =
      a.operatorId !== undefined ? await ownChip(tx, a.operatorId, a.eid) : await managedChip(tx, a.eid);
    const peer = requirePeer(ctx, a.newSmId, now);
    const pending = (await tx.listTransfers({ eid: a.eid, direction: 'outgoing' })).find(isOpenTransfer);
    if (pending) {
      throw new SmError('TransferPending', `chip ${a.eid} already has a transfer in progress`, {
        eid: a.eid,
        transferId: pending.id,
      });
    }
    const lock = checkLock(chip.lock, now, a.unlockCode);
    if (!lock.allowed) {
      if (!lock.updated) throw new SmError(lock.code, lock.message, { eid: a.eid });
      // A wrong unlock code is the one refusal that changes the store: it counts as an attempt (§8).
      await tx.updateChip(a.eid, { lock: lock.updated, updatedAt: now });
      await audit(tx, ctx, {
        actor: a.actor,
        action: 'unlockFailed',
        operatorId: chip.operatorId,
        eid: a.eid,
        details: {
          failedAttempts: lock.updated.kind === 'lockedUntilCode' ? lock.updated.failedAttempts : 0,
        },
      });
      return { refused: new SmError(lock.code, lock.message, { eid: a.eid }) };
    }
    const transfer: OutgoingTransfer = {
      id: a.transferId ?? newId(ctx, 'tr'),
      direction: 'outgoing',
      state: 'requested',
      eid: a.eid,
      operatorId: chip.operatorId,
      peerSmId: peer.smId,
      origin: a.origin,
      ...(a.peerAskId !== undefined && { peerAskId: a.peerAskId }),
      newSmAddress: peer.address,
      ...(a.activationCodeHash && { activationCodeHash: a.activationCodeHash }),
      ...(a.profileSwitch && { profileSwitch: a.profileSwitch }),
      unlockedWithCode: lock.unlockedWithCode,
      createdAt: now,
      updatedAt: now,
    };
    await tx.insertTransfer(transfer);
    await audit(tx, ctx, {
      actor: a.actor,
      action: 'transferRequested',
      operatorId: chip.operatorId,
      eid: a.eid,
      transferId: transfer.id,
      details: { newSmId: peer.smId, origin: a.origin, unlockedWithCode: lock.unlockedWithCode },
    });
    // An operator's own request is its approval; a peer's ask may need one (§6.1).
    const approvalRequired =
      a.origin === 'peer' && (ctx.operators.get(chip.operatorId)?.approvalRequired ?? true);
    if (!approvalRequired) return { transfer: await issuePermission(tx, ctx, transfer, chip, peer, a.actor) };
    const waiting: OutgoingTransfer = {
      ...transfer,
      state: advance(CURRENT_SM, transfer.state, 'awaitApproval'),
      approvalDeadline: new Date(now.getTime() + ctx.permissionValidityMs),
    };
    await tx.saveTransfer(waiting);
    await audit(tx, ctx, {
      actor: a.actor,
      action: 'approvalRequested',
      operatorId: chip.operatorId,
      eid: a.eid,
      transferId: transfer.id,
      details: { deadline: waiting.approvalDeadline!.toISOString() },
    });
    await notifyOperator(tx, ctx, chip.operatorId, 'approvalRequested', {
      eid: a.eid,
      transferId: transfer.id,
      state: waiting.state,
    });
    return { transfer: waiting };
  });
  if ('refused' in outcome) throw outcome.refused;
  return outcome.transfer;
}

/** The current MNO releases its chip to a named new SM. */
export async function requestRelease(
  ctx: SmContext,
  operatorId: string,
  req: ReleaseRequest,
  internal: { readonly transferId?: string } = {},
): Promise<TransferView> {
  requireOperator(ctx, operatorId);
  const activationCodeHash = codeHashOf(req);
  const transfer = await authorise(ctx, {
    origin: 'operator',
    actor: `operator:${operatorId}`,
    operatorId,
    eid: checkEid(req.eid),
    newSmId: checkSmId(req.newSmId, 'newSmId'),
    ...(activationCodeHash && { activationCodeHash }),
    ...(req.unlockCode !== undefined && { unlockCode: req.unlockCode }),
    ...(req.profileSwitch && { profileSwitch: checkProfileSwitch(req.profileSwitch) }),
    ...(internal.transferId !== undefined && { transferId: internal.transferId }),
  });
  return transferView(transfer);
}

/** Peer API: a new SM asks on its MNO's behalf. `callerSmId` comes from the authenticated channel. */
export async function handleTransferAsk(
  ctx: SmContext,
  callerSmId: string,
  ask: TransferAsk,
): Promise<PeerReply> {
  checkSmId(callerSmId, 'callerSmId');
  if (callerSmId === ctx.smId) throw new SmError('NotAuthorised', 'an SM does not ask itself for a transfer');
  const transfer = await authorise(ctx, {
    origin: 'peer',
    actor: `peer:${callerSmId}`,
    eid: checkEid(ask.eid),
    newSmId: callerSmId,
    ...(ask.askId !== undefined && { peerAskId: checkId(ask.askId, 'askId') }),
    ...(ask.activationCodeHash !== undefined && {
      activationCodeHash: checkHash(ask.activationCodeHash, 'activationCodeHash'),
    }),
    ...(ask.unlockCode !== undefined && { unlockCode: ask.unlockCode }),
  });
  if (transfer.state === 'rejected' || transfer.state === 'expired') {
    throw new SmError('TransferEnded', `the transfer for this ask ended: ${transfer.state}`, {
      transferId: transfer.id,
      state: transfer.state,
    });
  }
  return {
    type: 'TransferAskAccepted',
    transferId: transfer.id,
    state: transfer.state === 'awaitingApproval' ? 'awaitingApproval' : 'permitted',
  };
}

async function awaitingTransfer(
  tx: StoreTx,
  operatorId: string,
  transferId: string,
): Promise<OutgoingTransfer> {
  const t = await tx.getTransfer(transferId);
  if (t?.direction !== 'outgoing')
    throw new SmError('UnknownTransfer', `no transfer ${transferId}`, { transferId });
  if (t.operatorId !== operatorId) {
    throw new SmError('NotAuthorised', `transfer ${transferId} belongs to another operator`, { transferId });
  }
  if (t.state !== 'awaitingApproval') {
    throw new SmError('InvalidState', `transfer ${transferId} is ${t.state}, not awaiting approval`, {
      transferId,
      state: t.state,
    });
  }
  return t;
}

/** The current MNO approves a new SM's ask: the permission is issued now, if the chip may still go. */
export async function approve(ctx: SmContext, operatorId: string, transferId: string): Promise<TransferView> {
  requireOperator(ctx, operatorId);
  checkId(transferId, 'transferId');
  const now = ctx.clock();
  return ctx.store.transaction(async (tx) => {
    const t = await awaitingTransfer(tx, operatorId, transferId);
    if (t.approvalDeadline && now.getTime() > t.approvalDeadline.getTime()) {
      throw new SmError('InvalidState', `the approval deadline of transfer ${transferId} has passed`, {
        transferId,
      });
    }
    const chip = await ownChip(tx, operatorId, t.eid);
    const peer = requirePeer(ctx, t.peerSmId, now);
    // The lock is checked again (a policy may have been set since the ask); a code given with the
    // ask still counts while that code's policy stands.
    const lock = chip.lock;
    const codeStands =
      t.unlockedWithCode && lock.kind === 'lockedUntilCode' && lock.failedAttempts < MAX_UNLOCK_ATTEMPTS;
    if (!codeStands) {
      const decision = checkLock(lock, now);
      if (!decision.allowed) throw new SmError(decision.code, decision.message, { eid: t.eid });
    }
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: 'approved',
      operatorId,
      eid: t.eid,
      transferId,
    });
    return transferView(await issuePermission(tx, ctx, t, chip, peer, `operator:${operatorId}`));
  });
}

export async function reject(ctx: SmContext, operatorId: string, transferId: string): Promise<TransferView> {
  requireOperator(ctx, operatorId);
  checkId(transferId, 'transferId');
  const now = ctx.clock();
  return ctx.store.transaction(async (tx) => {
    const t = await awaitingTransfer(tx, operatorId, transferId);
    const { approvalDeadline: _d, ...rest } = t;
    const rejected: OutgoingTransfer = {
      ...rest,
      state: advance(CURRENT_SM, t.state, 'reject'),
      endReason: 'rejected',
      updatedAt: now,
    };
    await tx.saveTransfer(rejected);
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: 'rejected',
      operatorId,
      eid: t.eid,
      transferId,
    });
    await notifyOperator(tx, ctx, operatorId, 'transferRejected', {
      eid: t.eid,
      transferId,
      state: rejected.state,
    });
    if (t.origin === 'peer' && t.peerAskId !== undefined) {
      await queuePeer(
        tx,
        ctx,
        t.peerSmId,
        { type: 'AskOutcome', askId: t.peerAskId, eid: t.eid, outcome: 'rejected' },
        { eid: t.eid, transferId },
      );
    }
    return transferView(rejected);
  });
}
