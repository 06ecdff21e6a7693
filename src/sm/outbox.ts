/**
 * Delivers the outbox's peer messages and operator notifications (ARCHITECTURE.md: the shell
 * acts). An item is read in one transaction, sent with no transaction open (the peer may call
 * back), and its result written in another, together with what the reply changes here. A
 * failure is retried with exponential backoff until acknowledged; a peer's typed refusal of a
 * TransferAsk is final (the port-in fails with the peer's code). Receivers are idempotent, so a
 * message delivered twice (crash between send and write) has one effect.
 */
import { HandoverError } from '../protocol/errors.ts';
import type { SmContext } from './config.ts';
import { NotificationNotConfigured, SmError } from './errors.ts';
import type { OperatorNotifier, PeerMessage, PeerReply, PeerTransport } from './peer-api.ts';
import { askAccepted, askRefused } from './port-in.ts';
import type { Delivery, OperatorOutboxItem, OutboxItem, PeerOutboxItem, StoreTx } from './store/types.ts';

export interface DrainReport {
  readonly delivered: number;
  readonly refused: number;
  readonly retried: number;
}

type Sendable = PeerOutboxItem | OperatorOutboxItem;

function errorOf(e: unknown): { code: string; message: string } {
  if (e instanceof HandoverError) return { code: e.code, message: e.message };
  return { code: 'DeliveryFailed', message: e instanceof Error ? e.message : String(e) };
}

function retryLater(ctx: SmContext, item: Delivery, e: unknown): Delivery {
  const delay = Math.min(ctx.backoff.maxMs, ctx.backoff.baseMs * 2 ** Math.min(item.attempts, 30));
  return {
    state: 'pending',
    attempts: item.attempts + 1,
    nextAttemptAt: new Date(ctx.clock().getTime() + delay),
    lastError: errorOf(e),
  };
}

/** Once delivered, a secret travelling with a message is not kept. */
function withoutSecrets(m: PeerMessage): PeerMessage {
  if (m.type !== 'TransferAsk' || m.unlockCode === undefined) return m;
  const { unlockCode: _u, ...rest } = m;
  return rest;
}

/** Writes the item's new delivery state, if nobody else wrote it meanwhile. */
async function settle(
  tx: StoreTx,
  item: Sendable,
  delivery: Delivery,
  message?: PeerMessage,
): Promise<boolean> {
  const current = await tx.getOutbox(item.id);
  if (
    !current ||
    current.channel === 'device' ||
    current.state !== 'pending' ||
    current.attempts !== item.attempts
  ) {
    return false;
  }
  const { lastError: _e, deliveredAt: _d, ...rest } = current;
  const next = { ...rest, ...delivery, ...(message && current.channel === 'peer' && { message }) };
  await tx.saveOutbox(next as Sendable);
  return true;
}

async function sendPeer(
  ctx: SmContext,
  transport: PeerTransport,
  item: PeerOutboxItem,
): Promise<keyof DrainReport> {
  const entry = ctx.directory.get(item.targetSmId);
  let reply: PeerReply;
  try {
    if (!entry) throw new HandoverError('UnknownPeer', `${item.targetSmId} is not in the directory`);
    reply = await transport.send(ctx.smId, { smId: item.targetSmId, address: entry.address }, item.message);
  } catch (e) {
    const finalRefusal =
      e instanceof HandoverError && item.message.type === 'TransferAsk' && entry !== undefined;
    return ctx.store.transaction(async (tx): Promise<keyof DrainReport> => {
      if (!finalRefusal) {
        await settle(tx, item, retryLater(ctx, item, e));
        return 'retried';
      }
      const now = ctx.clock();
      const refused: Delivery = {
        state: 'refused',
        attempts: item.attempts + 1,
        nextAttemptAt: now,
        lastError: errorOf(e),
      };
      if ((await settle(tx, item, refused, withoutSecrets(item.message))) && item.transferId !== undefined) {
        await askRefused(tx, ctx, item.transferId, errorOf(e).code);
      }
      return 'refused';
    });
  }
  return ctx.store.transaction(async (tx): Promise<keyof DrainReport> => {
    const now = ctx.clock();
    const done: Delivery = {
      state: 'delivered',
      attempts: item.attempts + 1,
      nextAttemptAt: now,
      deliveredAt: now,
    };
    const settled = await settle(tx, item, done, withoutSecrets(item.message));
    if (settled && reply.type === 'TransferAskAccepted' && item.transferId !== undefined) {
      await askAccepted(tx, ctx, item.transferId, reply);
    }
    return 'delivered';
  });
}

async function sendOperator(
  ctx: SmContext,
  notifier: OperatorNotifier,
  item: OperatorOutboxItem,
): Promise<keyof DrainReport> {
  try {
    await notifier.notify(item.operatorId, item.notification);
  } catch (e) {
    if (e instanceof NotificationNotConfigured) {
      const now = ctx.clock();
      const skipped: Delivery = {
        state: 'refused',
        attempts: item.attempts + 1,
        nextAttemptAt: now,
        lastError: errorOf(e),
      };
      await ctx.store.transaction((tx) => settle(tx, item, skipped));
      return 'refused';
    }
    await ctx.store.transaction((tx) => settle(tx, item, retryLater(ctx, item, e)));
    return 'retried';
  }
  const now = ctx.clock();
  await ctx.store.transaction((tx) =>
    settle(tx, item, {
      state: 'delivered',
      attempts: item.attempts + 1,
      nextAttemptAt: now,
      deliveredAt: now,
    }),
  );
  return 'delivered';
}

/**
 * Items one drain takes at most (the oldest due first); the rest wait for the next drain, so a
 * backlog of thousands is never read into memory at once.
 */
export const DRAIN_BATCH = 1000;

/**
 * At most this many peer messages in flight at once, by default (one per chip). 16 left the
 * peers' CPU idle while asks and receipts queued: 2,000-chip fleet runs gave 58 and 65
 * transfers/s with 16, 70–77 with 64, 75 with 128 (BENCHMARKS.md).
 */
export const DEFAULT_PEER_CONCURRENCY = 64;

export interface DrainOptions {
  /** How many peer messages may be in flight at once (distinct chips); default DEFAULT_PEER_CONCURRENCY. */
  readonly peerConcurrency?: number;
}

/** Due peer messages by chip, each chip's in createdAt order; chips ordered by their oldest. */
function byChip(due: readonly OutboxItem[]): PeerOutboxItem[][] {
  const groups = new Map<string, PeerOutboxItem[]>();
  for (const item of due) {
    if (item.channel !== 'peer') continue;
    const group = groups.get(item.eid);
    if (group) group.push(item);
    else groups.set(item.eid, [item]);
  }
  return [...groups.values()];
}

/**
 * Sends the peer messages: one chip's one after the other (stopping at the first that is to be
 * retried: its later ones wait for the next drain), different chips' side by side, at most
 * `limit` in flight. If a send throws (a store failure), no further chip is started, the sends
 * in flight are waited for, and the first error is thrown.
 */
async function sendPeers(
  ctx: SmContext,
  transport: PeerTransport,
  groups: readonly PeerOutboxItem[][],
  limit: number,
  report: Record<keyof DrainReport, number>,
  attempted: Set<string>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failure && next < groups.length) {
      const group = groups[next++]!;
      try {
        for (const item of group) {
          attempted.add(item.id);
          const outcome = await sendPeer(ctx, transport, item);
          report[outcome]++;
          if (outcome === 'retried') break;
        }
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, groups.length) }, worker));
  if (failure) throw failure.error;
}

/**
 * Sends everything due now, oldest first: peer messages before operator notifications, so a slow
 * webhook never holds up the protocol. Peer messages go out concurrently across chips (at most
 * `options.peerConcurrency` at once) and in order within a chip: once a chip's message fails,
 * that chip's later messages wait for the next drain. Once an operator's notification fails,
 * that operator's other notifications wait for the next drain (one timeout per unreachable
 * webhook per drain, not one per notification). Operator notifications wait in the outbox when
 * no notifier is given.
 */
export async function drainOutbox(
  ctx: SmContext,
  transport: PeerTransport,
  notifier?: OperatorNotifier,
  options: DrainOptions = {},
): Promise<DrainReport> {
  const limit = options.peerConcurrency ?? DEFAULT_PEER_CONCURRENCY;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new SmError('InvalidInput', 'peerConcurrency is a whole number of at least 1', { limit });
  }
  const now = ctx.clock();
  const due = (await ctx.store.transaction((tx) => claimDue(tx, now))).sort(
    (a, b) => a.createdAt.getTime() - b.createdAt.getTime(),
  );
  const report = { delivered: 0, refused: 0, retried: 0 };
  const attempted = new Set<string>();
  try {
    await sendPeers(ctx, transport, byChip(due), limit, report, attempted);
    if (!notifier) return report;
    const failing = new Set<string>();
    for (const item of due) {
      if (item.channel !== 'operator' || failing.has(item.operatorId)) continue;
      attempted.add(item.id);
      const outcome = await sendOperator(ctx, notifier, item);
      if (outcome === 'retried') failing.add(item.operatorId);
      report[outcome]++;
    }
    return report;
  } finally {
    const left = due.filter((item) => !attempted.has(item.id));
    if (left.length > 0) await ctx.store.transaction((tx) => unclaim(tx, left));
  }
}

/**
 * How long a drain holds the items it took: other processes on the same store (replicas on one
 * PostgreSQL database, ARCHITECTURE.md) see them as not due until then, so each is sent once. A
 * process that dies while sending leaves them due again when the claim runs out.
 */
export const OUTBOX_CLAIM_MS = 60_000;

/** The items due at `now` (up to DRAIN_BATCH), claimed: their next attempt moved past the claim. */
async function claimDue(tx: StoreTx, now: Date): Promise<Sendable[]> {
  const due = await tx.listOutbox({ states: ['pending'], dueAt: now, limit: DRAIN_BATCH });
  const until = new Date(now.getTime() + OUTBOX_CLAIM_MS);
  const claimed: Sendable[] = [];
  for (const item of due) {
    if (item.channel === 'device') continue; // for the type: a dueAt listing holds no device item
    await tx.saveOutbox({ ...item, nextAttemptAt: until });
    claimed.push(item);
  }
  return claimed;
}

/** Makes claimed items that were not sent (a chip's or an operator's earlier one failed) due again. */
async function unclaim(tx: StoreTx, items: readonly Sendable[]): Promise<void> {
  for (const item of items) {
    const current = await tx.getOutbox(item.id);
    if (current?.channel === 'device' || current?.state !== 'pending' || current.attempts !== item.attempts) {
      continue;
    }
    await tx.saveOutbox({ ...current, nextAttemptAt: item.nextAttemptAt });
  }
}
