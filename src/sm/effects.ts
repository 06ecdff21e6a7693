/**
 * Writes every operation makes besides its state change, always inside the same transaction:
 * audit entries, operator notifications, peer messages and device messages (the outbox).
 */
import type { SmContext } from './config.ts';
import { NotificationNotConfigured } from './errors.ts';
import type { OperatorEvent, PeerMessage } from './peer-api.ts';
import type { AuditValue, DeviceMessageKind, StoreTx } from './store/types.ts';

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export function newId(ctx: SmContext, prefix: string): string {
  return `${prefix}_${hex(ctx.random(12))}`;
}

export interface AuditFacts {
  readonly actor: string;
  readonly action: string;
  readonly operatorId?: string;
  readonly eid?: string;
  readonly transferId?: string;
  readonly details?: Readonly<Record<string, AuditValue>>;
}

export async function audit(tx: StoreTx, ctx: SmContext, facts: AuditFacts): Promise<void> {
  await tx.appendAudit({
    at: ctx.clock(),
    actor: facts.actor,
    action: facts.action,
    ...(facts.operatorId !== undefined && { operatorId: facts.operatorId }),
    ...(facts.eid !== undefined && { eid: facts.eid }),
    ...(facts.transferId !== undefined && { transferId: facts.transferId }),
    details: facts.details ?? {},
  });
}

export async function notifyOperator(
  tx: StoreTx,
  ctx: SmContext,
  operatorId: string,
  event: OperatorEvent,
  about: { eid: string; transferId?: string; state?: string },
): Promise<void> {
  const now = ctx.clock();
  // An operator without a webhook: recorded as the outbox would settle it, without a delivery
  // attempt (saves a drain and a transaction per notification).
  const nowhere = ctx.operators.get(operatorId)?.webhook === false;
  await tx.enqueue({
    id: newId(ctx, 'ob'),
    channel: 'operator',
    operatorId,
    eid: about.eid,
    ...(about.transferId !== undefined && { transferId: about.transferId }),
    notification: {
      event,
      eid: about.eid,
      ...(about.transferId !== undefined && { transferId: about.transferId }),
      ...(about.state !== undefined && { state: about.state }),
      at: now,
    },
    ...(nowhere
      ? { state: 'refused', attempts: 1, lastError: NotificationNotConfigured.record(operatorId) }
      : { state: 'pending', attempts: 0 }),
    nextAttemptAt: now,
    createdAt: now,
  });
}

export async function queuePeer(
  tx: StoreTx,
  ctx: SmContext,
  targetSmId: string,
  message: PeerMessage,
  about: { eid: string; transferId?: string },
): Promise<void> {
  const now = ctx.clock();
  await tx.enqueue({
    id: newId(ctx, 'ob'),
    channel: 'peer',
    targetSmId,
    message,
    eid: about.eid,
    ...(about.transferId !== undefined && { transferId: about.transferId }),
    state: 'pending',
    attempts: 0,
    nextAttemptAt: now,
    createdAt: now,
  });
}

export async function queueDevice(
  tx: StoreTx,
  ctx: SmContext,
  kind: DeviceMessageKind,
  bytes: Uint8Array,
  about: { eid: string; transferId?: string },
): Promise<void> {
  await tx.enqueue({
    id: newId(ctx, 'ob'),
    channel: 'device',
    kind,
    bytes,
    eid: about.eid,
    ...(about.transferId !== undefined && { transferId: about.transferId }),
    state: 'pending',
    deliveries: 0,
    createdAt: ctx.clock(),
  });
}

/** Stops offering device messages that no longer apply (of `kinds`, or all) for one transfer or chip. */
export async function retireDeviceMessages(
  tx: StoreTx,
  about: { eid: string; transferId?: string },
  kinds?: readonly DeviceMessageKind[],
): Promise<void> {
  const items = await tx.listOutbox({
    channel: 'device',
    eid: about.eid,
    states: ['pending'],
    ...(about.transferId !== undefined && { transferId: about.transferId }),
  });
  for (const item of items) {
    if (item.channel !== 'device' || (kinds && !kinds.includes(item.kind))) continue;
    await tx.saveOutbox({ ...item, state: 'retired' });
  }
}
