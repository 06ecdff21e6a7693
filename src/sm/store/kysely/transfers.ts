/** Transfers of both directions (types.ts: insertTransfer, saveTransfer and their constraints). */

import type { Selectable } from 'kysely';
import type { ProfileSwitch } from '../../../protocol/asn1/permission.ts';
import type { Keyset } from '../../../protocol/handover-keys.ts';
import { expiryDeadline } from '../../domain/expiry-deadline.ts';
import {
  CURRENT_SM,
  type CurrentSmState,
  isOpenTransfer,
  NEW_SM,
  type NewSmState,
} from '../../domain/transfer-states.ts';
import {
  type AcceptedRequest,
  type IncomingTransfer,
  type IssuedCancel,
  type IssuedPermission,
  type OutgoingTransfer,
  StoreConstraintError,
  type TransferCountFilter,
  type TransferFilter,
  type TransferRecord,
} from '../types.ts';
import {
  boolIn,
  boolOut,
  bytesIn,
  bytesOrNull,
  bytesOut,
  intOut,
  jsonOrNull,
  jsonOut,
  timeIn,
  timeOrNull,
  timeOut,
} from './codec.ts';
import type { Conn } from './conn.ts';
import { prepared } from './prepared.ts';
import { allTaken, changedValues, hex, insertUnlessTaken, recalled, remember, type Values } from './rows.ts';
import type { TransfersTable } from './schema.ts';

type TransferValues = Values<TransfersTable>;
type TransferRow = Selectable<TransfersTable>;

const OUTGOING_NULLS = {
  origin: null,
  peer_ask_id: null,
  new_sm_address: null,
  activation_code_hash: null,
  profile_switch: null,
  unlocked_with_code: null,
  approval_deadline: null,
  permission: null,
  cancel: null,
} as const;

const INCOMING_NULLS = {
  order_id: null,
  peer_transfer_id: null,
  expires_at: null,
  request: null,
  receipt_key: null,
  keyset: null,
} as const;

function outgoingValues(t: OutgoingTransfer): TransferValues {
  const {
    id,
    direction,
    state,
    eid,
    operatorId,
    peerSmId,
    permissionId,
    createdAt,
    updatedAt,
    endReason,
    evidence,
    origin,
    peerAskId,
    newSmAddress,
    activationCodeHash,
    profileSwitch,
    unlockedWithCode,
    approvalDeadline,
    permission,
    cancel,
    ...rest
  } = t;
  allTaken(rest);
  return {
    id,
    direction,
    state,
    eid,
    operator_id: operatorId,
    peer_sm_id: peerSmId,
    permission_id: bytesOrNull(permissionId, 'permissionId'),
    created_at: timeIn(createdAt, 'createdAt'),
    updated_at: timeIn(updatedAt, 'updatedAt'),
    end_reason: endReason ?? null,
    evidence: bytesOrNull(evidence, 'evidence'),
    origin,
    peer_ask_id: peerAskId ?? null,
    new_sm_address: newSmAddress,
    activation_code_hash: bytesOrNull(activationCodeHash, 'activationCodeHash'),
    profile_switch: jsonOrNull(profileSwitch, 'profileSwitch'),
    unlocked_with_code: boolIn(unlockedWithCode),
    approval_deadline: timeOrNull(approvalDeadline, 'approvalDeadline'),
    permission: jsonOrNull(permission, 'permission'),
    cancel: jsonOrNull(cancel, 'cancel'),
    ...INCOMING_NULLS,
    expiry_deadline: timeOrNull(expiryDeadline(t), 'expiryDeadline'),
  };
}

function incomingValues(t: IncomingTransfer): TransferValues {
  const {
    id,
    direction,
    state,
    eid,
    operatorId,
    peerSmId,
    permissionId,
    createdAt,
    updatedAt,
    endReason,
    evidence,
    orderId,
    peerTransferId,
    expiresAt,
    request,
    receiptKey,
    keyset,
    ...rest
  } = t;
  allTaken(rest);
  return {
    id,
    direction,
    state,
    eid,
    operator_id: operatorId,
    peer_sm_id: peerSmId,
    permission_id: bytesOrNull(permissionId, 'permissionId'),
    created_at: timeIn(createdAt, 'createdAt'),
    updated_at: timeIn(updatedAt, 'updatedAt'),
    end_reason: endReason ?? null,
    evidence: bytesOrNull(evidence, 'evidence'),
    ...OUTGOING_NULLS,
    order_id: orderId,
    peer_transfer_id: peerTransferId ?? null,
    expires_at: timeIn(expiresAt, 'expiresAt'),
    request: jsonOrNull(request, 'request'),
    receipt_key: bytesOrNull(receiptKey, 'receiptKey'),
    keyset: jsonOrNull(keyset, 'keyset'),
    expiry_deadline: timeOrNull(expiryDeadline(t), 'expiryDeadline'),
  };
}

const transferValues = (t: TransferRecord): TransferValues =>
  t.direction === 'outgoing' ? outgoingValues(t) : incomingValues(t);

export function transferOf(row: TransferRow): TransferRecord {
  const common = {
    id: row.id,
    eid: row.eid,
    operatorId: row.operator_id,
    peerSmId: row.peer_sm_id,
    ...(row.permission_id !== null && { permissionId: bytesOut(row.permission_id) }),
    createdAt: timeOut(row.created_at),
    updatedAt: timeOut(row.updated_at),
    ...(row.end_reason !== null && { endReason: row.end_reason }),
    ...(row.evidence !== null && { evidence: bytesOut(row.evidence) }),
  };
  if (row.direction === 'outgoing') {
    const t: OutgoingTransfer = {
      ...common,
      direction: 'outgoing',
      state: row.state as CurrentSmState,
      origin: row.origin as OutgoingTransfer['origin'],
      ...(row.peer_ask_id !== null && { peerAskId: row.peer_ask_id }),
      newSmAddress: row.new_sm_address ?? '',
      ...(row.activation_code_hash !== null && { activationCodeHash: bytesOut(row.activation_code_hash) }),
      ...(row.profile_switch !== null && { profileSwitch: jsonOut<ProfileSwitch>(row.profile_switch) }),
      unlockedWithCode: row.unlocked_with_code !== null && boolOut(row.unlocked_with_code),
      ...(row.approval_deadline !== null && { approvalDeadline: timeOut(row.approval_deadline) }),
      ...(row.permission !== null && { permission: jsonOut<IssuedPermission>(row.permission) }),
      ...(row.cancel !== null && { cancel: jsonOut<IssuedCancel>(row.cancel) }),
    };
    return t;
  }
  const t: IncomingTransfer = {
    ...common,
    direction: 'incoming',
    state: row.state as NewSmState,
    orderId: row.order_id ?? '',
    ...(row.peer_transfer_id !== null && { peerTransferId: row.peer_transfer_id }),
    expiresAt: timeOut(row.expires_at ?? 0),
    ...(row.request !== null && { request: jsonOut<AcceptedRequest>(row.request) }),
    ...(row.receipt_key !== null && { receiptKey: bytesOut(row.receipt_key) }),
    ...(row.keyset !== null && { keyset: jsonOut<Keyset>(row.keyset) }),
  };
  return t;
}

const OPEN_STATES = {
  outgoing: CURRENT_SM.states.filter((s) => !CURRENT_SM.terminal.includes(s)),
  incoming: NEW_SM.states.filter((s) => !NEW_SM.terminal.includes(s)),
} as const;

/**
 * The states in which a transfer of either direction is still open (a state name open in one
 * direction is not terminal in the other), for queries that do not know the direction.
 */
export const OPEN_TRANSFER_STATES: readonly string[] = [
  ...new Set<string>([...OPEN_STATES.outgoing, ...OPEN_STATES.incoming]),
];

// The statements every transfer runs, built once (prepared.ts).
const rowById = prepared((db, p: { id: string }) =>
  db.selectFrom('transfers').selectAll().where('id', '=', p.id),
);
const rowByPermissionId = prepared((db, p: { permissionId: Buffer }) =>
  db.selectFrom('transfers').selectAll().where('permission_id', '=', p.permissionId),
);
const idExists = prepared((db, p: { id: string }) =>
  db.selectFrom('transfers').select('id').where('id', '=', p.id),
);
const otherWithPermissionId = prepared((db, p: { permissionId: Buffer; id: string }) =>
  db.selectFrom('transfers').select('id').where('permission_id', '=', p.permissionId).where('id', '<>', p.id),
);
const otherOpenIn = (direction: 'outgoing' | 'incoming') =>
  prepared((db, p: { eid: string; id: string }) =>
    db
      .selectFrom('transfers')
      .select('id')
      .where('eid', '=', p.eid)
      .where('direction', '=', direction)
      .where('state', 'in', OPEN_STATES[direction])
      .where('id', '<>', p.id),
  );
const otherOpen = { outgoing: otherOpenIn('outgoing'), incoming: otherOpenIn('incoming') };
const insertRow = prepared((db, v: TransferValues) =>
  db
    .insertInto('transfers')
    .values(v)
    .onConflict((oc) => oc.column('id').doNothing()),
);
/** A chip's transfers one way, in creation order: what the SM looks up on every message about a chip. */
const byEidAndDirection = prepared((db, p: { eid: string; direction: 'outgoing' | 'incoming' }) =>
  db
    .selectFrom('transfers')
    .selectAll()
    .where('eid', '=', p.eid)
    .where('direction', '=', p.direction)
    .orderBy('pos'),
);
const updateRow = prepared((db, p: Partial<TransferValues> & { id: string }) => {
  const { id, ...set } = p;
  return db.updateTable('transfers').set(set).where('id', '=', id);
});

/**
 * The refusals the memory store gives, with the same details (the database re-checks them): a
 * permissionId another transfer holds, and a second open transfer of one chip and direction.
 */
async function check(c: Conn, t: TransferRecord): Promise<void> {
  await checkPermissionId(c, t);
  await checkOpen(c, t);
}

async function checkPermissionId(c: Conn, t: TransferRecord): Promise<void> {
  const { permissionId } = t;
  if (permissionId !== undefined) {
    const [other] = (
      await otherWithPermissionId(c, { permissionId: bytesIn(permissionId, 'permissionId'), id: t.id })
    ).rows;
    if (other) {
      throw new StoreConstraintError('PermissionReused', 'this permissionId has been seen before', {
        permissionId: hex(permissionId),
      });
    }
  }
}

async function checkOpen(c: Conn, t: TransferRecord): Promise<void> {
  if (!isOpenTransfer(t)) return;
  const [open] = (await otherOpen[t.direction]<{ id: string }>(c, { eid: t.eid, id: t.id })).rows;
  if (open) {
    throw t.direction === 'outgoing'
      ? new StoreConstraintError('TransferPending', `chip ${t.eid} already has a transfer in progress`, {
          eid: t.eid,
          transferId: open.id,
        })
      : new StoreConstraintError('OrderPending', `chip ${t.eid} already has a port-in in progress`, {
          eid: t.eid,
          transferId: open.id,
        });
  }
}

const hintOf = (t: TransferRecord) => ({ eid: t.eid, direction: t.direction, id: `transfer id ${t.id}` });

export async function getTransfer(c: Conn, id: string): Promise<TransferRecord | undefined> {
  const [row] = (await rowById<TransferRow>(c, { id })).rows;
  return row && transferOf(remember(c, 'transfers', row));
}

export async function findTransferByPermissionId(
  c: Conn,
  permissionId: Uint8Array,
): Promise<TransferRecord | undefined> {
  const [row] = (
    await rowByPermissionId<TransferRow>(c, { permissionId: bytesIn(permissionId, 'permissionId') })
  ).rows;
  return row && transferOf(remember(c, 'transfers', row));
}

export async function listTransfers(c: Conn, filter: TransferFilter = {}): Promise<TransferRecord[]> {
  const { states } = filter;
  if (states !== undefined && states.length === 0) return [];
  const keys = Object.keys(filter).filter((k) => filter[k as keyof TransferFilter] !== undefined);
  if (keys.length === 2 && filter.eid !== undefined && filter.direction !== undefined) {
    const { rows } = await byEidAndDirection<TransferRow>(c, {
      eid: filter.eid,
      direction: filter.direction,
    });
    return rows.map((r) => transferOf(remember(c, 'transfers', r)));
  }
  const rows = await c.run((db) => {
    let q = db.selectFrom('transfers').selectAll();
    if (filter.eid !== undefined) q = q.where('eid', '=', filter.eid);
    if (filter.direction !== undefined) q = q.where('direction', '=', filter.direction);
    if (filter.operatorId !== undefined) q = q.where('operator_id', '=', filter.operatorId);
    if (states !== undefined) q = q.where('state', 'in', states);
    if (filter.deadlineBefore !== undefined) {
      q = q.where('expiry_deadline', '<', timeIn(filter.deadlineBefore, 'deadlineBefore'));
    }
    if (filter.afterId !== undefined) q = q.where('id', '>', filter.afterId);
    if (filter.limit === undefined) return q.orderBy('pos').execute();
    return q.orderBy('id').limit(filter.limit).execute();
  });
  return rows.map((r) => transferOf(remember(c, 'transfers', r)));
}

export async function countTransfers(
  c: Conn,
  filter: TransferCountFilter = {},
): Promise<Record<string, number>> {
  const rows = await c.run((db) => {
    let q = db
      .selectFrom('transfers')
      .select((eb) => ['state', eb.fn.countAll<number | string | bigint>().as('n')]);
    if (filter.direction !== undefined) q = q.where('direction', '=', filter.direction);
    if (filter.operatorId !== undefined) q = q.where('operator_id', '=', filter.operatorId);
    return q.groupBy('state').orderBy('state').execute();
  });
  // PostgreSQL's count is a bigint, which pg reads as a string.
  return Object.fromEntries(rows.map((r) => [r.state, intOut(r.n)]));
}

export async function insertTransfer(c: Conn, t: TransferRecord): Promise<void> {
  const row = await insertUnlessTaken(
    { key: `transfer id ${t.id}`, taken: async () => (await idExists(c, { id: t.id })).rows.length > 0 },
    async () => {
      await check(c, t);
      const row = transferValues(t);
      return { row, result: await insertRow(c, row, hintOf(t)) };
    },
  );
  remember(c, 'transfers', row);
}

/**
 * Writes the columns that changed since the row was read. The checks run only where a change can
 * break them: a new permissionId, or a transfer that was closed becoming open again (the row as
 * it stands already satisfied both).
 */
export async function saveTransfer(c: Conn, t: TransferRecord): Promise<void> {
  // As this transaction last read or wrote it (conn.ts), or read now. A row it wrote holds the
  // values as written, which changedValues compares like the driver's own (rows.ts).
  const existing =
    (recalled(c, 'transfers', t.id) as TransferRow | undefined) ??
    (await rowById<TransferRow>(c, { id: t.id })).rows[0];
  if (!existing) throw new StoreConstraintError('UnknownTransfer', `no transfer ${t.id}`);
  if (existing.direction !== t.direction || existing.eid !== t.eid) {
    throw new StoreConstraintError('InvalidInput', 'a transfer keeps its direction and EID');
  }
  const { id: _id, ...values } = transferValues(t);
  const changed = changedValues(values, existing);
  if (Object.keys(changed).length === 0) return;
  if ('permission_id' in changed) await checkPermissionId(c, t);
  if (!(OPEN_STATES[t.direction] as readonly string[]).includes(existing.state)) await checkOpen(c, t);
  await updateRow(c, { ...changed, id: t.id }, hintOf(t));
  remember(c, 'transfers', { ...existing, ...changed, id: t.id });
}
