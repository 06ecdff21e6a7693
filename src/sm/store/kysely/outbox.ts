/**
 * The outbox (peer messages, operator notifications, device messages). On PostgreSQL a listing
 * of due items (`dueAt`, what delivery uses) takes the rows FOR UPDATE SKIP LOCKED: replicas
 * draining at the same moment get disjoint batches instead of waiting on each other.
 */
import type { OperatorNotification, PeerMessage } from '../../peer-api.ts';
import {
  type DeviceMessageKind,
  type DeviceOutboxItem,
  type OperatorOutboxItem,
  type OutboxFilter,
  type OutboxItem,
  type PeerOutboxItem,
  StoreConstraintError,
} from '../types.ts';
import { bytesIn, bytesOut, jsonIn, jsonOrNull, jsonOut, timeIn, timeOrNull, timeOut } from './codec.ts';
import type { Conn } from './conn.ts';
import { prepared } from './prepared.ts';
import {
  allTaken,
  changedValues,
  chunked,
  insertUnlessTaken,
  recalled,
  remember,
  type Values,
} from './rows.ts';
import type { OutboxTable } from './schema.ts';

type OutboxValues = Values<OutboxTable>;

const NO_PEER = { target_sm_id: null, message: null } as const;
const NO_OPERATOR = { operator_id: null, notification: null } as const;
const NO_DELIVERY = { attempts: null, next_attempt_at: null, last_error: null, delivered_at: null } as const;
const NO_DEVICE = { kind: null, bytes: null, deliveries: null, last_delivered_at: null } as const;

function peerValues(i: PeerOutboxItem): OutboxValues {
  const {
    id,
    channel,
    createdAt,
    eid,
    transferId,
    targetSmId,
    message,
    state,
    attempts,
    nextAttemptAt,
    lastError,
    deliveredAt,
    ...rest
  } = i;
  allTaken(rest);
  return {
    id,
    channel,
    eid,
    transfer_id: transferId ?? null,
    created_at: timeIn(createdAt, 'createdAt'),
    state,
    target_sm_id: targetSmId,
    message: jsonIn(message, 'message'),
    ...NO_OPERATOR,
    attempts,
    next_attempt_at: timeIn(nextAttemptAt, 'nextAttemptAt'),
    last_error: jsonOrNull(lastError, 'lastError'),
    delivered_at: timeOrNull(deliveredAt, 'deliveredAt'),
    ...NO_DEVICE,
  };
}

function operatorValues(i: OperatorOutboxItem): OutboxValues {
  const {
    id,
    channel,
    createdAt,
    eid,
    transferId,
    operatorId,
    notification,
    state,
    attempts,
    nextAttemptAt,
    lastError,
    deliveredAt,
    ...rest
  } = i;
  allTaken(rest);
  return {
    id,
    channel,
    eid,
    transfer_id: transferId ?? null,
    created_at: timeIn(createdAt, 'createdAt'),
    state,
    ...NO_PEER,
    operator_id: operatorId,
    notification: jsonIn(notification, 'notification'),
    attempts,
    next_attempt_at: timeIn(nextAttemptAt, 'nextAttemptAt'),
    last_error: jsonOrNull(lastError, 'lastError'),
    delivered_at: timeOrNull(deliveredAt, 'deliveredAt'),
    ...NO_DEVICE,
  };
}

function deviceValues(i: DeviceOutboxItem): OutboxValues {
  const {
    id,
    channel,
    createdAt,
    eid,
    transferId,
    kind,
    bytes,
    state,
    deliveries,
    lastDeliveredAt,
    ...rest
  } = i;
  allTaken(rest);
  return {
    id,
    channel,
    eid,
    transfer_id: transferId ?? null,
    created_at: timeIn(createdAt, 'createdAt'),
    state,
    ...NO_PEER,
    ...NO_OPERATOR,
    ...NO_DELIVERY,
    kind,
    bytes: bytesIn(bytes, 'bytes'),
    deliveries,
    last_delivered_at: timeOrNull(lastDeliveredAt, 'lastDeliveredAt'),
  };
}

function outboxValues(i: OutboxItem): OutboxValues {
  switch (i.channel) {
    case 'peer':
      return peerValues(i);
    case 'operator':
      return operatorValues(i);
    case 'device':
      return deviceValues(i);
  }
}

interface OutboxRow {
  id: string;
  channel: OutboxItem['channel'];
  eid: string;
  transfer_id: string | null;
  created_at: Date | string;
  state: string;
  target_sm_id: string | null;
  message: unknown;
  operator_id: string | null;
  notification: unknown;
  attempts: number | null;
  next_attempt_at: Date | string | null;
  last_error: unknown;
  delivered_at: Date | string | null;
  kind: string | null;
  bytes: Uint8Array | null;
  deliveries: number | null;
  last_delivered_at: Date | string | null;
}

function outboxOf(row: OutboxRow): OutboxItem {
  const common = {
    id: row.id,
    createdAt: timeOut(row.created_at),
    eid: row.eid,
    ...(row.transfer_id !== null && { transferId: row.transfer_id }),
  };
  if (row.channel === 'device') {
    return {
      ...common,
      channel: 'device',
      kind: row.kind as DeviceMessageKind,
      bytes: bytesOut(row.bytes ?? new Uint8Array()),
      state: row.state as DeviceOutboxItem['state'],
      deliveries: row.deliveries ?? 0,
      ...(row.last_delivered_at !== null && { lastDeliveredAt: timeOut(row.last_delivered_at) }),
    };
  }
  const delivery = {
    state: row.state as PeerOutboxItem['state'],
    attempts: row.attempts ?? 0,
    nextAttemptAt: timeOut(row.next_attempt_at ?? 0),
    ...(row.last_error !== null && { lastError: jsonOut<{ code: string; message: string }>(row.last_error) }),
    ...(row.delivered_at !== null && { deliveredAt: timeOut(row.delivered_at) }),
  };
  if (row.channel === 'peer') {
    return {
      ...common,
      ...delivery,
      channel: 'peer',
      targetSmId: row.target_sm_id ?? '',
      message: jsonOut<PeerMessage>(row.message),
    };
  }
  return {
    ...common,
    ...delivery,
    channel: 'operator',
    operatorId: row.operator_id ?? '',
    notification: jsonOut<OperatorNotification>(row.notification),
  };
}

const COLUMNS = [
  'id',
  'channel',
  'eid',
  'transfer_id',
  'created_at',
  'state',
  'target_sm_id',
  'message',
  'operator_id',
  'notification',
  'attempts',
  'next_attempt_at',
  'last_error',
  'delivered_at',
  'kind',
  'bytes',
  'deliveries',
  'last_delivered_at',
] as const;

// The statements every transfer runs, built once (prepared.ts).
const idExists = prepared((db, p: { id: string }) =>
  db.selectFrom('outbox').select('id').where('id', '=', p.id),
);
const rowById = prepared((db, p: { id: string }) =>
  db.selectFrom('outbox').select(COLUMNS).where('id', '=', p.id),
);
const insertRow = prepared((db, v: OutboxValues) =>
  db
    .insertInto('outbox')
    .values(v)
    .onConflict((oc) => oc.column('id').doNothing()),
);
const updateRow = prepared((db, p: Partial<OutboxValues> & { id: string }) => {
  const { id, ...set } = p;
  return db.updateTable('outbox').set(set).where('id', '=', id);
});

export async function enqueue(c: Conn, item: OutboxItem): Promise<void> {
  const row = await insertUnlessTaken(
    { key: `outbox id ${item.id}`, taken: async () => (await idExists(c, { id: item.id })).rows.length > 0 },
    async () => {
      const row = outboxValues(item);
      return { row, result: await insertRow(c, row, { eid: item.eid, id: `outbox id ${item.id}` }) };
    },
  );
  remember(c, 'outbox', row);
}

export async function getOutbox(c: Conn, id: string): Promise<OutboxItem | undefined> {
  const [row] = (await rowById<OutboxRow>(c, { id })).rows;
  return row && outboxOf(remember(c, 'outbox', row));
}

/** Writes the columns that changed since the row was read (rows.ts: changedValues). */
export async function saveOutbox(c: Conn, item: OutboxItem): Promise<void> {
  // As this transaction last read or wrote it (conn.ts), or read now (see saveTransfer).
  const existing =
    (recalled(c, 'outbox', item.id) as OutboxRow | undefined) ??
    (await rowById<OutboxRow>(c, { id: item.id })).rows[0];
  if (!existing || existing.channel !== item.channel) {
    throw new StoreConstraintError('InvalidInput', `no ${item.channel} outbox item ${item.id}`);
  }
  const { id: _id, ...values } = outboxValues(item);
  const changed = changedValues(values, existing);
  if (Object.keys(changed).length === 0) return;
  await updateRow(c, { ...changed, id: item.id }, { eid: item.eid });
  remember(c, 'outbox', { ...existing, ...changed, id: item.id });
}

export async function listOutbox(c: Conn, filter: OutboxFilter = {}): Promise<OutboxItem[]> {
  const { states, dueAt } = filter;
  if (states !== undefined && states.length === 0) return [];
  const due = dueAt === undefined ? undefined : timeIn(dueAt, 'dueAt');
  const rows = await c.run((db) => {
    let q = db.selectFrom('outbox').select(COLUMNS);
    if (filter.channel !== undefined) q = q.where('channel', '=', filter.channel);
    if (filter.eid !== undefined) q = q.where('eid', '=', filter.eid);
    if (filter.transferId !== undefined) q = q.where('transfer_id', '=', filter.transferId);
    if (states !== undefined) q = q.where('state', 'in', states);
    if (due !== undefined) q = q.where('channel', '<>', 'device').where('next_attempt_at', '<=', due);
    q = q.orderBy('pos');
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    if (due !== undefined && c.dialect === 'postgres') q = q.forUpdate().skipLocked();
    return q.execute();
  });
  return rows.map((r) => outboxOf(remember(c, 'outbox', r)));
}

/** Of `eids`, those with a pending device item: one query per chunk (index outbox_device_work). */
export async function eidsWithPendingDevice(c: Conn, eids: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const chunk of chunked(eids)) {
    const rows = await c.run((db) =>
      db
        .selectFrom('outbox')
        .select('eid')
        .distinct()
        .where('channel', '=', 'device')
        .where('state', '=', 'pending')
        .where('eid', 'in', chunk)
        .execute(),
    );
    for (const r of rows) found.add(r.eid);
  }
  return found;
}
