/**
 * A complete transfer in one process (issue: protocol core, item 7): the demo on both curves,
 * every message delivered again after the end, and a HandoverResult lost on its way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileStateStore } from '../src/chip/file-store.ts';
import { createInProcessWorld, type InProcessWorld } from '../src/demo/in-process-world.ts';
import { runDemo } from '../src/demo/run-demo.ts';
import type { DeviceStep } from '../src/device/agent.ts';
import type { Curve } from '../src/protocol/crypto/curves.ts';
import type { PeerMessage } from '../src/sm/peer-api.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'handover-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

for (const curve of ['p256', 'brainpoolP256r1'] as Curve[]) {
  test(`the demo port-in completes on ${curve}: chip, current SM and new SM agree`, async (t) => {
    const lines: string[] = [];
    const final = (await runDemo({
      dir: tempDir(t),
      curve,
      activationCode: 'AC-1',
      print: (l) => lines.push(l),
    })) as {
      chip: { assignedSmId: string; counter: number; keysetVersion?: number; pendingPermissionId?: string };
      currentSm: { managedChips: unknown[]; transfers: { state: string; permissionId?: string }[] };
      newSm: { managedChips: { status: string }[]; transfers: { state: string; permissionId?: string }[] };
    };
    assert.equal(final.chip.assignedSmId, 'sm-beta.example');
    assert.equal(final.chip.counter, 0);
    assert.equal(final.chip.keysetVersion, 1);
    assert.equal(final.chip.pendingPermissionId, undefined);
    assert.deepEqual(final.currentSm.managedChips, []);
    assert.deepEqual(
      final.currentSm.transfers.map((x) => x.state),
      ['completed'],
    );
    assert.deepEqual(
      final.newSm.transfers.map((x) => x.state),
      ['completed'],
    );
    assert.equal(final.currentSm.transfers[0]?.permissionId, final.newSm.transfers[0]?.permissionId);
    assert.equal(final.newSm.managedChips[0]?.status, 'managed');
    for (const type of [
      'TransferAsk',
      'TransferPermissionMessage',
      'TransferRequest',
      'HandoverCommand',
      'HandoverResult',
      'Completed',
    ]) {
      assert.ok(
        lines.some((l) => l.includes(type)),
        `the demo prints the ${type} step`,
      );
    }
  });
}

interface Recorded {
  readonly device: DeviceStep[];
  readonly peer: { from: string; to: string; message: PeerMessage }[];
}

async function completedTransfer(dir: string): Promise<{ world: InProcessWorld; rec: Recorded }> {
  const rec: Recorded = { device: [], peer: [] };
  const world = createInProcessWorld({
    dir,
    curve: 'p256',
    onPeerMessage: (from, to, message) => rec.peer.push({ from, to, message }),
  });
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  const { chipCertificate, eumCertificate } = await import('../src/protocol/asn1/info.ts').then(async (m) =>
    m.decodeChipInfo(await world.sendToChip(m.encodeGetChipInfo())),
  );
  await cur.sm.registerChip(cur.operatorId, { chipCertificate, eumCertificate });
  await neu.sm.orderPortIn(neu.operatorId, {
    eid: world.chip.eid,
    currentSmId: cur.smId,
    activationCode: 'AC',
    ask: true,
  });
  await neu.sm.drainOutbox(world.peers);
  await world.device((s) => rec.device.push(s)).runOnce();
  await neu.sm.drainOutbox(world.peers);
  return { world, rec };
}

test('every message delivered again after the end gets the same answer and has no second effect', async (t) => {
  const { world, rec } = await completedTransfer(tempDir(t));
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  const chipStore = new FileStateStore(world.chip.statePath);
  const before = { chip: chipStore.load(), cur: cur.store.dump(), neu: neu.store.dump() };
  const byType = (type: string) => rec.device.find((s) => s.type === type)!.bytes;

  // The chip: the used permission is refused as coming from the old SM; the HandoverCommand
  // gets the stored HandoverResult again, byte for byte.
  const permission = byType('TransferPermissionMessage');
  const again = await world.sendToChip(permission);
  const { decodeMessage } = await import('../src/protocol/asn1/decode-any.ts');
  const refusal = decodeMessage(again);
  assert.equal(refusal.type, 'ChipResult');
  if (refusal.type === 'ChipResult') assert.equal(refusal.value.data.outcome, 'notCurrentSm');
  assert.deepEqual(await world.sendToChip(byType('HandoverCommand')), byType('HandoverResult'));

  // The new SM: the same TransferRequest gets the same HandoverCommand; the same result is accepted again.
  assert.deepEqual(await neu.sm.postTransferRequest(byType('TransferRequest')), byType('HandoverCommand'));
  assert.equal((await neu.sm.postHandoverResult(byType('HandoverResult'))).state, 'completed');

  // The current SM: the peer Completed and the TransferAsk delivered again.
  for (const p of rec.peer) {
    const target = world.sm(p.to);
    if (p.message.type === 'Completed')
      assert.deepEqual(await target.sm.handlePeerMessage(p.from, p.message), { type: 'Ack' });
    if (p.message.type === 'TransferAsk') {
      // Same askId: the same answer (the transfer it created), never a second permission.
      const reply = await target.sm.handlePeerMessage(p.from, p.message);
      const [outgoing] = await cur.sm.listTransfers(cur.operatorId);
      assert.deepEqual(reply, { type: 'TransferAskAccepted', transferId: outgoing?.id, state: 'permitted' });
    }
  }
  assert.deepEqual(chipStore.load(), before.chip, 'chip state unchanged');
  const transfersOf = (d: ReturnType<typeof cur.store.dump>) => ({ chips: d.chips, transfers: d.transfers });
  assert.deepEqual(transfersOf(cur.store.dump()), transfersOf(before.cur), 'current SM: no second effect');
  assert.deepEqual(transfersOf(neu.store.dump()), transfersOf(before.neu), 'new SM: no second effect');
  assert.deepEqual(await cur.sm.poll(world.chip.eid), [], 'no second permission was queued');
});

test('a HandoverResult lost on its way: the device agent keeps the command, the chip answers it again, the transfer completes', async (t) => {
  const dir = tempDir(t);
  const world = createInProcessWorld({ dir, curve: 'p256' });
  const [cur, neu] = world.sms as [InProcessWorld['sms'][0], InProcessWorld['sms'][0]];
  const { decodeChipInfo, encodeGetChipInfo } = await import('../src/protocol/asn1/info.ts');
  const info = decodeChipInfo(await world.sendToChip(encodeGetChipInfo()));
  await cur.sm.registerChip(cur.operatorId, {
    chipCertificate: info.chipCertificate,
    eumCertificate: info.eumCertificate,
  });
  await neu.sm.orderPortIn(neu.operatorId, { eid: world.chip.eid, currentSmId: cur.smId, ask: true });
  await neu.sm.drainOutbox(world.peers);

  // The network drops the first HandoverResult the device posts.
  const { DeviceAgent } = await import('../src/device/agent.ts');
  let drop = true;
  const results: Uint8Array[] = [];
  const agent = new DeviceAgent({
    eid: world.chip.eid,
    homeSmAddress: cur.address,
    sendToChip: (der) => world.sendToChip(der),
    sms: {
      poll: (_a, eid) => cur.sm.poll(eid),
      postTransferRequest: (_a, b) => neu.sm.postTransferRequest(b),
      postHandoverResult: async (_a, b) => {
        results.push(b);
        if (drop) {
          drop = false;
          throw new Error('connection reset');
        }
        await neu.sm.postHandoverResult(b);
      },
      postChipResult: async () => {},
    },
  });
  await assert.rejects(agent.runOnce(), /connection reset/);
  const [incoming] = await neu.sm.listTransfers(neu.operatorId);
  assert.equal(incoming?.state, 'keyEstablished', 'the new SM never assumes failure on its own');
  await agent.runOnce();
  assert.equal(results.length, 2);
  assert.deepEqual(results[1], results[0], 'the chip returned its stored HandoverResult');
  assert.equal((await neu.sm.getTransfer(neu.operatorId, incoming!.id)).state, 'completed');
  await neu.sm.drainOutbox(world.peers);
  const [outgoing] = await cur.sm.listTransfers(cur.operatorId);
  assert.equal(outgoing?.state, 'completed');
  assert.equal(agent.homeSmAddress, neu.address);
});
