/**
 * Device API: a chip-signed ChipResult, checked against the chip certificate this SM holds.
 * At the current SM it may end a transfer (§6.6): `notCurrentSm` with the new SM as assignment
 * means the chip moved (completed, released); `ok`/`noPending` with this SM as assignment, once a
 * CancelPermission was issued, means it stayed (cancelled). Either way the new SM is told.
 * At the new SM, a result about the pending profile switch (§7) confirms it or reports its rollback.
 * Any other result is recorded (audit, operator notification) and changes no state.
 */
import { decodeChipResult, type Outcome } from '../protocol/asn1/results.ts';
import { bytesEqual } from '../protocol/pki/certificate.ts';
import { storedChipKey, verifyChipSignature } from './chip-identity.ts';
import type { SmContext } from './config.ts';
import { isOpenTransfer } from './domain/transfer-states.ts';
import { audit, hex, notifyOperator, queuePeer, retireDeviceMessages } from './effects.ts';
import { SmError } from './errors.ts';
import { finishOutgoing } from './finish-transfer.ts';
import { checkBytes } from './input.ts';
import type { ProfileSwitchRecord } from './store/types.ts';

export interface ChipResultOutcome {
  readonly effect: 'completed' | 'cancelled' | 'confirmed' | 'rolledBack' | 'recorded' | 'unchanged';
  readonly outcome: Outcome;
  readonly transferId?: string;
  readonly state?: string;
}

/**
 * What a chip's answer about a profile switch means (§7). The chip answers ConfirmProfileSwitch
 * and ProfileRollback alike (`ok`, naming the handover's permissionId), so the meaning comes
 * from what this SM sent: before a confirmation was issued, `ok` can only be a rollback; after,
 * `ok` confirms and `noPending` says there was nothing left to confirm.
 */
function switchOutcome(
  state: ProfileSwitchRecord['state'],
  outcome: Outcome,
): ProfileSwitchRecord['state'] | undefined {
  if (state === 'unconfirmed' && outcome === 'ok') return 'rolledBack';
  if (state === 'confirmIssued' && outcome === 'ok') return 'confirmed';
  if (state === 'confirmIssued' && outcome === 'noPending') return 'closed';
  return undefined;
}

export async function postChipResult(ctx: SmContext, bytes: Uint8Array): Promise<ChipResultOutcome> {
  const raw = Uint8Array.from(checkBytes(bytes, 'ChipResult'));
  const result = decodeChipResult(raw);
  const d = result.data;
  return ctx.store.transaction(async (tx): Promise<ChipResultOutcome> => {
    const chip = await tx.getChip(d.eid);
    if (!chip) throw new SmError('ChipNotManaged', `chip ${d.eid} is not known here`, { eid: d.eid });
    verifyChipSignature(
      storedChipKey(chip.chipCertificate),
      result.dataRaw,
      result.signature,
      'ChipResultData',
    );
    const record = async (transferId?: string): Promise<ChipResultOutcome> => {
      await audit(tx, ctx, {
        actor: 'device',
        action: 'chipResult',
        operatorId: chip.operatorId,
        eid: d.eid,
        ...(transferId !== undefined && { transferId }),
        details: {
          outcome: d.outcome,
          assignedSmId: d.assignedSmId,
          permissionId: d.permissionId ? hex(d.permissionId) : null,
        },
      });
      if (d.outcome !== 'ok') {
        await notifyOperator(tx, ctx, chip.operatorId, 'chipRefused', {
          eid: d.eid,
          ...(transferId !== undefined && { transferId }),
        });
      }
      return { effect: 'recorded', outcome: d.outcome, ...(transferId !== undefined && { transferId }) };
    };

    const ps = chip.profileSwitch;
    const aboutSwitch =
      ps !== undefined &&
      d.assignedSmId === ctx.smId &&
      (!d.permissionId || bytesEqual(d.permissionId, ps.permissionId));
    if (aboutSwitch) {
      const state = switchOutcome(ps.state, d.outcome);
      if (!state) return record(ps.transferId);
      await tx.updateChip(d.eid, { profileSwitch: { ...ps, state }, updatedAt: ctx.clock() });
      await retireDeviceMessages(tx, { eid: d.eid }, ['ConfirmProfileSwitch']);
      await audit(tx, ctx, {
        actor: 'device',
        action: state === 'rolledBack' ? 'profileSwitchRolledBack' : 'profileSwitchConfirmed',
        operatorId: chip.operatorId,
        eid: d.eid,
        transferId: ps.transferId,
        details: { outcome: d.outcome, state },
      });
      return {
        effect: state === 'rolledBack' ? 'rolledBack' : 'confirmed',
        outcome: d.outcome,
        transferId: ps.transferId,
        state,
      };
    }
    if (!d.permissionId) return record();

    const t = await tx.findTransferByPermissionId(d.permissionId);
    if (!t) throw new SmError('UnknownPermission', 'no transfer here has this permissionId');
    // The signature is the chip's of d.eid: it speaks for that chip's transfers only. A permissionId
    // is no secret (it travels in the permission the device polls), so another chip's result
    // naming it must not end, or be recorded against, this transfer.
    if (t.eid !== d.eid) {
      throw new SmError('ResultMismatch', `the ChipResult is for EID ${d.eid}, not the transfer's ${t.eid}`, {
        eid: d.eid,
      });
    }
    if (t.direction === 'incoming') return record(t.id);
    if (!isOpenTransfer(t)) {
      return { effect: 'unchanged', outcome: d.outcome, transferId: t.id, state: t.state };
    }
    const moved = d.outcome === 'notCurrentSm' && d.assignedSmId === t.peerSmId;
    const stayed =
      (d.outcome === 'ok' || d.outcome === 'noPending') &&
      d.assignedSmId === ctx.smId &&
      t.cancel !== undefined;
    if (!moved && !stayed) return record(t.id);
    const ended = await finishOutgoing(tx, ctx, t, moved ? 'chipMoved' : 'chipStayed', raw, 'device');
    await queuePeer(
      tx,
      ctx,
      t.peerSmId,
      {
        type: 'CancelOutcome',
        permissionId: d.permissionId,
        ...(t.peerAskId !== undefined && { askId: t.peerAskId }),
        chipResult: raw,
      },
      { eid: t.eid, transferId: t.id },
    );
    return {
      effect: moved ? 'completed' : 'cancelled',
      outcome: d.outcome,
      transferId: t.id,
      state: ended.state,
    };
  });
}
