/**
 * The batch device agent: several farm chips moved by complete transfers between two in-process
 * SMs (batch poll and per-chip poll), a lost HandoverResult retried by the next sweep, and the
 * bounded table of chips in flight.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connectFarm } from '../chip/farm/farm-link.ts';
import { serveFarm } from '../chip/farm/farm-server.ts';
import { type ChipFarm, createFarm } from '../chip/farm/sqlite-farm-store.ts';
import { createInProcessWorld, type InProcessWorld } from '../demo/in-process-world.ts';
import type { SubscriptionManager } from '../sm/subscription-manager.ts';
import type { ChipRelayState } from './agent.ts';
import { apduChipLink, BatchDeviceAgent, type BatchSmEndpoints, ChipTable } from './batch-agent.ts';

interface Setup {
  readonly world: InProcessWorld;
  readonly farm: ChipFarm;
  readonly eids: string[];
  readonly link: ReturnType<typeof apduChipLink>;
}

async function setup(t: { after: (fn: () => unknown) => void }, count: number): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'handover-batch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const world = createInProcessWorld({ dir, curve: 'p256' });
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  const farm = await createFarm({
    pki: world.pki,
    count,
    smId: cur.smId,
    path: join(dir, 'farm.sqlite'),
    startSerial: 100, // the world's own chip is serial 1
  });
  t.after(() => farm.close());
  const served = serveFarm(farm);
  await new Promise<void>((r) => served.server.listen(0, '127.0.0.1', r));
  t.after(() => served.close());
  const farmLink = await connectFarm('127.0.0.1', (served.server.address() as { port: number }).port);
  t.after(() => farmLink.close());

  const eids: string[] = [];
  for (const chip of farm.identities()) {
    eids.push(chip.eid);
    await cur.sm.registerChip(cur.operatorId, {
      chipCertificate: Buffer.from(chip.chipCertificate, 'base64'),
      eumCertificate: Buffer.from(chip.eumCertificate, 'base64'),
    });
    await neu.sm.orderPortIn(neu.operatorId, { eid: chip.eid, currentSmId: cur.smId, ask: true });
  }
  await neu.sm.drainOutbox(world.peers);
  return { world, farm, eids, link: apduChipLink((eid, apdu) => farmLink.transmit(eid, apdu)) };
}

function endpoints(
  world: InProcessWorld,
  o: { batch: boolean; losePostHandoverResult?: () => boolean },
): BatchSmEndpoints & { pollManyCalls: number } {
  const at = (address: string): SubscriptionManager => {
    const s = world.sms.find((x) => x.address === address);
    if (!s) throw new Error(`no SM at ${address}`);
    return s.sm;
  };
  const e: BatchSmEndpoints & { pollManyCalls: number } = {
    pollManyCalls: 0,
    poll: (address, eid) => at(address).poll(eid),
    postTransferRequest: (address, bytes) => at(address).postTransferRequest(bytes),
    postHandoverResult: async (address, bytes) => {
      if (o.losePostHandoverResult?.()) throw new Error('connection reset');
      await at(address).postHandoverResult(bytes);
    },
    postChipResult: async (address, bytes) => {
      await at(address).postChipResult(bytes);
    },
  };
  if (o.batch) {
    e.pollMany = async (address, eids) => {
      e.pollManyCalls++;
      const out = new Map<string, Uint8Array[]>();
      for (const eid of eids) out.set(eid, await at(address).poll(eid));
      return out;
    };
  }
  return e;
}

async function transferStates(sm: SubscriptionManager, operatorId: string): Promise<string[]> {
  return (await sm.listTransfers(operatorId)).map((x) => x.state);
}

for (const batch of [true, false]) {
  test(`batch agent (${batch ? 'batch poll' : 'per-chip poll'}): every farm chip moves to the new SM`, async (t) => {
    const { world, farm, eids, link } = await setup(t, 6);
    const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
    const sms = endpoints(world, { batch });
    const homes = new Map<string, string>();
    const steps: string[] = [];
    const agent = new BatchDeviceAgent({
      sms,
      sendToChip: link,
      homeSmAddress: cur.address,
      concurrency: 4,
      pollBatchSize: 4,
      onHomeChanged: (eid, address) => homes.set(eid, address),
      onStep: (_eid, s) => steps.push(s.type),
    });
    const report = await agent.sweep(eids);
    await neu.sm.drainOutbox(world.peers);

    assert.deepEqual(report, {
      polled: 6,
      withMessages: 6,
      messages: 6,
      retried: 0,
      handovers: 6,
      failed: 0,
      pollFailures: 0,
      deferred: 0,
      held: 0,
    });
    assert.equal(sms.pollManyCalls, batch ? 2 : 0);
    assert.deepEqual([...homes.keys()].sort(), [...eids].sort());
    assert.ok([...homes.values()].every((a) => a === neu.address));
    for (const eid of eids) {
      const s = farm.load(eid);
      assert.equal(s.assignment.smId, neu.smId);
      assert.equal(s.pending, undefined);
      assert.equal(s.assignment.keyset?.version, 1);
    }
    assert.deepEqual(await transferStates(cur.sm, cur.operatorId), Array(6).fill('completed'));
    assert.deepEqual(await transferStates(neu.sm, neu.operatorId), Array(6).fill('completed'));
    for (const type of [
      'TransferPermissionMessage',
      'TransferRequest',
      'HandoverCommand',
      'HandoverResult',
    ]) {
      assert.equal(steps.filter((s) => s === type).length, 6, type);
    }
    assert.equal(agent.tracked, 0, 'nothing stays in memory once every chip is done');

    // A second sweep at the old home finds nothing to do.
    const again = await agent.sweep(eids);
    assert.equal(again.withMessages, 0);
  });
}

test('batch agent: a lost HandoverResult is held and delivered again by the next sweep', async (t) => {
  const { world, farm, eids, link } = await setup(t, 3);
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  let lose = true;
  const sms = endpoints(world, { batch: true, losePostHandoverResult: () => lose });
  const errors: string[] = [];
  const agent = new BatchDeviceAgent({
    sms,
    sendToChip: link,
    homeSmAddress: cur.address,
    onChipError: (eid) => errors.push(eid),
  });
  const first = await agent.sweep(eids);
  assert.equal(first.failed, 3);
  assert.equal(first.held, 3);
  assert.equal(first.handovers, 0);
  assert.equal(agent.tracked, 3, 'the chips holding a command stay in memory');
  assert.deepEqual(errors.sort(), [...eids].sort());
  // The chips committed; the new SM waits for the results.
  for (const eid of eids) assert.equal(farm.load(eid).assignment.smId, neu.smId);
  assert.deepEqual(await transferStates(neu.sm, neu.operatorId), Array(3).fill('keyEstablished'));

  lose = false;
  const second = await agent.sweep(eids);
  assert.equal(second.retried, 3);
  assert.equal(second.handovers, 3);
  assert.equal(second.held, 0);
  assert.equal(agent.tracked, 0);
  await neu.sm.drainOutbox(world.peers);
  assert.deepEqual(await transferStates(neu.sm, neu.operatorId), Array(3).fill('completed'));
  assert.deepEqual(await transferStates(cur.sm, cur.operatorId), Array(3).fill('completed'));
});

test('batch agent: a command held when the agent died is delivered by the next agent, from what onRelayState kept', async (t) => {
  const { world, farm, eids, link } = await setup(t, 2);
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  // What a --homes file keeps: the last state of each chip, as onRelayState reported it.
  const kept = new Map<string, ChipRelayState>();
  const keep = (c: ChipRelayState) => kept.set(c.eid, { ...c });
  const first = new BatchDeviceAgent({
    sms: endpoints(world, { batch: true, losePostHandoverResult: () => true }),
    sendToChip: link,
    homeSmAddress: cur.address,
    onRelayState: keep,
  });
  assert.equal((await first.sweep(eids)).held, 2);
  for (const eid of eids) {
    assert.equal(farm.load(eid).assignment.smId, neu.smId, 'committed on the chip');
    assert.equal(kept.get(eid)?.held?.address, neu.address, 'the command is kept before it goes to the chip');
    assert.equal(kept.get(eid)?.home, cur.address);
  }
  // The agent process is gone; a new one starts from what was kept.
  const homes = new Map<string, string>();
  const second = new BatchDeviceAgent({
    sms: endpoints(world, { batch: true }),
    sendToChip: link,
    homeOf: (eid) => homes.get(eid) ?? cur.address,
    onHomeChanged: (eid, address) => homes.set(eid, address),
    onRelayState: keep,
    resume: [...kept.values()],
  });
  assert.equal(second.held, 2);
  const report = await second.sweep(eids);
  assert.equal(report.retried, 2);
  assert.equal(report.handovers, 2);
  for (const eid of eids) {
    assert.equal(homes.get(eid), neu.address);
    assert.deepEqual(
      kept.get(eid),
      { eid, home: neu.address, held: undefined },
      'home and answer in one record',
    );
  }
  await neu.sm.drainOutbox(world.peers);
  assert.deepEqual(await transferStates(neu.sm, neu.operatorId), Array(2).fill('completed'));
  assert.deepEqual(await transferStates(cur.sm, cur.operatorId), Array(2).fill('completed'));
});

test('batch agent: chips holding commands never exceed the table; the rest wait for a later sweep', async (t) => {
  const { world, eids, link } = await setup(t, 5);
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  let lose = true;
  const sms = endpoints(world, { batch: true, losePostHandoverResult: () => lose });
  const agent = new BatchDeviceAgent({
    sms,
    sendToChip: link,
    homeSmAddress: cur.address,
    concurrency: 1,
    pollBatchSize: 1,
    maxTracked: 3,
  });
  let most = 0;
  const watch = setInterval(() => {
    most = Math.max(most, agent.tracked);
  }, 1);
  t.after(() => clearInterval(watch));
  const first = await agent.sweep(eids);
  assert.equal(first.held, 3, 'the table is full of chips holding commands');
  assert.equal(first.deferred, 2, 'the other chips wait (their messages stay on offer at the SM)');
  assert.ok(agent.tracked <= 3 && most <= 3);

  lose = false;
  let done = 0;
  for (let i = 0; i < 5 && done < 5; i++) done += (await agent.sweep(eids)).handovers;
  assert.equal(done, 5);
  assert.equal(agent.tracked, 0);
  await neu.sm.drainOutbox(world.peers);
  assert.deepEqual(await transferStates(neu.sm, neu.operatorId), Array(5).fill('completed'));
});

test('ChipTable: bounded, one entry per chip, lists the chips holding commands', () => {
  const table = new ChipTable(2);
  const chip = (eid: string, held = false): ChipRelayState => ({
    eid,
    home: 'https://a',
    held: held ? { address: 'https://b', command: Uint8Array.of(1) } : undefined,
  });
  assert.ok(table.add(chip('1')));
  assert.ok(!table.add(chip('1')), 'the same chip twice');
  assert.ok(table.add(chip('2', true)));
  assert.ok(!table.add(chip('3')), 'full');
  assert.equal(table.size, 2);
  assert.equal(table.heldCount, 1);
  assert.deepEqual(
    table.held().map((c) => c.eid),
    ['2'],
  );
  assert.ok(table.delete('1'));
  assert.ok(table.add(chip('3')));
  assert.throws(() => new ChipTable(0), RangeError);
  assert.throws(
    () =>
      new BatchDeviceAgent({
        sms: {} as BatchSmEndpoints,
        sendToChip: async (_e, d) => d,
        concurrency: 8,
        maxTracked: 8,
      }),
    RangeError,
  );
});
