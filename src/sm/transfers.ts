/** Operator API reads: transfers and audit entries of the operator's own chips. */
import type { SmContext } from './config.ts';
import { TRANSFER_STATES } from './domain/transfer-states.ts';
import { SmError } from './errors.ts';
import { checkEid, checkId, checkStates, requireOperator } from './input.ts';
import type { AuditEntry } from './store/types.ts';
import { type TransferView, transferView } from './views.ts';

export interface TransferQuery {
  readonly eid?: string;
  readonly direction?: 'outgoing' | 'incoming';
  readonly states?: readonly string[];
  /**
   * Paging: at most `limit` transfers (1..MAX_TRANSFER_PAGE), in id order, after the transfer id
   * `after`. Without a limit every matching transfer, oldest first.
   */
  readonly limit?: number;
  readonly after?: string;
}

/** The largest page of transfers one call returns. */
export const MAX_TRANSFER_PAGE = 1000;

export async function listTransfers(
  ctx: SmContext,
  operatorId: string,
  q: TransferQuery = {},
): Promise<TransferView[]> {
  requireOperator(ctx, operatorId);
  if (q.eid !== undefined) checkEid(q.eid);
  if (q.after !== undefined) checkId(q.after, 'after');
  if (q.after !== undefined && q.limit === undefined) {
    throw new SmError('InvalidInput', 'after pages through transfers: give limit too', { field: 'after' });
  }
  if (q.states !== undefined) checkStates(q.states, TRANSFER_STATES, 'transfer');
  const { limit, after, ...filter } = q;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_TRANSFER_PAGE)) {
    throw new SmError('InvalidInput', `limit is a whole number from 1 to ${MAX_TRANSFER_PAGE}`, {
      field: 'limit',
    });
  }
  return ctx.store.transaction(async (tx) => {
    if (limit !== undefined) {
      const page = await tx.listTransfers({
        ...filter,
        operatorId,
        limit,
        ...(after !== undefined && { afterId: after }),
      });
      return page.map(transferView);
    }
    return (await tx.listTransfers({ ...filter, operatorId }))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      .map(transferView);
  });
}

/** How many of the operator's transfers are in each state (states with none are left out). */
export async function countTransfers(
  ctx: SmContext,
  operatorId: string,
  q: { readonly direction?: 'outgoing' | 'incoming' } = {},
): Promise<Record<string, number>> {
  requireOperator(ctx, operatorId);
  return ctx.store.transaction((tx) => tx.countTransfers({ ...q, operatorId }));
}

export async function getTransfer(
  ctx: SmContext,
  operatorId: string,
  transferId: string,
): Promise<TransferView> {
  requireOperator(ctx, operatorId);
  checkId(transferId, 'transferId');
  return ctx.store.transaction(async (tx) => {
    const t = await tx.getTransfer(transferId);
    // Another operator's transfer is reported as unknown: its existence is not theirs to learn.
    if (!t || t.operatorId !== operatorId) {
      throw new SmError('UnknownTransfer', `no transfer ${transferId}`, { transferId });
    }
    return transferView(t);
  });
}

export async function listAudit(
  ctx: SmContext,
  operatorId: string,
  q: { readonly eid?: string; readonly transferId?: string } = {},
): Promise<AuditEntry[]> {
  requireOperator(ctx, operatorId);
  // As for transfers: a malformed filter is refused, not answered with an empty list.
  if (q.eid !== undefined) checkEid(q.eid);
  if (q.transferId !== undefined) checkId(q.transferId, 'transferId');
  return ctx.store.transaction((tx) => tx.listAudit({ ...q, operatorId }));
}
