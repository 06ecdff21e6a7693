/**
 * PROTOCOL.md §6.1, the signing step: counter + 1 (used in this same transaction), a fresh
 * permissionId, notAfter = now + validity, TransferPermissionData signed by this SM, and the
 * TransferPermissionMessage queued for the device.
 */
import {
  encodeTransferPermission,
  encodeTransferPermissionData,
  encodeTransferPermissionMessage,
  type TransferPermissionData,
} from '../protocol/asn1/permission.ts';
import type { SmContext } from './config.ts';
import { advance, CURRENT_SM } from './domain/transfer-states.ts';
import { audit, hex, notifyOperator, queueDevice } from './effects.ts';
import type { TrustedPeer } from './peers.ts';
import type { ChipRecord, OutgoingTransfer, StoreTx } from './store/types.ts';

/** Whole seconds: GeneralizedTime in the permission carries no fraction. */
const floorToSecond = (ms: number): Date => new Date(Math.floor(ms / 1000) * 1000);

export async function issuePermission(
  tx: StoreTx,
  ctx: SmContext,
  transfer: OutgoingTransfer,
  chip: ChipRecord,
  peer: TrustedPeer,
  actor: string,
): Promise<OutgoingTransfer> {
  const now = ctx.clock();
  const state = advance(CURRENT_SM, transfer.state, 'issuePermission');
  const counterValue = chip.counter + 1;
  await tx.useCounter(chip.eid, counterValue);
  const data: TransferPermissionData = {
    version: 1,
    permissionId: ctx.random(16),
    eid: chip.eid,
    currentSmId: ctx.smId,
    newSmId: peer.smId,
    newSmAddress: peer.address,
    counterValue,
    notAfter: floorToSecond(now.getTime() + ctx.permissionValidityMs),
    ...(transfer.activationCodeHash && { activationCodeHash: transfer.activationCodeHash }),
    ...(transfer.profileSwitch && { profileSwitch: transfer.profileSwitch }),
  };
  const dataRaw = encodeTransferPermissionData(data);
  const signature = ctx.signer.sign(dataRaw);
  const permission = { data, dataRaw, signature, raw: encodeTransferPermission(dataRaw, signature) };
  const message = encodeTransferPermissionMessage({
    permission,
    currentSmCertificate: ctx.certificate,
    newSmCertificate: peer.certificate,
  });
  const { approvalDeadline: _done, ...rest } = transfer;
  const issued: OutgoingTransfer = {
    ...rest,
    state,
    permissionId: data.permissionId,
    newSmAddress: peer.address,
    permission: { counterValue, notAfter: data.notAfter, message, issuedAt: now },
    updatedAt: now,
  };
  await tx.saveTransfer(issued);
  await tx.updateChip(chip.eid, { status: 'transferring', updatedAt: now });
  await queueDevice(tx, ctx, 'TransferPermissionMessage', message, {
    eid: chip.eid,
    transferId: transfer.id,
  });
  await audit(tx, ctx, {
    actor,
    action: 'permissionIssued',
    operatorId: transfer.operatorId,
    eid: chip.eid,
    transferId: transfer.id,
    details: {
      permissionId: hex(data.permissionId),
      counterValue,
      newSmId: peer.smId,
      notAfter: data.notAfter.toISOString(),
      activationCode: data.activationCodeHash !== undefined,
      profileSwitch: data.profileSwitch !== undefined,
    },
  });
  await notifyOperator(tx, ctx, transfer.operatorId, 'permissionIssued', {
    eid: chip.eid,
    transferId: transfer.id,
    state,
  });
  return issued;
}
