/**
 * Integration: two SubscriptionManagers and the real chip simulator (src/chip), meeting only
 * through bytes: the chip is driven over APDUs by the device side's sendCommand, as a device
 * agent would. (The SM never imports the chip; only this test sees both.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChipCard } from '../src/chip/apdu.ts';
import { createChipState } from '../src/chip/create.ts';
import { ChipProcessor } from '../src/chip/processor.ts';
import { MemoryStateStore } from '../src/chip/store.ts';
import { sendCommand } from '../src/device/apdu-client.ts';
import { decodeMessage } from '../src/protocol/asn1/decode-any.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../src/protocol/asn1/info.ts';
import { encodeProfileRollback } from '../src/protocol/asn1/profile.ts';
import {
  CURRENT,
  createSmWorld,
  MNO_A,
  MNO_B,
  NEW,
  OTHER,
  type SmWorld,
  worldEid,
} from './support/sm-world.ts';

const DAY = 24 * 3600_000;
const OLD_ICCID = '8944100000000000001';
const NEW_ICCID = '8944200000000000002';

function realChip(world: SmWorld, serial = 1) {
  const state = createChipState({
    identity: {
      kind: 'issue',
      eid: worldEid(serial),
      eumCertificate: world.eum.certificate,
      eumKey: world.eum.privateKey,
    },
    ciCertificates: [world.ci.certificate],
    smId: CURRENT,
    smCertificate: world.get(CURRENT).certificate,
    profiles: [
      { iccid: OLD_ICCID, operator: 'A', state: 'enabled' },
      { iccid: NEW_ICCID, operator: 'B', state: 'disabled' },
    ],
  });
  const card = new ChipCard(new ChipProcessor(new MemoryStateStore(state)));
  const send = (der: Uint8Array) => sendCommand((apdu) => card.transmit(apdu), der);
  return { state, send, eid: state.eid };
}

async function info(send: (der: Uint8Array) => Promise<Uint8Array>) {
  return decodeChipInfo(await send(encodeGetChipInfo()));
}

async function registerReal(world: SmWorld, chip: ReturnType<typeof realChip>) {
  const i = await info(chip.send);
  await world
    .get(CURRENT)
    .sm.registerChip(MNO_A, { chipCertificate: i.chipCertificate, eumCertificate: i.eumCertificate });
}

const typeOf = (bytes: Uint8Array) => decodeMessage(bytes).type;

test('a real chip moves from the current SM to the new SM, with a confirmed profile switch', async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = realChip(world);
  await registerReal(world, chip);
  const order = await neu.sm.orderPortIn(MNO_B, {
    eid: chip.eid,
    currentSmId: CURRENT,
    activationCode: 'AC',
    ask: true,
  });
  await neu.sm.drainOutbox(world.transport);
  // The ask did not carry the profile switch; the current MNO's own release would. Here: the ask.
  const [permissionMessage] = await cur.sm.poll(chip.eid);
  const request = await chip.send(permissionMessage!);
  assert.equal(typeOf(request), 'TransferRequest');
  // A device re-delivering the same permission gets the same request (chip idempotency) ...
  assert.deepEqual(await chip.send(permissionMessage!), request);
  const command = await neu.sm.postTransferRequest(request);
  // ... and the new SM answers the same request with the same command.
  assert.deepEqual(await neu.sm.postTransferRequest(request), command);
  const result = await chip.send(command);
  assert.equal(typeOf(result), 'HandoverResult');
  assert.equal((await neu.sm.postHandoverResult(result)).state, 'completed');
  await neu.sm.drainOutbox(world.transport);

  const [t] = await cur.sm.listTransfers(MNO_A);
  assert.equal(t?.state, 'completed');
  assert.equal(cur.store.dump().chips.get(chip.eid)?.status, 'released');
  assert.equal((await neu.sm.getTransfer(MNO_B, order.transfer.id)).state, 'completed');
  const after = await info(chip.send);
  assert.equal(after.assignedSmId, NEW);
  assert.equal(after.counter, 0);
  assert.equal(after.pendingPermissionId, undefined);
});

test("profile switch with rollbackOnFailure: the chip takes the new SM's ConfirmProfileSwitch", async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = realChip(world);
  await registerReal(world, chip);
  await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
  await cur.sm.requestRelease(MNO_A, {
    eid: chip.eid,
    newSmId: NEW,
    profileSwitch: { disableIccid: OLD_ICCID, enableIccid: NEW_ICCID, rollbackOnFailure: true },
  });
  const [pm] = await cur.sm.poll(chip.eid);
  const command = await neu.sm.postTransferRequest(await chip.send(pm!));
  await neu.sm.postHandoverResult(await chip.send(command));
  const [confirm] = await neu.sm.poll(chip.eid);
  assert.equal(typeOf(confirm!), 'ConfirmProfileSwitch');
  const answer = await chip.send(confirm!);
  assert.equal(typeOf(answer), 'ChipResult');
  const outcome = await neu.sm.postChipResult(answer);
  assert.equal(outcome.outcome, 'ok');
  assert.equal(outcome.effect, 'confirmed');
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).profileSwitchState, 'confirmed');
  assert.equal((await info(chip.send)).counter, 1);
  // After confirmation the device can no longer roll back.
  const late = await neu.sm.postChipResult(await chip.send(encodeProfileRollback()));
  assert.deepEqual([late.outcome, late.effect], ['noPending', 'recorded']);
});

test('profile switch rolled back by the device before the confirmation reaches the chip', async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = realChip(world);
  await registerReal(world, chip);
  await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
  await cur.sm.requestRelease(MNO_A, {
    eid: chip.eid,
    newSmId: NEW,
    profileSwitch: { disableIccid: OLD_ICCID, enableIccid: NEW_ICCID, rollbackOnFailure: true },
  });
  const [pm] = await cur.sm.poll(chip.eid);
  const command = await neu.sm.postTransferRequest(await chip.send(pm!));
  await neu.sm.postHandoverResult(await chip.send(command));
  const rolledBack = await chip.send(encodeProfileRollback());
  assert.equal((await neu.sm.postChipResult(rolledBack)).effect, 'rolledBack');
  assert.deepEqual(await neu.sm.poll(chip.eid), []);
  assert.equal((await info(chip.send)).assignedSmId, NEW, 'the assignment stays with the new SM');
});

test('an unused permission expires: CancelPermission, the real chip answers, both SMs end the transfer', async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = realChip(world);
  await registerReal(world, chip);
  const order = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: true });
  await neu.sm.drainOutbox(world.transport);
  const [pm] = await cur.sm.poll(chip.eid);
  await chip.send(pm!); // pending on the chip, never taken further
  world.clock.advance(DAY + 1000);
  assert.equal((await cur.sm.expire()).cancelsIssued.length, 1);
  const [cancel] = await cur.sm.poll(chip.eid);
  const answer = await chip.send(cancel!);
  const r = await cur.sm.postChipResult(answer);
  assert.deepEqual([r.outcome, r.effect], ['ok', 'cancelled']);
  await cur.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, order.transfer.id)).state, 'failed');
  const i = await info(chip.send);
  assert.equal(i.assignedSmId, CURRENT);
  assert.equal(i.pendingPermissionId, undefined);
  assert.equal(i.counter, 2);

  // The chip may go elsewhere now; the counter keeps rising.
  await world.get(OTHER).sm.orderPortIn('mno-2', { eid: chip.eid, currentSmId: CURRENT, ask: false });
  await cur.sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: OTHER });
  const [pm2] = await cur.sm.poll(chip.eid);
  const command = await world.get(OTHER).sm.postTransferRequest(await chip.send(pm2!));
  await world.get(OTHER).sm.postHandoverResult(await chip.send(command));
  assert.equal((await info(chip.send)).assignedSmId, OTHER);
});

test("the chip committed but the HandoverResult never reached the new SM: the chip's answer to the cancel settles both", async () => {
  const world = createSmWorld();
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = realChip(world);
  await registerReal(world, chip);
  const order = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
  await cur.sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: NEW });
  const [pm] = await cur.sm.poll(chip.eid);
  const command = await neu.sm.postTransferRequest(await chip.send(pm!));
  await chip.send(command); // the result is lost on the way
  world.clock.advance(DAY + 1000);
  await cur.sm.expire();
  await neu.sm.expire();
  assert.equal((await neu.sm.getTransfer(MNO_B, order.transfer.id)).state, 'keyEstablished');
  const [cancel] = await cur.sm.poll(chip.eid);
  const answer = await chip.send(cancel!);
  const r = await cur.sm.postChipResult(answer);
  assert.deepEqual([r.outcome, r.effect], ['notCurrentSm', 'completed']);
  await cur.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, order.transfer.id)).state, 'completed');
  assert.equal((await neu.sm.getChip(MNO_B, chip.eid)).status, 'managed');

  // And back again: the new SM releases it to the first one, which takes it over from "released".
  await cur.sm.orderPortIn(MNO_A, { eid: chip.eid, currentSmId: NEW, ask: false });
  await neu.sm.requestRelease(MNO_B, { eid: chip.eid, newSmId: CURRENT });
  const [back] = await neu.sm.poll(chip.eid);
  const command2 = await cur.sm.postTransferRequest(await chip.send(back!));
  await cur.sm.postHandoverResult(await chip.send(command2));
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'managed');
  assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).counter, 0);
  assert.equal((await info(chip.send)).assignedSmId, CURRENT);
});
