/**
 * The new SM's side before the transfer request (PROTOCOL.md §6, first rows of the diagram): the
 * new MNO's port-in order, the TransferAsk to the current SM, and what the current SM answers.
 * Orders are the durable record of what the operator asked; the incoming transfer carries the
 * procedure's state.
 */
import type { SmContext } from './config.ts';
import { codeHashOf } from './domain/activation-code.ts';
import { advance, NEW_SM, type NewSmEvent, transition } from './domain/transfer-states.ts';
import { audit, newId, notifyOperator, queuePeer } from './effects.ts';
import { SmError } from './errors.ts';
import { checkEid, checkId, checkSmId, requireOperator } from './input.ts';
import type { PeerReply } from './peer-api.ts';
import { requirePeer } from './peers.ts';
import type { IncomingTransfer, OrderRecord, StoreTx } from './store/types.ts';
import { type TransferView, transferView } from './views.ts';

export interface PortInOrder {
  readonly eid: string;
  readonly currentSmId: string;
  /** The code the subscriber got from the current MNO; only its SHA-256 is kept. */
  readonly activationCode?: string;
  /** Instead of activationCode: its SHA-256, as a bulk job keeps it (never both). */
  readonly activationCodeHash?: Uint8Array;
  /** Passed on to the current SM with the ask (§8); kept only until the ask is delivered. */
  readonly unlockCode?: string;
  /** Ask the current SM for the permission (peer TransferAsk); otherwise wait for the chip's request. */
  readonly ask: boolean;
}

export interface PortInResult {
  readonly orderId: string;
  readonly transfer: TransferView;
}

export async function orderPortIn(
  ctx: SmContext,
  operatorId: string,
  order: PortInOrder,
  internal: { readonly transferId?: string } = {},
): Promise<PortInResult> {
  requireOperator(ctx, operatorId);
  const eid = checkEid(order.eid);
  const currentSmId = checkSmId(order.currentSmId, 'currentSmId');
  if (typeof order.ask !== 'boolean') throw new SmError('InvalidInput', 'ask is a boolean', { field: 'ask' });
  if (order.unlockCode !== undefined && !order.ask) {
    throw new SmError('InvalidInput', 'an unlock code only travels with an ask', { field: 'unlockCode' });
  }
  const activationCodeHash = codeHashOf(order);
  const now = ctx.clock();
  return ctx.store.transaction(async (tx) => {
    requirePeer(ctx, currentSmId, now);
    const chip = await tx.getChip(eid);
    if (chip && chip.status !== 'released') {
      throw new SmError('ChipExists', `chip ${eid} is already managed by this SM`, { eid });
    }
    const transferId = internal.transferId ?? newId(ctx, 'tr');
    const expiresAt = new Date(now.getTime() + ctx.orderValidityMs);
    const record: OrderRecord = {
      id: newId(ctx, 'or'),
      operatorId,
      eid,
      currentSmId,
      ...(activationCodeHash && { activationCodeHash }),
      ask: order.ask,
      state: 'open',
      transferId,
      createdAt: now,
      expiresAt,
    };
    const transfer: IncomingTransfer = {
      id: transferId,
      direction: 'incoming',
      state: NEW_SM.initial,
      eid,
      operatorId,
      peerSmId: currentSmId,
      orderId: record.id,
      expiresAt,
      createdAt: now,
      updatedAt: now,
    };
    await tx.insertTransfer(transfer);
    await tx.insertOrder(record);
    if (order.ask) {
      await queuePeer(
        tx,
        ctx,
        currentSmId,
        {
          type: 'TransferAsk',
          askId: transferId,
          eid,
          ...(activationCodeHash && { activationCodeHash }),
          ...(order.unlockCode !== undefined && { unlockCode: order.unlockCode }),
        },
        { eid, transferId },
      );
    }
    await audit(tx, ctx, {
      actor: `operator:${operatorId}`,
      action: 'portInOrdered',
      operatorId,
      eid,
      transferId,
      details: {
        orderId: record.id,
        currentSmId,
        ask: order.ask,
        activationCode: activationCodeHash !== undefined,
        unlockCode: order.unlockCode !== undefined,
      },
    });
    return { orderId: record.id, transfer: transferView(transfer) };
  });
}

/** Moves an incoming transfer by `events` if they apply; returns undefined when they do not. */
function tryAdvance(t: IncomingTransfer, ...events: NewSmEvent[]): IncomingTransfer['state'] | undefined {
  let state = t.state;
  for (const e of events) {
    const next = transition(NEW_SM, state, e);
    if (!next.ok) return undefined;
    state = next.state;
  }
  return state;
}

/** Closes the order of an incoming transfer that ended before matching a request. */
export async function closeOrder(tx: StoreTx, orderId: string): Promise<void> {
  const order = await tx.getOrder(orderId);
  if (order && order.state === 'open') await tx.saveOrder({ ...order, state: 'closed' });
}

/** Ends an incoming transfer that has no keys yet (ask refused, rejected, expired, cancelled). */
export async function endIncoming(
  tx: StoreTx,
  ctx: SmContext,
  t: IncomingTransfer,
  event: 'refuse' | 'expire' | 'chipStayed',
  reason: string,
  actor: string,
): Promise<IncomingTransfer> {
  const now = ctx.clock();
  const { receiptKey: _r, keyset: _k, ...rest } = t;
  const ended: IncomingTransfer = {
    ...rest,
    state: advance(NEW_SM, t.state, event),
    endReason: reason,
    updatedAt: now,
  };
  await tx.saveTransfer(ended);
  await closeOrder(tx, t.orderId);
  await audit(tx, ctx, {
    actor,
    action: ended.state === 'expired' ? 'transferExpired' : 'transferFailed',
    operatorId: t.operatorId,
    eid: t.eid,
    transferId: t.id,
    details: { reason, keysWiped: t.receiptKey !== undefined || t.keyset !== undefined },
  });
  await notifyOperator(
    tx,
    ctx,
    t.operatorId,
    ended.state === 'expired' ? 'transferExpired' : 'transferFailed',
    {
      eid: t.eid,
      transferId: t.id,
      state: ended.state,
    },
  );
  return ended;
}

/** The current SM accepted our TransferAsk (called by the outbox, in the transaction that marks it delivered). */
export async function askAccepted(
  tx: StoreTx,
  ctx: SmContext,
  transferId: string,
  reply: Extract<PeerReply, { type: 'TransferAskAccepted' }>,
): Promise<void> {
  const t = await tx.getTransfer(transferId);
  if (t?.direction !== 'incoming') return;
  const events: NewSmEvent[] = t.state === 'ordered' ? ['askSent'] : [];
  if (reply.state === 'permitted') events.push('permissionIssued');
  // A transfer request may have overtaken the answer: then only the peer's transfer id is kept.
  const state = tryAdvance(t, ...events) ?? t.state;
  await tx.saveTransfer({ ...t, state, peerTransferId: reply.transferId, updatedAt: ctx.clock() });
  await audit(tx, ctx, {
    actor: `peer:${t.peerSmId}`,
    action: 'askAccepted',
    operatorId: t.operatorId,
    eid: t.eid,
    transferId,
    details: { peerTransferId: reply.transferId, peerState: reply.state },
  });
}

/** The current SM refused our TransferAsk with a typed reason: the transfer fails with it. */
export async function askRefused(
  tx: StoreTx,
  ctx: SmContext,
  transferId: string,
  code: string,
): Promise<void> {
  const t = await tx.getTransfer(transferId);
  if (t?.direction !== 'incoming' || !tryAdvance(t, 'refuse')) return;
  await endIncoming(tx, ctx, t, 'refuse', code, `peer:${t.peerSmId}`);
}

export interface AskOutcome {
  readonly askId: string;
  readonly eid: string;
  readonly outcome: 'rejected' | 'expired';
}

/** Peer API: the current SM ended our ask without a permission (rejected by its MNO, or expired). */
export async function handleAskOutcome(
  ctx: SmContext,
  callerSmId: string,
  o: AskOutcome,
): Promise<PeerReply> {
  checkSmId(callerSmId, 'callerSmId');
  const askId = checkId(o.askId, 'askId');
  const eid = checkEid(o.eid);
  if (o.outcome !== 'rejected' && o.outcome !== 'expired') {
    throw new SmError('InvalidInput', 'outcome is rejected or expired', { field: 'outcome' });
  }
  return ctx.store.transaction(async (tx) => {
    const t = await tx.getTransfer(askId);
    if (t?.direction !== 'incoming' || t.eid !== eid) {
      throw new SmError('UnknownTransfer', `no port-in ${askId} for EID ${eid}`, { askId });
    }
    if (t.peerSmId !== callerSmId) {
      throw new SmError('NotAuthorised', `port-in ${askId} was not asked of ${callerSmId}`, { askId });
    }
    const event = o.outcome === 'rejected' ? 'refuse' : 'expire';
    // Idempotent; and from keyEstablished on only the chip's word ends the transfer (§6.6).
    if (tryAdvance(t, event)) await endIncoming(tx, ctx, t, event, o.outcome, `peer:${callerSmId}`);
    return { type: 'Ack' };
  });
}
