/** The append-only, hash-chained audit log (audit-chain.ts computes the chain, as for memory). */
import { type Kysely, sql } from 'kysely';
import { chainAuditEntry } from '../../audit-chain.ts';
import type { AuditEntry, AuditFilter, AuditInput, AuditValue } from '../types.ts';
import { detailsIn, intOut, jsonOut, timeIn, timeOut } from './codec.ts';
import type { AuditHead, Conn } from './conn.ts';
import { prepared } from './prepared.ts';
import type { Values } from './rows.ts';
import type { AuditTable, Database } from './schema.ts';

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

type AuditValues = Values<AuditTable>;

const lastAudit = prepared((db, _: Record<string, never>) =>
  db.selectFrom('audit').select(['seq', 'hash']).orderBy('seq', 'desc').limit(sql.lit(1)),
);
const insertAudit = prepared((db, v: AuditValues) => db.insertInto('audit').values(v));

/** The last entry's seq and hash, or undefined when the log is empty. */
async function readHead(c: Conn): Promise<AuditHead | undefined> {
  const [last] = (await lastAudit<Pick<AuditRow, 'seq' | 'hash'>>(c, {})).rows;
  return last && { seq: intOut(last.seq), hash: last.hash };
}

export async function appendAudit(c: Conn, input: AuditInput): Promise<AuditEntry> {
  // The chain needs only the last entry's seq and hash, read once per group (conn.ts).
  const entry = chainAuditEntry(c.memo?.auditHead ?? (await readHead(c)), input);
  await insertAudit(c, {
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
  });
  // Only once the row is in: a refused insert leaves the head where it was.
  const { memo } = c;
  if (memo) memo.auditHead = { seq: entry.seq, hash: entry.hash };
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

/** One stored audit row as read for verification: its entry, or why it cannot be read. */
export type StoredAuditRow =
  | { readonly seq: number; readonly entry: AuditEntry }
  | { readonly seq: number; readonly unreadable: string };

/**
 * Up to `limit` rows after `afterSeq`, in seq order, each decoded on its own, so that one row
 * edited into nonsense is reported as that row (handover audit verify) instead of failing the read.
 */
export async function readAuditRows(
  db: Kysely<Database>,
  afterSeq: number,
  limit: number,
): Promise<StoredAuditRow[]> {
  const rows = await db
    .selectFrom('audit')
    .selectAll()
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map((row): StoredAuditRow => {
    const seq = intOut(row.seq);
    try {
      const entry = entryOf(row);
      if (Number.isNaN(entry.at.getTime())) throw new Error(`"at" is not a time`);
      return { seq, entry };
    } catch (e) {
      return { seq, unreadable: e instanceof Error ? e.message : String(e) };
    }
  });
}
