/** Bulk transfer jobs and their items (migration 0003). */
import {
  BULK_ITEM_STATES,
  type BulkCounts,
  type BulkItemFilter,
  type BulkItemRecord,
  type BulkItemState,
  type BulkJobFilter,
  type BulkJobRecord,
  type BulkJobState,
  StoreConstraintError,
} from '../types.ts';
import { bytesOrNull, bytesOut, intOut, timeIn, timeOrNull, timeOut } from './codec.ts';
import type { Conn } from './conn.ts';
import { allTaken, type Values } from './rows.ts';
import type { BulkItemsTable, BulkJobsTable } from './schema.ts';
import { OPEN_TRANSFER_STATES } from './transfers.ts';

/** Rows per INSERT statement (well under SQLite's bound-parameter limit). */
const CHUNK = 500;

function jobValues(j: BulkJobRecord): Values<BulkJobsTable> {
  const {
    id,
    operatorId,
    kind,
    peerSmId,
    activationCodeHash,
    concurrency,
    ratePerSecond,
    state,
    createdAt,
    updatedAt,
    ...rest
  } = j;
  allTaken(rest);
  return {
    id,
    operator_id: operatorId,
    kind,
    peer_sm_id: peerSmId,
    activation_code_hash: bytesOrNull(activationCodeHash, 'activationCodeHash'),
    concurrency,
    rate_per_second: ratePerSecond,
    state,
    created_at: timeIn(createdAt, 'createdAt'),
    updated_at: timeIn(updatedAt, 'updatedAt'),
  };
}

interface JobRow {
  id: string;
  operator_id: string;
  kind: string;
  peer_sm_id: string;
  activation_code_hash: Uint8Array | null;
  concurrency: number;
  rate_per_second: number;
  state: string;
  created_at: Date | string;
  updated_at: Date | string;
}

function jobOf(r: JobRow): BulkJobRecord {
  return {
    id: r.id,
    operatorId: r.operator_id,
    kind: r.kind as BulkJobRecord['kind'],
    peerSmId: r.peer_sm_id,
    ...(r.activation_code_hash !== null && { activationCodeHash: bytesOut(r.activation_code_hash) }),
    concurrency: intOut(r.concurrency),
    ratePerSecond: intOut(r.rate_per_second),
    state: r.state as BulkJobState,
    createdAt: timeOut(r.created_at),
    updatedAt: timeOut(r.updated_at),
  };
}

const JOB_COLUMNS = [
  'id',
  'operator_id',
  'kind',
  'peer_sm_id',
  'activation_code_hash',
  'concurrency',
  'rate_per_second',
  'state',
  'created_at',
  'updated_at',
] as const;

function itemValues(i: BulkItemRecord): Values<BulkItemsTable> {
  const { jobId, eid, position, state, transferId, errorCode, errorMessage, startedAt, updatedAt, ...rest } =
    i;
  allTaken(rest);
  return {
    job_id: jobId,
    eid,
    position,
    state,
    transfer_id: transferId ?? null,
    error_code: errorCode ?? null,
    error_message: errorMessage ?? null,
    started_at: timeOrNull(startedAt, 'startedAt'),
    updated_at: timeIn(updatedAt, 'updatedAt'),
  };
}

interface ItemRow {
  job_id: string;
  eid: string;
  position: number;
  state: string;
  transfer_id: string | null;
  error_code: string | null;
  error_message: string | null;
  started_at: Date | string | null;
  updated_at: Date | string;
}

function itemOf(r: ItemRow): BulkItemRecord {
  return {
    jobId: r.job_id,
    eid: r.eid,
    position: intOut(r.position),
    state: r.state as BulkItemState,
    ...(r.transfer_id !== null && { transferId: r.transfer_id }),
    ...(r.error_code !== null && { errorCode: r.error_code }),
    ...(r.error_message !== null && { errorMessage: r.error_message }),
    ...(r.started_at !== null && { startedAt: timeOut(r.started_at) }),
    updatedAt: timeOut(r.updated_at),
  };
}

const ITEM_COLUMNS = [
  'job_id',
  'eid',
  'position',
  'state',
  'transfer_id',
  'error_code',
  'error_message',
  'started_at',
  'updated_at',
] as const;

export async function insertBulkJob(
  c: Conn,
  job: BulkJobRecord,
  items: readonly BulkItemRecord[],
): Promise<void> {
  if (await getBulkJob(c, job.id))
    throw new StoreConstraintError('InvalidInput', `bulk job id ${job.id} exists`);
  const eids = new Set<string>();
  items.forEach((item, i) => {
    if (item.jobId !== job.id || item.position !== i || eids.has(item.eid)) {
      throw new StoreConstraintError(
        'InvalidInput',
        "bulk items are the job's, in position order, EIDs distinct",
      );
    }
    eids.add(item.eid);
  });
  const values = jobValues(job);
  await c.run((db) => db.insertInto('bulk_jobs').values(values).execute(), { id: `bulk job id ${job.id}` });
  for (let i = 0; i < items.length; i += CHUNK) {
    const rows = items.slice(i, i + CHUNK).map(itemValues);
    await c.run((db) => db.insertInto('bulk_items').values(rows).execute());
  }
}

export async function getBulkJob(c: Conn, id: string): Promise<BulkJobRecord | undefined> {
  const row = await c.run((db) =>
    db.selectFrom('bulk_jobs').select(JOB_COLUMNS).where('id', '=', id).executeTakeFirst(),
  );
  return row && jobOf(row);
}

export async function listBulkJobs(c: Conn, filter: BulkJobFilter = {}): Promise<BulkJobRecord[]> {
  const states = filter.states;
  if (states !== undefined && states.length === 0) return [];
  const rows = await c.run((db) => {
    let q = db.selectFrom('bulk_jobs').select(JOB_COLUMNS);
    if (states !== undefined) q = q.where('state', 'in', states);
    if (filter.withStartedItems) {
      // One probe of the index bulk_items_state (job_id, state, position) per job.
      q = q.where(({ exists, selectFrom }) =>
        exists(
          selectFrom('bulk_items')
            .select('bulk_items.position')
            .whereRef('bulk_items.job_id', '=', 'bulk_jobs.id')
            .where('bulk_items.state', '=', 'started'),
        ),
      );
    }
    return q.orderBy('pos').execute();
  });
  return rows.map(jobOf);
}

export async function saveBulkJob(c: Conn, job: BulkJobRecord): Promise<void> {
  if (!(await getBulkJob(c, job.id))) throw new StoreConstraintError('InvalidInput', `no bulk job ${job.id}`);
  const { id: _id, ...values } = jobValues(job);
  await c.run((db) => db.updateTable('bulk_jobs').set(values).where('id', '=', job.id).execute());
}

export async function listBulkItems(
  c: Conn,
  jobId: string,
  filter: BulkItemFilter = {},
): Promise<BulkItemRecord[]> {
  const states = filter.states;
  if (states !== undefined && states.length === 0) return [];
  const rows = await c.run((db) => {
    let q = db.selectFrom('bulk_items').select(ITEM_COLUMNS).where('job_id', '=', jobId);
    if (states !== undefined) q = q.where('state', 'in', states);
    if (filter.startedSince !== undefined)
      q = q.where('started_at', '>=', timeIn(filter.startedSince, 'startedSince'));
    if (filter.afterPosition !== undefined) q = q.where('position', '>', filter.afterPosition);
    if (filter.transferEnded === true) {
      q = q.where((eb) =>
        eb.or([
          eb('transfer_id', 'is', null),
          eb.not(
            eb.exists(
              eb
                .selectFrom('transfers')
                .select('transfers.id')
                .whereRef('transfers.id', '=', 'bulk_items.transfer_id')
                .where('transfers.state', 'in', OPEN_TRANSFER_STATES),
            ),
          ),
        ]),
      );
    }
    q = q.orderBy('position');
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    return q.execute();
  });
  return rows.map(itemOf);
}

export async function countBulkItems(
  c: Conn,
  jobId: string,
  filter: { readonly startedSince?: Date } = {},
): Promise<BulkCounts> {
  const rows = await c.run((db) => {
    let q = db
      .selectFrom('bulk_items')
      .select((eb) => ['state', eb.fn.countAll<number | string | bigint>().as('n')])
      .where('job_id', '=', jobId);
    if (filter.startedSince !== undefined)
      q = q.where('started_at', '>=', timeIn(filter.startedSince, 'startedSince'));
    return q.groupBy('state').execute();
  });
  const counts = Object.fromEntries(BULK_ITEM_STATES.map((s) => [s, 0])) as BulkCounts;
  for (const r of rows) counts[r.state as BulkItemState] = intOut(r.n);
  return counts;
}

export async function saveBulkItem(c: Conn, item: BulkItemRecord): Promise<void> {
  const { job_id: _j, position: _p, eid: _e, ...values } = itemValues(item);
  const r = await c.run((db) =>
    db
      .updateTable('bulk_items')
      .set(values)
      .where('job_id', '=', item.jobId)
      .where('position', '=', item.position)
      .where('eid', '=', item.eid)
      .executeTakeFirst(),
  );
  if (Number(r.numUpdatedRows) !== 1) {
    throw new StoreConstraintError('InvalidInput', `no bulk item ${item.jobId}/${item.position}`);
  }
}
