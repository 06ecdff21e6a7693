import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertRefused, registeredChip, releasedAndPolled } from '../../test/support/sm-flows.ts';
import {
  chipResult,
  issueTestChip,
  permissionIdOf,
  transferRequest,
} from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, MNO_B, NEW, OTHER, worldEid } from '../../test/support/sm-world.ts';
import { decodeCancelPermission } from '../protocol/asn1/results.ts';

const DAY = 24 * 3600_000;

/** A delivered permission past notAfter: expire() issues the CancelPermission, the device fetches it. */
async function cancelIssued(o: { ask?: boolean; establish?: boolean } = {}) {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  let transferId: string;
  let orderTransferId: string;
  let pm: Uint8Array;
  if (o.ask) {
    const order = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: true });
    await neu.sm.drainOutbox(world.transport);
    orderTransferId = order.transfer.id;
    transferId = (await cur.sm.listTransfers(MNO_A))[0]!.id;
    pm = (await cur.sm.poll(chip.eid))[0]!;
  } else {
    const setup = await releasedAndPolled(world, chip);
    ({ transferId, orderTransferId } = setup);
    pm = setup.permissionMessage;
  }
  const permissionId = permissionIdOf(pm);
  if (o.establish) await neu.sm.postTransferRequest(transferRequest(chip, pm).request);
  world.clock.advance(DAY + 1000);
  assert.deepEqual(await cur.sm.expire(), { expired: [], cancelsIssued: [transferId] });
  const messages = await cur.sm.poll(chip.eid);
  assert.equal(messages.length, 1, 'only the CancelPermission is offered now');
  const cancel = decodeCancelPermission(messages[0]!);
  assert.deepEqual(cancel.data.permissionId, permissionId);
  assert.equal(cancel.data.counterValue, 2);
  assert.equal(cancel.data.currentSmId, CURRENT);
  return { world, cur, neu, chip, transferId, orderTransferId, permissionId };
}

test('expiry of a delivered permission: CancelPermission, the chip stayed → cancelled at both SMs', async () => {
  const { world, cur, neu, chip, transferId, orderTransferId, permissionId } = await cancelIssued({
    ask: true,
  });
  assert.deepEqual(await cur.sm.expire(), { expired: [], cancelsIssued: [] }, 'issued once');
  // The transfer stays delivered until the chip speaks.
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'delivered');
  const ok = chipResult(chip, { permissionId, assignedSmId: CURRENT, outcome: 'ok' });
  assert.equal((await cur.sm.postChipResult(ok)).effect, 'cancelled');
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'cancelled');
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'managed');
  assert.deepEqual(await cur.sm.poll(chip.eid), []);
  // Posted again: no second effect.
  const snap = cur.store.dump();
  assert.equal((await cur.sm.postChipResult(ok)).effect, 'unchanged');
  assert.deepEqual(cur.store.dump(), snap);

  await cur.sm.drainOutbox(world.transport);
  const ended = await neu.sm.getTransfer(MNO_B, orderTransferId);
  assert.equal(ended.state, 'failed');
  assert.equal(ended.endReason, 'cancelled');
  // A new release is possible; its counter continues above the cancel's.
  await cur.sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: OTHER });
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).counter, 3);
});

test('the chip moved but the completion was lost: its answer to the cancel completes both sides', async () => {
  const { world, cur, neu, chip, transferId, orderTransferId, permissionId } = await cancelIssued({
    establish: true,
  });
  // The new SM never assumes failure on its own.
  world.clock.advance(30 * DAY);
  assert.deepEqual(await neu.sm.expire(), { expired: [], cancelsIssued: [] });
  assert.equal((await neu.sm.getTransfer(MNO_B, orderTransferId)).state, 'keyEstablished');

  const moved = chipResult(chip, { permissionId, assignedSmId: NEW, outcome: 'notCurrentSm' });
  assert.equal((await cur.sm.postChipResult(moved)).effect, 'completed');
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'completed');
  assert.equal(cur.store.dump().chips.get(chip.eid)?.status, 'released');
  await cur.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, orderTransferId)).state, 'completed');
  const adopted = await neu.sm.getChip(MNO_B, chip.eid);
  assert.equal(adopted.status, 'managed');
  assert.equal(adopted.keysetVersion, 1);
});

test('the chip stayed while the new SM had keys: the new SM fails and wipes them', async () => {
  const { world, cur, neu, chip, orderTransferId, permissionId } = await cancelIssued({ establish: true });
  await cur.sm.postChipResult(
    chipResult(chip, { permissionId, assignedSmId: CURRENT, outcome: 'noPending' }),
  );
  await cur.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, orderTransferId)).state, 'failed');
  const t = neu.store.dump().transfers.get(orderTransferId);
  assert.ok(t?.direction === 'incoming' && t.receiptKey === undefined && t.keyset === undefined);
  await assert.rejects(neu.sm.getChip(MNO_B, chip.eid), { code: 'ChipNotManaged' });
});

test('other chip results are recorded and change no transfer', async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const chip = await registeredChip(world);
  const { transferId, permissionMessage } = await releasedAndPolled(world, chip);
  const permissionId = permissionIdOf(permissionMessage);
  // Before any CancelPermission, "ok, still yours" ends nothing; nor does a refusal of the permission.
  for (const outcome of ['ok', 'noPending', 'pendingExists', 'replay'] as const) {
    const r = await cur.sm.postChipResult(chipResult(chip, { permissionId, assignedSmId: CURRENT, outcome }));
    assert.equal(r.effect, 'recorded');
  }
  // notCurrentSm naming some other SM is not this transfer's completion.
  const r = await cur.sm.postChipResult(
    chipResult(chip, { permissionId, assignedSmId: OTHER, outcome: 'notCurrentSm' }),
  );
  assert.equal(r.effect, 'recorded');
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'delivered');
  const actions = (await cur.sm.listAudit(MNO_A, { transferId })).map((e) => e.action);
  assert.equal(actions.filter((a) => a === 'chipResult').length, 5);
});

test("a chip's result naming another chip's permission ends nothing and records nothing (ResultMismatch)", async () => {
  const { world, cur, chip, transferId, permissionId } = await cancelIssued({ establish: true });
  // Another chip this SM manages, signing with its own key: its signature verifies, but it speaks
  // for itself only. The permissionId is no secret (the device polls it).
  const other = await registeredChip(world, 7);
  for (const [assignedSmId, outcome] of [
    [NEW, 'notCurrentSm'],
    [CURRENT, 'ok'],
    [CURRENT, 'replay'],
  ] as const) {
    await assertRefused(
      cur.store,
      () => cur.sm.postChipResult(chipResult(other, { permissionId, assignedSmId, outcome })),
      'ResultMismatch',
    );
  }
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'delivered');
  assert.equal(cur.store.dump().chips.get(chip.eid)?.status, 'transferring');
});

test('postChipResult and handleCancelOutcome refusals, each leaving the store unchanged', async () => {
  const { world, cur, neu, chip, permissionId, orderTransferId } = await cancelIssued({
    ask: true,
    establish: true,
  });
  const stranger = issueTestChip(world, worldEid(4));
  const refusedCur = (bytes: Uint8Array, code: string) =>
    assertRefused(cur.store, () => cur.sm.postChipResult(bytes), code);
  await refusedCur(
    chipResult(stranger, { permissionId, assignedSmId: CURRENT, outcome: 'ok' }),
    'ChipNotManaged',
  );
  await refusedCur(
    chipResult(chip, { permissionId, assignedSmId: CURRENT, outcome: 'ok', signWith: stranger.key }),
    'BadSignature',
  );
  await refusedCur(
    chipResult(chip, { permissionId: new Uint8Array(16), assignedSmId: CURRENT, outcome: 'ok' }),
    'UnknownPermission',
  );
  await refusedCur(new Uint8Array([0xec, 0x00]), 'MalformedMessage');

  const stayed = chipResult(chip, { permissionId, assignedSmId: CURRENT, outcome: 'ok' });
  const refusedNew = (caller: string, o: Parameters<typeof neu.sm.handleCancelOutcome>[1], code: string) =>
    assertRefused(neu.store, () => neu.sm.handleCancelOutcome(caller, o), code);
  await refusedNew(OTHER, { permissionId, chipResult: stayed }, 'NotAuthorised');
  await refusedNew(CURRENT, { permissionId: new Uint8Array(16), chipResult: stayed }, 'ResultMismatch');
  await refusedNew(
    CURRENT,
    {
      permissionId,
      chipResult: chipResult(chip, {
        permissionId,
        assignedSmId: CURRENT,
        outcome: 'ok',
        signWith: stranger.key,
      }),
    },
    'BadSignature',
  );
  // "Assigned to the current SM" with a refusal outcome ends nothing.
  await refusedNew(
    CURRENT,
    {
      permissionId,
      chipResult: chipResult(chip, { permissionId, assignedSmId: CURRENT, outcome: 'replay' }),
    },
    'ResultMismatch',
  );
  assert.deepEqual(await neu.sm.handleCancelOutcome(CURRENT, { permissionId, chipResult: stayed }), {
    type: 'Ack',
  });
  assert.equal((await neu.sm.getTransfer(MNO_B, orderTransferId)).state, 'failed');
  const snap = neu.store.dump();
  assert.deepEqual(await neu.sm.handleCancelOutcome(CURRENT, { permissionId, chipResult: stayed }), {
    type: 'Ack',
  });
  assert.deepEqual(neu.store.dump(), snap, 'idempotent');
});

test('a permission never fetched expires without a cancel; the asking new SM is told', async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { transfer } = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: true });
  await neu.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, transfer.id)).state, 'permitted');
  world.clock.advance(DAY + 1000);
  const [t] = await cur.sm.listTransfers(MNO_A);
  assert.deepEqual(await cur.sm.expire(), { expired: [t!.id], cancelsIssued: [] });
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'managed');
  assert.deepEqual(await cur.sm.poll(chip.eid), []);
  await cur.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, transfer.id)).state, 'expired');
});
