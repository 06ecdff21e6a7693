/** Test helper: common SM test steps (register a chip, order, release, fetch the permission). */
import assert from 'node:assert/strict';
import type { ProfileSwitch } from '../../src/protocol/asn1/permission.ts';
import type { MemoryStore } from '../../src/sm/store/memory.ts';
import { issueTestChip, registration, type TestChipKeys } from './sm-test-chip.ts';
import { CURRENT, MNO_A, MNO_B, NEW, type SmWorld, worldEid } from './sm-world.ts';

/** Asserts that `act` is refused with `code` and that the store is exactly as before. */
export async function assertRefused(
  store: MemoryStore,
  act: () => Promise<unknown>,
  code: string,
): Promise<void> {
  const before = store.dump();
  await assert.rejects(act, (e: unknown) => {
    assert.equal((e as { code?: string }).code, code, `expected ${code}, got ${String(e)}`);
    return true;
  });
  assert.deepEqual(store.dump(), before, `refusal ${code} changed the store`);
}

export async function registeredChip(
  world: SmWorld,
  serial = 1,
  smId = CURRENT,
  operatorId = MNO_A,
): Promise<TestChipKeys> {
  const chip = issueTestChip(world, worldEid(serial));
  await world.get(smId).sm.registerChip(operatorId, registration(chip));
  return chip;
}

export interface ReleaseSetup {
  readonly transferId: string;
  readonly orderTransferId: string;
  /** The TransferPermissionMessage as the device fetched it from the current SM. */
  readonly permissionMessage: Uint8Array;
}

/** New MNO orders (no ask), current MNO releases, the device polls the current SM. */
export async function releasedAndPolled(
  world: SmWorld,
  chip: TestChipKeys,
  o: { activationCode?: string; orderCode?: string; profileSwitch?: ProfileSwitch } = {},
): Promise<ReleaseSetup> {
  const order = await world.get(NEW).sm.orderPortIn(MNO_B, {
    eid: chip.eid,
    currentSmId: CURRENT,
    ask: false,
    ...(o.orderCode !== undefined && { activationCode: o.orderCode }),
  });
  const t = await world.get(CURRENT).sm.requestRelease(MNO_A, {
    eid: chip.eid,
    newSmId: NEW,
    ...(o.activationCode !== undefined && { activationCode: o.activationCode }),
    ...(o.profileSwitch && { profileSwitch: o.profileSwitch }),
  });
  const messages = await world.get(CURRENT).sm.poll(chip.eid);
  assert.equal(messages.length, 1);
  return { transferId: t.id, orderTransferId: order.transfer.id, permissionMessage: messages[0]! };
}
