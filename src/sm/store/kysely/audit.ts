/** The append-only, hash-chained audit log (audit-chain.ts computes the chain, as for memory). */
import { chainAuditEntry } from '../../audit-chain.ts';
import type { AuditEntry, AuditFilter, AuditInput, AuditValue } from '../types.ts';
import { detailsIn, intOut, jsonOut, timeIn, timeOut } from './codec.ts';
import type { Conn } from './conn.ts';

interface AuditRow {
  seq: number | string | bigint;
  at: Date | string;
  actor: string;
  action: string;
  operator_id: string | null;
  eid: string | null;
  transfer_id: string | null;
  details: unknown;
  prev_hash: string;
  hash: string;
}

function entryOf(row: AuditRow): AuditEntry {
  return {
    seq: intOut(row.seq),
    at: timeOut(row.at),
    actor: row.actor,
    action: row.action,
    ...(row.operator_id !== null && { operatorId: row.operator_id }),
    ...(row.eid !== null && { eid: row.eid }),
    ...(row.transfer_id !== null && { transferId: row.transfer_id }),
    details: jsonOut<Record<string, AuditValue>>(row.details),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

export async function appendAudit(c: Conn, input: AuditInput): Promise<AuditEntry> {
  const last = await c.run((db) =>
    db.selectFrom('audit').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst(),
  );
  const entry = chainAuditEntry(last && entryOf(last), input);
  await c.run((db) =>
    db
      .insertInto('audit')
      .values({
        seq: entry.seq,
        at: timeIn(entry.at, 'at'),
        actor: entry.actor,
        action: entry.action,
        operator_id: entry.operatorId ?? null,
        eid: entry.eid ?? null,
        transfer_id: entry.transferId ?? null,
        details: detailsIn(entry.details),
        prev_hash: entry.prevHash,
        hash: entry.hash,
      })
      .execute(),
  );
  return entry;
}

export async function listAudit(c: Conn, filter: AuditFilter = {}): Promise<AuditEntry[]> {
  const rows = await c.run((db) => {
    let q = db.selectFrom('audit').selectAll();
    if (filter.operatorId !== undefined) q = q.where('operator_id', '=', filter.operatorId);
    if (filter.eid !== undefined) q = q.where('eid', '=', filter.eid);
    if (filter.transferId !== undefined) q = q.where('transfer_id', '=', filter.transferId);
    return q.orderBy('seq').execute();
  });
  return rows.map(entryOf);
}
