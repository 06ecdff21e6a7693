import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertRefused, registeredChip, releasedAndPolled } from '../../test/support/sm-flows.ts';
import {
  chipResult,
  handoverResult,
  permissionIdOf,
  transferRequest,
} from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, MNO_B, NEW } from '../../test/support/sm-world.ts';
import { decodeHandoverCommand } from '../protocol/asn1/handover.ts';
import { decodeTransferPermissionMessage } from '../protocol/asn1/permission.ts';
import { decodeConfirmProfileSwitch } from '../protocol/asn1/profile.ts';
import { findAuditBreak } from './audit-chain.ts';

test('release by the current MNO, end to end: permission, request, command, result, completion', async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { transferId, orderTransferId, permissionMessage } = await releasedAndPolled(world, chip, {
    activationCode: 'AC-1234',
    orderCode: 'AC-1234',
  });

  const pm = decodeTransferPermissionMessage(permissionMessage);
  assert.equal(pm.permission.data.counterValue, 1);
  assert.equal(pm.permission.data.currentSmId, CURRENT);
  assert.equal(pm.permission.data.newSmId, NEW);
  assert.equal(pm.permission.data.newSmAddress, world.address(NEW));
  assert.equal(pm.permission.data.notAfter.getTime(), world.clock.now.getTime() + 24 * 3600_000);
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'delivered');
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'transferring');

  const pending = transferRequest(chip, permissionMessage);
  const command = await neu.sm.postTransferRequest(pending.request);
  const cmd = decodeHandoverCommand(command);
  assert.deepEqual(cmd.data.chipChallenge, pending.chipChallenge);
  assert.equal(cmd.data.newSmId, NEW);
  assert.equal((await neu.sm.getTransfer(MNO_B, orderTransferId)).state, 'keyEstablished');
  // The same request again: the same command, no second effect.
  const before = neu.store.dump();
  assert.deepEqual(await neu.sm.postTransferRequest(pending.request), command);
  assert.deepEqual(neu.store.dump(), before);

  const result = handoverResult(chip, pending, command);
  assert.deepEqual(await neu.sm.postHandoverResult(result), {
    transferId: orderTransferId,
    state: 'completed',
  });
  assert.deepEqual(await neu.sm.postHandoverResult(result), {
    transferId: orderTransferId,
    state: 'completed',
  });
  const adopted = await neu.sm.getChip(MNO_B, chip.eid);
  assert.equal(adopted.status, 'managed');
  assert.equal(adopted.counter, 0);
  assert.equal(adopted.keysetVersion, 1);
  const incoming = neu.store.dump().transfers.get(orderTransferId);
  assert.ok(
    incoming?.direction === 'incoming' && incoming.receiptKey === undefined && incoming.keyset === undefined,
  );

  assert.deepEqual(await neu.sm.drainOutbox(world.transport), { delivered: 1, refused: 0, retried: 0 });
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'completed');
  await assert.rejects(cur.sm.getChip(MNO_A, chip.eid), { code: 'ChipNotManaged' });
  const released = cur.store.dump().chips.get(chip.eid);
  assert.equal(released?.status, 'released');
  assert.equal(released?.keyset, undefined);
  assert.deepEqual(await cur.sm.poll(chip.eid), [], 'nothing left for the device');
  // Delivered again (a lost acknowledgement): acknowledged, nothing changes.
  const snap = cur.store.dump();
  assert.deepEqual(await cur.sm.handleCompleted(NEW, result), { type: 'Ack' });
  assert.deepEqual(cur.store.dump(), snap);

  for (const w of [cur, neu]) {
    const log = w.store.dump().audit;
    assert.equal(findAuditBreak(log), undefined);
    assert.ok(!JSON.stringify(log).includes('AC-1234'), 'no activation code in the audit log');
  }
  const actions = (await cur.sm.listAudit(MNO_A, { transferId })).map((e) => e.action);
  assert.deepEqual(actions, [
    'transferRequested',
    'permissionIssued',
    'permissionDelivered',
    'transferCompleted',
    'chipReleased',
  ]);
  const events = [...cur.store.dump().outbox.values()]
    .filter((i) => i.channel === 'operator')
    .map((i) => (i.channel === 'operator' ? i.notification.event : ''));
  assert.deepEqual(events, ['permissionIssued', 'transferCompleted']);
});

test("port-in with a peer ask and the current MNO's approval", async () => {
  const world = createSmWorld({
    operators: {
      [CURRENT]: [{ id: MNO_A, approvalRequired: true }],
      [NEW]: [{ id: MNO_B, approvalRequired: false }],
    },
  });
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { transfer } = await neu.sm.orderPortIn(MNO_B, {
    eid: chip.eid,
    currentSmId: CURRENT,
    activationCode: 'code-7',
    unlockCode: '0000',
    ask: true,
  });
  assert.equal(transfer.state, 'ordered');
  assert.deepEqual(await neu.sm.drainOutbox(world.transport), { delivered: 1, refused: 0, retried: 0 });
  assert.equal((await neu.sm.getTransfer(MNO_B, transfer.id)).state, 'asked');
  // The unlock code is not kept once the ask is delivered.
  assert.ok(!JSON.stringify([...neu.store.dump().outbox.values()]).includes('"0000"'));

  const [waiting] = await cur.sm.listTransfers(MNO_A, { eid: chip.eid });
  assert.equal(waiting?.state, 'awaitingApproval');
  assert.deepEqual(await cur.sm.poll(chip.eid), [], 'no permission before approval');
  // The ask again (a retry): the same transfer.
  assert.deepEqual(await cur.sm.handleTransferAsk(NEW, { eid: chip.eid, askId: transfer.id }), {
    type: 'TransferAskAccepted',
    transferId: waiting!.id,
    state: 'awaitingApproval',
  });

  await cur.sm.approve(MNO_A, waiting!.id);
  const [permissionMessage] = await cur.sm.poll(chip.eid);
  const pm = decodeTransferPermissionMessage(permissionMessage!);
  assert.ok(pm.permission.data.activationCodeHash, "the new MNO's code hash travels in the permission");

  const pending = transferRequest(chip, permissionMessage!);
  const command = await neu.sm.postTransferRequest(pending.request);
  await neu.sm.postHandoverResult(handoverResult(chip, pending, command));
  await neu.sm.drainOutbox(world.transport);
  assert.equal((await cur.sm.getTransfer(MNO_A, waiting!.id)).state, 'completed');
  assert.equal((await neu.sm.getTransfer(MNO_B, transfer.id)).state, 'completed');
});

test('a rejected ask ends the port-in at the new SM', async () => {
  const world = createSmWorld({
    operators: {
      [CURRENT]: [{ id: MNO_A, approvalRequired: true }],
      [NEW]: [{ id: MNO_B, approvalRequired: false }],
    },
  });
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { transfer } = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: true });
  await neu.sm.drainOutbox(world.transport);
  const [waiting] = await cur.sm.listTransfers(MNO_A);
  assert.equal((await cur.sm.reject(MNO_A, waiting!.id)).state, 'rejected');
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'managed');
  await cur.sm.drainOutbox(world.transport);
  const ended = await neu.sm.getTransfer(MNO_B, transfer.id);
  assert.equal(ended.state, 'failed');
  assert.equal(ended.endReason, 'rejected');
  // A new order for the chip is possible again.
  await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
});

test('an ask refused by the current SM fails the port-in with the refusal code', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  await world
    .get(CURRENT)
    .sm.setLock(MNO_A, chip.eid, { kind: 'lockedUntil', until: new Date(world.clock.now.getTime() + 1e9) });
  const { transfer } = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: true });
  assert.deepEqual(await neu.sm.drainOutbox(world.transport), { delivered: 0, refused: 1, retried: 0 });
  const ended = await neu.sm.getTransfer(MNO_B, transfer.id);
  assert.equal(ended.state, 'failed');
  assert.equal(ended.endReason, 'ChipLocked');
});

test('profile switch: the new SM confirms at the first device contact after the commit (§7)', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const profileSwitch = {
    disableIccid: '8944100000000000001',
    enableIccid: '8944200000000000002',
    rollbackOnFailure: true,
  };
  const { permissionMessage } = await releasedAndPolled(world, chip, { profileSwitch });
  const pending = transferRequest(chip, permissionMessage);
  const command = await neu.sm.postTransferRequest(pending.request);
  await neu.sm.postHandoverResult(handoverResult(chip, pending, command));
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).profileSwitchState, 'unconfirmed');

  const [confirm] = await neu.sm.poll(chip.eid);
  const c = decodeConfirmProfileSwitch(confirm!);
  assert.deepEqual(c.data, { eid: chip.eid, smId: NEW, counterValue: 1 });
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).counter, 1);
  // Polled again: the same message, no new counter.
  assert.deepEqual(await neu.sm.poll(chip.eid), [confirm]);
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).counter, 1);

  const answer = await neu.sm.postChipResult(chipResult(chip, { assignedSmId: NEW, outcome: 'ok' }));
  assert.equal(answer.effect, 'confirmed');
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).profileSwitchState, 'confirmed');
  assert.deepEqual(await neu.sm.poll(chip.eid), []);
});

test('a permissionId is never reused and the counter never repeats across permissions', async () => {
  const world = createSmWorld({ permissionValidityMs: 60_000 });
  const cur = world.get(CURRENT);
  const chip = await registeredChip(world);
  const seen = new Set<string>();
  for (let i = 1; i <= 3; i++) {
    await cur.sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: NEW });
    world.clock.advance(61_000);
    const report = await cur.sm.expire();
    assert.equal(report.expired.length, 1, 'never delivered: expires without a cancel');
    const t = [...cur.store.dump().transfers.values()].at(-1)!;
    assert.ok(t.direction === 'outgoing' && t.permission);
    assert.equal(t.permission.counterValue, i);
    seen.add(Buffer.from(t.permissionId!).toString('hex'));
  }
  assert.equal(seen.size, 3);
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).counter, 3);
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'managed');
});

test('profile switch rolled back before the confirmation: the new SM records it and confirms nothing', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const profileSwitch = {
    disableIccid: '8944100000000000001',
    enableIccid: '8944200000000000002',
    rollbackOnFailure: true,
  };
  const { permissionMessage } = await releasedAndPolled(world, chip, { profileSwitch });
  const pending = transferRequest(chip, permissionMessage);
  const command = await neu.sm.postTransferRequest(pending.request);
  await neu.sm.postHandoverResult(handoverResult(chip, pending, command));
  const permissionId = permissionIdOf(permissionMessage);
  // The device rolled back (ProfileRollback → ok) and reports the chip's answer at its next contact.
  const answer = await neu.sm.postChipResult(
    chipResult(chip, { permissionId, assignedSmId: NEW, outcome: 'ok' }),
  );
  assert.equal(answer.effect, 'rolledBack');
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).profileSwitchState, 'rolledBack');
  assert.deepEqual(await neu.sm.poll(chip.eid), [], 'no confirmation after a rollback');
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).counter, 0);
  await assertRefused(
    neu.store,
    () =>
      neu.sm.postChipResult(
        chipResult(chip, {
          permissionId,
          assignedSmId: NEW,
          outcome: 'ok',
          signWith: world.get(NEW).privateKey,
        }),
      ),
    'BadSignature',
  );
});
