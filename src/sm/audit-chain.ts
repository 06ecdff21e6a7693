/**
 * The audit log's hash chain: each entry's hash is SHA-256 over a canonical JSON of its content
 * and the previous entry's hash, so removing, reordering or editing an entry breaks every hash
 * after it. Pure: the store calls `chainAuditEntry` when appending.
 */
import { createHash } from 'node:crypto';
import type { AuditEntry, AuditInput } from './store/types.ts';

export const GENESIS_HASH = '0'.repeat(64);

function canonical(seq: number, prevHash: string, e: AuditInput): string {
  const details = Object.keys(e.details)
    .sort()
    .map((k) => [k, e.details[k] ?? null]);
  return JSON.stringify([
    seq,
    e.at.toISOString(),
    e.actor,
    e.action,
    e.operatorId ?? null,
    e.eid ?? null,
    e.transferId ?? null,
    details,
    prevHash,
  ]);
}

export function chainAuditEntry(
  previous: Pick<AuditEntry, 'seq' | 'hash'> | undefined,
  input: AuditInput,
): AuditEntry {
  const seq = previous ? previous.seq + 1 : 1;
  const prevHash = previous ? previous.hash : GENESIS_HASH;
  const hash = createHash('sha256')
    .update(canonical(seq, prevHash, input))
    .digest('hex');
  return {
    seq,
    at: new Date(input.at.getTime()),
    actor: input.actor,
    action: input.action,
    ...(input.operatorId !== undefined && { operatorId: input.operatorId }),
    ...(input.eid !== undefined && { eid: input.eid }),
    ...(input.transferId !== undefined && { transferId: input.transferId }),
    details: { ...input.details },
    prevHash,
    hash,
  };
}

/** The seq of the first entry that breaks the chain, or undefined when the whole log is intact. */
export function findAuditBreak(entries: readonly AuditEntry[]): number | undefined {
  let previous: AuditEntry | undefined;
  for (const e of entries) {
    const expected = chainAuditEntry(previous, e);
    if (e.seq !== expected.seq || e.prevHash !== expected.prevHash || e.hash !== expected.hash) return e.seq;
    previous = e;
  }
  return undefined;
}
