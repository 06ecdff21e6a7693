import assert from 'node:assert/strict';
import { test } from 'node:test';
import { registeredChip, releasedAndPolled } from '../../test/support/sm-flows.ts';
import { handoverResult, transferRequest } from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, MNO_B, NEW } from '../../test/support/sm-world.ts';
import { HandoverError } from '../protocol/errors.ts';
import type { OperatorNotification, PeerTransport } from './peer-api.ts';
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
