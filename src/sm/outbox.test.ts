import assert from 'node:assert/strict';
import { test } from 'node:test';
import { registeredChip, releasedAndPolled } from '../../test/support/sm-flows.ts';
import { handoverResult, transferRequest } from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, MNO_B, NEW, worldEid } from '../../test/support/sm-world.ts';
import { keySigner } from '../protocol/crypto/signer.ts';
import { HandoverError } from '../protocol/errors.ts';
import { createContext, type OperatorConfig } from './config.ts';
import { notifyOperator } from './effects.ts';
import { DEFAULT_PEER_CONCURRENCY, drainOutbox, OUTBOX_CLAIM_MS } from './outbox.ts';
import type { OperatorNotification, PeerAddress, PeerMessage, PeerReply, PeerTransport } from './peer-api.ts';
import { MemoryStore } from './store/memory.ts';
import type { PeerOutboxItem } from './store/types.ts';

async function completedAtNewSm() {
  const world = createSmWorld();
  const chip = await registeredChip(world);
  const setup = await releasedAndPolled(world, chip);
  const pending = transferRequest(chip, setup.permissionMessage);
  const neu = world.get(NEW);
  const command = await neu.sm.postTransferRequest(pending.request);
  const result = handoverResult(chip, pending, command);
  await neu.sm.postHandoverResult(result);
  return { world, chip, result, ...setup };
}

const peerItems = (items: Iterable<unknown>) =>
  [...items].filter((i): i is PeerOutboxItem => (i as { channel: string }).channel === 'peer');

test('an unreachable peer: retried with exponential backoff until acknowledged', async () => {
  const { world, transferId } = await completedAtNewSm();
  const neu = world.get(NEW);
  world.transport.down.add(CURRENT);
  assert.deepEqual(await neu.sm.drainOutbox(world.transport), { delivered: 0, refused: 0, retried: 1 });
  let [item] = peerItems(neu.store.dump().outbox.values());
  assert.equal(item?.attempts, 1);
  assert.equal(item?.lastError?.code, 'DeliveryFailed');
  assert.equal(item?.nextAttemptAt.getTime(), world.clock.now.getTime() + 1000);
  assert.deepEqual(
    await neu.sm.drainOutbox(world.transport),
    { delivered: 0, refused: 0, retried: 0 },
    'not due yet',
  );
  world.clock.advance(1000);
  await neu.sm.drainOutbox(world.transport);
  [item] = peerItems(neu.store.dump().outbox.values());
  assert.equal(item?.attempts, 2);
  assert.equal(item?.nextAttemptAt.getTime(), world.clock.now.getTime() + 2000);
  world.transport.down.delete(CURRENT);
  world.clock.advance(2000);
  assert.deepEqual(await neu.sm.drainOutbox(world.transport), { delivered: 1, refused: 0, retried: 0 });
  [item] = peerItems(neu.store.dump().outbox.values());
  assert.equal(item?.state, 'delivered');
  assert.equal((await world.get(CURRENT).sm.getTransfer(MNO_A, transferId)).state, 'completed');
});

test('a message the peer already took (lost acknowledgement) is delivered again with no second effect', async () => {
  const { world, result, transferId } = await completedAtNewSm();
  const cur = world.get(CURRENT);
  await cur.sm.handleCompleted(NEW, result);
  const snap = cur.store.dump();
  assert.deepEqual(await world.get(NEW).sm.drainOutbox(world.transport), {
    delivered: 1,
    refused: 0,
    retried: 0,
  });
  assert.deepEqual(cur.store.dump(), snap);
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'completed');
});

test('a typed refusal of a Completed is retried (it is a chip-signed fact); of a TransferAsk it is final', async () => {
  const { world } = await completedAtNewSm();
  const neu = world.get(NEW);
  const refusing: PeerTransport = {
    send: async () => {
      throw new HandoverError('TransferEnded', 'no');
    },
  };
  assert.deepEqual(await neu.sm.drainOutbox(refusing), { delivered: 0, refused: 0, retried: 1 });
  const [item] = peerItems(neu.store.dump().outbox.values());
  assert.equal(item?.lastError?.code, 'TransferEnded');
  assert.equal(item?.state, 'pending');
});

test('operator notifications: delivered once through the notifier, retried when it fails', async () => {
  const { world } = await completedAtNewSm();
  const neu = world.get(NEW);
  const seen: [string, OperatorNotification][] = [];
  let fail = true;
  const notifier = {
    notify: async (operatorId: string, n: OperatorNotification) => {
      if (fail) throw new Error('webhook down');
      seen.push([operatorId, n]);
    },
  };
  const first = await neu.sm.drainOutbox(world.transport, notifier);
  assert.equal(first.retried, 1, 'the notification failed');
  fail = false;
  world.clock.advance(1000);
  await neu.sm.drainOutbox(world.transport, notifier);
  assert.deepEqual(
    seen.map(([op, n]) => [op, n.event]),
    [[MNO_B, 'transferCompleted']],
  );
  world.clock.advance(10_000);
  await neu.sm.drainOutbox(world.transport, notifier);
  assert.equal(seen.length, 1);
});

// ---- concurrency of peer sends (driven directly, with a transport whose replies a test releases) ----

/** A PeerTransport that records each send's start and end and holds its reply until released. */
class HeldTransport implements PeerTransport {
  readonly log: string[] = [];
  readonly held = new Map<string, { ack(): void; fail(e: unknown): void }>();
  maxInFlight = 0;

  send(_caller: string, _target: PeerAddress, message: PeerMessage): Promise<PeerReply> {
    const label = 'askId' in message && message.askId !== undefined ? message.askId : message.type;
    this.log.push(`start ${label}`);
    this.maxInFlight = Math.max(this.maxInFlight, this.held.size + 1);
    return new Promise((resolve, reject) => {
      const end = (settle: () => void) => {
        this.held.delete(label);
        this.log.push(`end ${label}`);
        settle();
      };
      this.held.set(label, {
        ack: () => end(() => resolve({ type: 'Ack' })),
        fail: (e) => end(() => reject(e)),
      });
    });
  }

  release(label: string, outcome: 'ack' | Error = 'ack'): void {
    const call = this.held.get(label);
    if (!call) throw new Error(`no send of ${label} in flight (log: ${this.log.join(', ')})`);
    if (outcome === 'ack') call.ack();
    else call.fail(outcome);
  }

  started(): string[] {
    return this.log.filter((l) => l.startsWith('start ')).map((l) => l.slice('start '.length));
  }
}

const turns = async (n = 50) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(cond(), `timed out waiting for: ${what}`);
}

/** NEW's context over an empty MemoryStore, with CURRENT as its only peer. */
function drainContext(operators: readonly OperatorConfig[] = [{ id: MNO_B, approvalRequired: false }]) {
  const world = createSmWorld({ smIds: [CURRENT, NEW] });
  const own = world.get(NEW);
  const store = new MemoryStore();
  const ctx = createContext({
    smId: NEW,
    signer: keySigner(own.privateKey),
    certificate: own.certificate.der,
    trustedCis: [world.ci.certificate],
    store,
    clock: () => world.clock.now,
    operators,
    directory: {
      [CURRENT]: { address: world.address(CURRENT), certificate: world.get(CURRENT).certificate.der },
    },
    outboxBackoff: { baseMs: 1000, maxMs: 60_000 },
  });
  let created = 0;
  /**
   * Queues a peer message labelled `label` (its askId) for chip `chip`, created `order` ms into
   * the last minute (default: after the previous ones).
   */
  const enqueue = (
    chip: number,
    label: string,
    type: 'AskOutcome' | 'TransferAsk' = 'AskOutcome',
    order = created++,
  ) => {
    const eid = worldEid(chip);
    const message: PeerMessage =
      type === 'TransferAsk'
        ? { type, askId: label, eid, unlockCode: '1234' }
        : { type, askId: label, eid, outcome: 'rejected' };
    const item: PeerOutboxItem = {
      id: `item-${label}`,
      createdAt: new Date(world.clock.now.getTime() - 60_000 + order),
      eid,
      channel: 'peer',
      targetSmId: CURRENT,
      message,
      state: 'pending',
      attempts: 0,
      nextAttemptAt: world.clock.now,
    };
    return store.transaction((tx) => tx.enqueue(item));
  };
  const item = (label: string) => {
    const i = store.dump().outbox.get(`item-${label}`);
    assert.ok(i && i.channel === 'peer', `no peer item ${label}`);
    return i;
  };
  return { world, ctx, store, enqueue, item };
}

test('peer messages of different chips are sent side by side, never more than the limit at once', async () => {
  const { ctx, enqueue, item } = drainContext();
  for (let chip = 1; chip <= 5; chip++) await enqueue(chip, `c${chip}`);
  const transport = new HeldTransport();
  const drained = drainOutbox(ctx, transport, undefined, { peerConcurrency: 3 });
  await until('three sends in flight', () => transport.held.size === 3);
  await turns();
  assert.deepEqual(transport.started(), ['c1', 'c2', 'c3'], 'the oldest first, and no fourth');
  transport.release('c2');
  await until('a fourth send', () => transport.started().length === 4);
  await turns();
  assert.deepEqual(transport.started(), ['c1', 'c2', 'c3', 'c4']);
  assert.equal(transport.held.size, 3);
  transport.release('c1');
  transport.release('c3');
  await until('the fifth send', () => transport.started().length === 5);
  transport.release('c4');
  transport.release('c5');
  assert.deepEqual(await drained, { delivered: 5, refused: 0, retried: 0 });
  assert.equal(transport.maxInFlight, 3);
  for (let chip = 1; chip <= 5; chip++) assert.equal(item(`c${chip}`).state, 'delivered');
});

test('the default limit is DEFAULT_PEER_CONCURRENCY (64) sends in flight', async () => {
  const { ctx, enqueue } = drainContext();
  const chips = DEFAULT_PEER_CONCURRENCY + 4;
  for (let chip = 1; chip <= chips; chip++) await enqueue(chip, `c${chip}`);
  const transport = new HeldTransport();
  const drained = drainOutbox(ctx, transport);
  await until('the limit in flight', () => transport.held.size === DEFAULT_PEER_CONCURRENCY);
  await turns();
  assert.equal(transport.started().length, DEFAULT_PEER_CONCURRENCY);
  while (transport.started().length < chips || transport.held.size > 0) {
    for (const label of [...transport.held.keys()]) transport.release(label);
    await turns(5);
  }
  assert.deepEqual(await drained, { delivered: chips, refused: 0, retried: 0 });
  assert.equal(transport.maxInFlight, DEFAULT_PEER_CONCURRENCY);
  assert.equal(DEFAULT_PEER_CONCURRENCY, 64);
});

test("one chip's messages go one after the other, oldest first, even with free slots", async () => {
  const { ctx, enqueue } = drainContext();
  // Stored newest first: the drain still sends them in createdAt order.
  await enqueue(1, 'receipt', 'AskOutcome', 2);
  await enqueue(1, 'ask', 'AskOutcome', 1);
  await enqueue(2, 'other', 'AskOutcome', 3);
  const transport = new HeldTransport();
  const drained = drainOutbox(ctx, transport, undefined, { peerConcurrency: 4 });
  await until('two sends in flight', () => transport.held.size === 2);
  await turns();
  assert.deepEqual(transport.started(), ['ask', 'other'], "the chip's second message waits for its first");
  transport.release('ask');
  await until('the second message of the chip', () => transport.held.has('receipt'));
  transport.release('receipt');
  transport.release('other');
  assert.deepEqual(await drained, { delivered: 3, refused: 0, retried: 0 });
  const chip1 = transport.log.filter((l) => l.endsWith(' ask') || l.endsWith(' receipt'));
  assert.deepEqual(chip1, ['start ask', 'end ask', 'start receipt', 'end receipt']);
  assert.equal(transport.maxInFlight, 2);
});

test("a chip's message that fails holds back that chip's later ones until the next drain, not other chips'", async () => {
  const { world, ctx, enqueue, item } = drainContext();
  await enqueue(1, 'a1');
  await enqueue(1, 'a2');
  await enqueue(2, 'b1');
  await enqueue(2, 'b2');
  const transport = new HeldTransport();
  const drained = drainOutbox(ctx, transport, undefined, { peerConcurrency: 2 });
  await until('both chips started', () => transport.held.size === 2);
  transport.release('a1', new Error('peer busy'));
  transport.release('b1');
  await until("chip 2's second message", () => transport.held.has('b2'));
  await turns();
  assert.ok(!transport.started().includes('a2'), 'a2 is not sent past the failed a1');
  transport.release('b2');
  assert.deepEqual(await drained, { delivered: 2, refused: 0, retried: 1 });
  assert.equal(item('a1').state, 'pending');
  assert.equal(item('a1').attempts, 1);
  assert.equal(item('a1').lastError?.code, 'DeliveryFailed');
  assert.equal(item('a2').state, 'pending');
  assert.equal(item('a2').attempts, 0, 'a2 was not tried');
  assert.equal(item('b2').state, 'delivered');

  // a1 is due again after its backoff: the next drain sends a1, then a2.
  world.clock.advance(1000);
  const again = new HeldTransport();
  const second = drainOutbox(ctx, again, undefined, { peerConcurrency: 2 });
  await until('a1 again', () => again.held.has('a1'));
  await turns();
  assert.deepEqual(again.started(), ['a1']);
  again.release('a1');
  await until('a2', () => again.held.has('a2'));
  again.release('a2');
  assert.deepEqual(await second, { delivered: 2, refused: 0, retried: 0 });
  assert.deepEqual(again.log, ['start a1', 'end a1', 'start a2', 'end a2']);
});

test('a drain claims what it sends: another drain on the same store meanwhile sends none of it', async () => {
  const { world, ctx, enqueue, item } = drainContext();
  await enqueue(1, 'a1');
  await enqueue(2, 'b1');
  const first = new HeldTransport();
  const drained = drainOutbox(ctx, first, undefined, { peerConcurrency: 2 });
  await until('both sent', () => first.held.size === 2);
  // A second process (a replica on one database) drains while both are in flight.
  const second = new HeldTransport();
  assert.deepEqual(await drainOutbox(ctx, second, undefined), { delivered: 0, refused: 0, retried: 0 });
  assert.deepEqual(second.started(), []);
  first.release('a1');
  first.release('b1');
  assert.deepEqual(await drained, { delivered: 2, refused: 0, retried: 0 });
  assert.equal(item('a1').state, 'delivered');
  // A drain that died while sending: its claim runs out and the item is due again.
  await enqueue(3, 'c1');
  const dying = new HeldTransport();
  void drainOutbox(ctx, dying, undefined);
  await until('c1 sent', () => dying.held.has('c1'));
  assert.deepEqual(await drainOutbox(ctx, new HeldTransport(), undefined), {
    delivered: 0,
    refused: 0,
    retried: 0,
  });
  world.clock.advance(OUTBOX_CLAIM_MS);
  const retry = new HeldTransport();
  const again = drainOutbox(ctx, retry, undefined);
  await until('c1 again', () => retry.held.has('c1'));
  retry.release('c1');
  assert.deepEqual(await again, { delivered: 1, refused: 0, retried: 0 });
  dying.release('c1');
});

test('the drain report counts every outcome once, with concurrent sends', async () => {
  const { ctx, enqueue, item } = drainContext();
  await enqueue(1, 'a1');
  await enqueue(1, 'a2');
  await enqueue(2, 'b1');
  await enqueue(2, 'b2');
  await enqueue(3, 'c1', 'TransferAsk');
  await enqueue(3, 'c2');
  await enqueue(4, 'd1');
  const transport = new HeldTransport();
  const drained = drainOutbox(ctx, transport, undefined, { peerConcurrency: 8 });
  await until('every chip started', () => transport.held.size === 4);
  transport.release('b1', new Error('timeout'));
  transport.release('c1', new HandoverError('UnknownChip', 'not here'));
  transport.release('a1');
  transport.release('d1');
  await until("chip 1's and chip 3's second messages", () => transport.held.size === 2);
  transport.release('a2');
  transport.release('c2');
  // Delivered a1, a2, c2, d1; refused c1 (a final refusal does not hold back c2); retried b1 (b2 waits).
  assert.deepEqual(await drained, { delivered: 4, refused: 1, retried: 1 });
  assert.equal(item('c1').state, 'refused');
  assert.equal(item('c1').lastError?.code, 'UnknownChip');
  const refusedAsk = item('c1').message;
  assert.ok(refusedAsk.type === 'TransferAsk' && refusedAsk.unlockCode === undefined, 'the code is wiped');
  assert.equal(item('b2').attempts, 0);
  assert.ok(!transport.started().includes('b2'));
});

test('peerConcurrency must be a whole number of at least 1', async () => {
  const { ctx } = drainContext();
  for (const peerConcurrency of [0, -1, 1.5, Number.NaN]) {
    await assert.rejects(drainOutbox(ctx, new HeldTransport(), undefined, { peerConcurrency }), {
      code: 'InvalidInput',
    });
  }
});

test('an operator configured without a webhook: its notifications are recorded refused, never handed to the notifier', async () => {
  const { world, ctx, store } = drainContext([
    { id: MNO_A, approvalRequired: false, webhook: false },
    { id: MNO_B, approvalRequired: false, webhook: true },
  ]);
  const eid = worldEid(1);
  await store.transaction(async (tx) => {
    await notifyOperator(tx, ctx, MNO_A, 'transferCompleted', { eid, transferId: 't-1' });
    await notifyOperator(tx, ctx, MNO_B, 'transferCompleted', { eid, transferId: 't-1' });
  });
  const items = [...store.dump().outbox.values()].filter((i) => i.channel === 'operator');
  const quiet = items.find((i) => i.channel === 'operator' && i.operatorId === MNO_A);
  const hooked = items.find((i) => i.channel === 'operator' && i.operatorId === MNO_B);
  assert.equal(quiet?.state, 'refused');
  assert.equal(quiet?.attempts, 1);
  assert.equal(quiet?.lastError?.code, 'WebhookNotConfigured');
  assert.equal(hooked?.state, 'pending');
  const seen: string[] = [];
  const report = await drainOutbox(ctx, world.transport, {
    notify: async (operatorId: string) => {
      seen.push(operatorId);
    },
  });
  assert.deepEqual(report, { delivered: 1, refused: 0, retried: 0 });
  assert.deepEqual(seen, [MNO_B], 'only the operator with a webhook was notified');
});
