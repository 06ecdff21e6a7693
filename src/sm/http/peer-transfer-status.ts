/**
 * Peer API "read its status" (PROTOCOL.md §9): a peer SM reads a transfer of this SM by this
 * SM's transfer id (the id its TransferAskAccepted carried), and only a transfer it is the other
 * side of. Anything else is reported as unknown: its existence is not the caller's to learn.
 * Operator ids, keys and message bytes are not shown.
 */
import { hex } from '../effects.ts';
import { SmError } from '../errors.ts';
import { checkId } from '../input.ts';
import type { SmStore } from '../store/types.ts';

export interface PeerTransferStatus {
  readonly transferId: string;
  /** This SM's role in the transfer. */
  readonly role: 'currentSm' | 'newSm';
  readonly eid: string;
  readonly state: string;
  /** Hex. */
  readonly permissionId?: string;
  /** The caller's own id for the transfer (its askId), when it gave one. */
  readonly peerTransferId?: string;
  readonly endReason?: string;
  readonly updatedAt: Date;
}

export async function peerTransferStatus(
  store: SmStore,
  callerSmId: string,
  transferId: string,
): Promise<PeerTransferStatus> {
  checkId(transferId, 'transferId');
  const t = await store.transaction((tx) => tx.getTransfer(transferId));
  if (!t || t.peerSmId !== callerSmId) {
    throw new SmError('UnknownTransfer', `no transfer ${transferId} with ${callerSmId}`, { transferId });
  }
  const peerTransferId = t.direction === 'outgoing' ? t.peerAskId : t.peerTransferId;
  return {
    transferId: t.id,
    role: t.direction === 'outgoing' ? 'currentSm' : 'newSm',
    eid: t.eid,
    state: t.state,
    ...(t.permissionId && { permissionId: hex(t.permissionId) }),
    ...(peerTransferId !== undefined && { peerTransferId }),
    ...(t.endReason !== undefined && { endReason: t.endReason }),
    updatedAt: t.updatedAt,
  };
}
