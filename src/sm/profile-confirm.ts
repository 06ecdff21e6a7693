/**
 * PROTOCOL.md §7 at the new SM: after a commit that switched profiles with rollbackOnFailure, the
 * new SM confirms the switch with a signed ConfirmProfileSwitch (counter + 1, used in the same
 * transaction) once the device reaches it, i.e. at the device's next poll after the commit.
 */
import { encodeConfirmProfileSwitch, encodeConfirmProfileSwitchData } from '../protocol/asn1/profile.ts';
import type { SmContext } from './config.ts';
import { audit, queueDevice } from './effects.ts';
import type { ChipRecord, StoreTx } from './store/types.ts';

export async function issueProfileConfirmation(tx: StoreTx, ctx: SmContext, chip: ChipRecord): Promise<void> {
  const pending = chip.profileSwitch;
  if (chip.status !== 'managed' || pending?.state !== 'unconfirmed') return;
  const counterValue = chip.counter + 1;
  await tx.useCounter(chip.eid, counterValue);
  const dataRaw = encodeConfirmProfileSwitchData({ eid: chip.eid, smId: ctx.smId, counterValue });
  const message = encodeConfirmProfileSwitch(dataRaw, ctx.signer.sign(dataRaw));
  await tx.updateChip(chip.eid, {
    profileSwitch: { ...pending, state: 'confirmIssued' },
    updatedAt: ctx.clock(),
  });
  await queueDevice(tx, ctx, 'ConfirmProfileSwitch', message, {
    eid: chip.eid,
    transferId: pending.transferId,
  });
  await audit(tx, ctx, {
    actor: 'device',
    action: 'profileSwitchConfirmIssued',
    operatorId: chip.operatorId,
    eid: chip.eid,
    transferId: pending.transferId,
    details: { counterValue, enableIccid: pending.profileSwitch.enableIccid },
  });
}
