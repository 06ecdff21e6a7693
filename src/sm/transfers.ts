/** Operator API reads: transfers and audit entries of the operator's own chips. */
import type { SmContext } from './config.ts';
import { SmError } from './errors.ts';
import { checkEid, checkId, requireOperator } from './input.ts';
import type { AuditEntry } from './store/types.ts';
import { type TransferView, transferView } from './views.ts';

export interface TransferQuery {
  readonly eid?: string;
  readonly direction?: 'outgoing' | 'incoming';
  readonly states?: readonly string[];
}

export async function listTransfers(
  ctx: SmContext,
  operatorId: string,
  q: TransferQuery = {},
): Promise<TransferView[]> {
  requireOperator(ctx, operatorId);
  if (q.eid !== undefined) checkEid(q.eid);
  return ctx.store.transaction(async (tx) =>
    (await tx.listTransfers({ ...q, operatorId }))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
      .map(transferView),
  );
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
  return ctx.store.transaction((tx) => tx.listAudit({ ...q, operatorId }));
}
