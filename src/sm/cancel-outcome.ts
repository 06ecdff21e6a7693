/**
 * Peer API at the new SM (PROTOCOL.md §6.6): the current SM passes on the chip-signed outcome of
 * a cancellation. With keys established, the chip's signature is checked against the chip
 * certificate of the accepted request, and the chip's word decides: moved here → completed,
 * stayed → failed (keys wiped). Before that, no keys exist and the authenticated current SM's
 * word that the chip stayed suffices to end the port-in.
 */
import { decodeChipResult } from '../protocol/asn1/results.ts';
import { bytesEqual } from '../protocol/pki/certificate.ts';
import { storedChipKey, verifyChipSignature } from './chip-identity.ts';
import type { SmContext } from './config.ts';
import { isOpenTransfer } from './domain/transfer-states.ts';
import { SmError } from './errors.ts';
import { finishIncoming } from './finish-transfer.ts';
import { checkBytes, checkId, checkSmId } from './input.ts';
import type { PeerReply } from './peer-api.ts';
import { endIncoming } from './port-in.ts';
import type { IncomingTransfer } from './store/types.ts';

export interface CancelOutcome {
  readonly permissionId: Uint8Array;
  readonly askId?: string;
  readonly chipResult: Uint8Array;
}

export async function handleCancelOutcome(
  ctx: SmContext,
  callerSmId: string,
  o: CancelOutcome,
): Promise<PeerReply> {
  checkSmId(callerSmId, 'callerSmId');
  const permissionId = checkBytes(o.permissionId, 'permissionId');
  const askId = o.askId === undefined ? undefined : checkId(o.askId, 'askId');
  const raw = Uint8Array.from(checkBytes(o.chipResult, 'chipResult'));
  const result = decodeChipResult(raw);
  const d = result.data;
  if (!d.permissionId || !bytesEqual(d.permissionId, permissionId)) {
    throw new SmError('ResultMismatch', 'the ChipResult is not about this permissionId');
  }
  return ctx.store.transaction(async (tx) => {
    let t = await tx.findTransferByPermissionId(permissionId);
    if (!t && askId !== undefined) t = await tx.getTransfer(askId);
    // Nothing here for this permission (no ask, no request): nothing to end.
    if (t?.direction !== 'incoming') return { type: 'Ack' };
    if (t.peerSmId !== callerSmId) {
      throw new SmError('NotAuthorised', `transfer ${t.id} is with ${t.peerSmId}, not ${callerSmId}`);
    }
    if (t.eid !== d.eid)
      throw new SmError('ResultMismatch', `the ChipResult is for EID ${d.eid}, not ${t.eid}`);
    if (!isOpenTransfer(t)) return { type: 'Ack' };
    const moved = d.outcome === 'notCurrentSm' && d.assignedSmId === ctx.smId;
    const stayed = (d.outcome === 'ok' || d.outcome === 'noPending') && d.assignedSmId === t.peerSmId;
    const actor = `peer:${callerSmId}`;
    if (t.state === 'keyEstablished') {
      const request = (t as IncomingTransfer).request!;
      verifyChipSignature(
        storedChipKey(request.chipCertificate),
        result.dataRaw,
        result.signature,
        'ChipResultData',
      );
      if (moved) await finishIncoming(tx, ctx, t, raw, actor);
      else if (stayed) await endIncoming(tx, ctx, t, 'chipStayed', 'cancelled', actor);
      else
        throw new SmError(
          'ResultMismatch',
          `outcome ${d.outcome} (assigned to ${d.assignedSmId}) ends nothing`,
        );
      return { type: 'Ack' };
    }
    // Without our HandoverCommand the chip cannot have moved here.
    if (!stayed)
      throw new SmError(
        'ResultMismatch',
        `outcome ${d.outcome} (assigned to ${d.assignedSmId}) ends nothing`,
      );
    await endIncoming(tx, ctx, t, 'chipStayed', 'cancelled', actor);
    return { type: 'Ack' };
  });
}
