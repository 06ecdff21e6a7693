/**
 * PROTOCOL.md §6.5. New SM: the chip's HandoverResult (receipt, chip-signed) completes the
 * transfer and is passed on to the current SM. Current SM: the relayed HandoverResult, checked
 * against the chip certificate it holds, releases the chip.
 */
import {
  decodeHandoverCommand,
  decodeHandoverResult,
  type HandoverResult,
} from '../protocol/asn1/handover.ts';
import { receiptValid } from '../protocol/handover-keys.ts';
import { bytesEqual } from '../protocol/pki/certificate.ts';
import { storedChipKey, verifyChipSignature } from './chip-identity.ts';
import type { SmContext } from './config.ts';
import { queuePeer } from './effects.ts';
import { SmError } from './errors.ts';
import { finishIncoming, finishOutgoing } from './finish-transfer.ts';
import { checkBytes, checkSmId } from './input.ts';
import type { PeerReply } from './peer-api.ts';

export interface CompletionResult {
  readonly transferId: string;
  readonly state: string;
}

/** Whether `evidence` (stored) is the same chip statement as `result`: same signed data. */
function sameStatement(evidence: Uint8Array | undefined, result: HandoverResult): boolean {
  if (!evidence) return false;
  if (bytesEqual(evidence, result.raw)) return true;
  try {
    return bytesEqual(decodeHandoverResult(evidence).dataRaw, result.dataRaw);
  } catch {
    return false;
  }
}

function mismatch(what: string, expected: string, got: string): SmError {
  return new SmError('ResultMismatch', `the HandoverResult's ${what} is ${got}, expected ${expected}`, {
    field: what,
    expected,
    got,
  });
}

/** Device API at the new SM. */
export async function postHandoverResult(ctx: SmContext, bytes: Uint8Array): Promise<CompletionResult> {
  const raw = Uint8Array.from(checkBytes(bytes, 'HandoverResult'));
  const result = decodeHandoverResult(raw);
  const d = result.data;
  return ctx.store.transaction(async (tx) => {
    const t = await tx.findTransferByPermissionId(d.permissionId);
    if (t?.direction !== 'incoming' || !t.request) {
      throw new SmError('UnknownPermission', 'no transfer request with this permissionId was accepted here');
    }
    if (d.eid !== t.eid) throw mismatch('eid', t.eid, d.eid);
    if (d.previousSmId !== t.peerSmId) throw mismatch('previousSmId', t.peerSmId, d.previousSmId);
    if (d.newSmId !== ctx.smId) throw mismatch('newSmId', ctx.smId, d.newSmId);
    verifyChipSignature(
      storedChipKey(t.request.chipCertificate),
      result.dataRaw,
      result.signature,
      'HandoverResultData',
    );
    if (t.state === 'completed' && sameStatement(t.evidence, result))
      return { transferId: t.id, state: t.state };
    if (t.state !== 'keyEstablished' || !t.receiptKey) {
      throw new SmError('InvalidState', `transfer ${t.id} is ${t.state}`, {
        transferId: t.id,
        state: t.state,
      });
    }
    const commandDataRaw = decodeHandoverCommand(t.request.handoverCommand).dataRaw;
    if (!receiptValid(t.receiptKey, commandDataRaw, d.receipt)) {
      throw new SmError(
        'ReceiptInvalid',
        'the receipt does not match the keys established for this transfer',
        {
          transferId: t.id,
        },
      );
    }
    const done = await finishIncoming(tx, ctx, t, raw, 'device');
    await queuePeer(
      tx,
      ctx,
      t.peerSmId,
      { type: 'Completed', handoverResult: raw },
      { eid: t.eid, transferId: t.id },
    );
    return { transferId: done.id, state: done.state };
  });
}

/** Peer API at the current SM: the new SM relays the chip's HandoverResult. */
export async function handleCompleted(
  ctx: SmContext,
  callerSmId: string,
  bytes: Uint8Array,
): Promise<PeerReply> {
  checkSmId(callerSmId, 'callerSmId');
  const raw = Uint8Array.from(checkBytes(bytes, 'HandoverResult'));
  const result = decodeHandoverResult(raw);
  const d = result.data;
  return ctx.store.transaction(async (tx) => {
    const t = await tx.findTransferByPermissionId(d.permissionId);
    if (t?.direction !== 'outgoing') {
      throw new SmError('UnknownPermission', 'this SM issued no permission with this permissionId');
    }
    if (t.peerSmId !== callerSmId) {
      throw new SmError('NotAuthorised', `the permission names ${t.peerSmId}, not ${callerSmId}`, {
        callerSmId,
      });
    }
    if (d.eid !== t.eid) throw mismatch('eid', t.eid, d.eid);
    if (d.previousSmId !== ctx.smId) throw mismatch('previousSmId', ctx.smId, d.previousSmId);
    if (d.newSmId !== t.peerSmId) throw mismatch('newSmId', t.peerSmId, d.newSmId);
    const chip = await tx.getChip(t.eid);
    if (!chip) throw new SmError('ChipNotManaged', `chip ${t.eid} is not known here`, { eid: t.eid });
    verifyChipSignature(
      storedChipKey(chip.chipCertificate),
      result.dataRaw,
      result.signature,
      'HandoverResultData',
    );
    if (t.state === 'completed') return { type: 'Ack' };
    if (t.state !== 'permitted' && t.state !== 'delivered') {
      throw new SmError('TransferEnded', `transfer ${t.id} already ended as ${t.state}`, {
        transferId: t.id,
        state: t.state,
      });
    }
    await finishOutgoing(tx, ctx, t, 'chipMoved', raw, `peer:${callerSmId}`);
    return { type: 'Ack' };
  });
}
