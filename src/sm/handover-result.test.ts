import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertRefused, registeredChip, releasedAndPolled } from '../../test/support/sm-flows.ts';
import { handoverResult, issueTestChip, transferRequest } from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, NEW, OTHER, worldEid } from '../../test/support/sm-world.ts';

async function established() {
  const world = createSmWorld();
  const chip = await registeredChip(world);
  const setup = await releasedAndPolled(world, chip);
  const pending = transferRequest(chip, setup.permissionMessage);
  const command = await world.get(NEW).sm.postTransferRequest(pending.request);
  return { world, chip, pending, command, ...setup };
}

test('postHandoverResult refusals (§6.5), each leaving the store unchanged', async () => {
  const { world, chip, pending, command } = await established();
  const neu = world.get(NEW);
  const stranger = issueTestChip(world, worldEid(3));
  const refused = (bytes: Uint8Array, code: string) =>
    assertRefused(neu.store, () => neu.sm.postHandoverResult(bytes), code);

  await refused(new Uint8Array([0x30, 0]), 'MalformedMessage');
  await refused(handoverResult(chip, pending, command, { previousSmId: OTHER }), 'ResultMismatch');
  await refused(handoverResult(chip, pending, command, { newSmId: OTHER }), 'ResultMismatch');
  await refused(handoverResult(chip, pending, command, { signWith: stranger.key }), 'BadSignature');
  await refused(handoverResult(chip, pending, command, { receipt: new Uint8Array(16) }), 'ReceiptInvalid');
  // Keys the chip derived from another one-time key pair: the receipt fails.
  const foreign = handoverResult(chip, transferRequest(chip, pending.permissionMessage), command);
  await refused(foreign, 'ReceiptInvalid');

  await neu.sm.postHandoverResult(handoverResult(chip, pending, command));
  // After completion, a different statement for the same permission is refused.
  await refused(
    handoverResult(chip, pending, command, { receipt: new Uint8Array(16).fill(1) }),
    'InvalidState',
  );
});

test('handleCompleted refusals at the current SM, each leaving the store unchanged', async () => {
  const { world, chip, pending, command, transferId } = await established();
  const cur = world.get(CURRENT);
  const stranger = issueTestChip(world, worldEid(3));
  const result = handoverResult(chip, pending, command);
  const refused = (caller: string, bytes: Uint8Array, code: string) =>
    assertRefused(cur.store, () => cur.sm.handleCompleted(caller, bytes), code);

  await refused(OTHER, result, 'NotAuthorised');
  await refused(NEW, handoverResult(chip, pending, command, { signWith: stranger.key }), 'BadSignature');
  await refused(NEW, handoverResult(chip, pending, command, { previousSmId: OTHER }), 'ResultMismatch');
  await refused(NEW, new Uint8Array([0xe8, 0x00]), 'MalformedMessage');
  await refused(NEW, result.subarray(0, result.length - 1), 'MalformedMessage');

  // The current SM cannot check the receipt (it has no keys): the chip's signature is its proof.
  assert.deepEqual(await cur.sm.handleCompleted(NEW, result), { type: 'Ack' });
  assert.equal((await cur.sm.getTransfer(MNO_A, transferId)).state, 'completed');
});

test('a permission unknown to the SM is refused', async () => {
  const a = await established();
  const b = await established();
  // b's chip result presented to a's SMs: unknown permissionId.
  const result = handoverResult(b.chip, b.pending, b.command);
  await assertRefused(
    a.world.get(NEW).store,
    () => a.world.get(NEW).sm.postHandoverResult(result),
    'UnknownPermission',
  );
  await assertRefused(
    a.world.get(CURRENT).store,
    () => a.world.get(CURRENT).sm.handleCompleted(NEW, result),
    'UnknownPermission',
  );
});
