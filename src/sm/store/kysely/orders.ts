/** Port-in orders (the new MNO's durable request). */
import { type OrderRecord, StoreConstraintError } from '../types.ts';
import { boolIn, boolOut, bytesOrNull, bytesOut, timeIn, timeOut } from './codec.ts';
import type { Conn } from './conn.ts';
import { prepared } from './prepared.ts';
import { allTaken, insertUnlessTaken, type Values } from './rows.ts';
import type { OrdersTable } from './schema.ts';

function orderValues(o: OrderRecord): Values<OrdersTable> {
  const {
    id,
    operatorId,
    eid,
    currentSmId,
    activationCodeHash,
    ask,
    state,
    transferId,
    createdAt,
    expiresAt,
    ...rest
  } = o;
  allTaken(rest);
  return {
    id,
    operator_id: operatorId,
    eid,
    current_sm_id: currentSmId,
    activation_code_hash: bytesOrNull(activationCodeHash, 'activationCodeHash'),
    ask: boolIn(ask),
    state,
    transfer_id: transferId,
    created_at: timeIn(createdAt, 'createdAt'),
    expires_at: timeIn(expiresAt, 'expiresAt'),
  };
}

interface OrderRow {
  id: string;
  operator_id: string;
  eid: string;
  current_sm_id: string;
  activation_code_hash: Uint8Array | null;
  ask: boolean | number;
  state: string;
  transfer_id: string;
  created_at: Date | string;
  expires_at: Date | string;
}

function orderOf(row: OrderRow): OrderRecord {
  return {
    id: row.id,
    operatorId: row.operator_id,
    eid: row.eid,
    currentSmId: row.current_sm_id,
    ...(row.activation_code_hash !== null && { activationCodeHash: bytesOut(row.activation_code_hash) }),
    ask: boolOut(row.ask),
    state: row.state as OrderRecord['state'],
    transferId: row.transfer_id,
    createdAt: timeOut(row.created_at),
    expiresAt: timeOut(row.expires_at),
  };
}

const COLUMNS = [
  'id',
  'operator_id',
  'eid',
  'current_sm_id',
  'activation_code_hash',
  'ask',
  'state',
  'transfer_id',
  'created_at',
  'expires_at',
] as const;

async function exists(c: Conn, id: string): Promise<boolean> {
  const row = await c.run((db) =>
    db.selectFrom('orders').select('id').where('id', '=', id).executeTakeFirst(),
  );
  return row !== undefined;
}

export async function getOrder(c: Conn, id: string): Promise<OrderRecord | undefined> {
  const row = await c.run((db) =>
    db.selectFrom('orders').select(COLUMNS).where('id', '=', id).executeTakeFirst(),
  );
  return row && orderOf(row);
}

export async function listOrders(
  c: Conn,
  filter: { readonly eid?: string; readonly state?: OrderRecord['state'] } = {},
): Promise<OrderRecord[]> {
  const rows = await c.run((db) => {
    let q = db.selectFrom('orders').select(COLUMNS);
    if (filter.eid !== undefined) q = q.where('eid', '=', filter.eid);
    if (filter.state !== undefined) q = q.where('state', '=', filter.state);
    return q.orderBy('pos').execute();
  });
  return rows.map(orderOf);
}

const insertRow = prepared((db, v: Values<OrdersTable>) =>
  db
    .insertInto('orders')
    .values(v)
    .onConflict((oc) => oc.column('id').doNothing()),
);

export async function insertOrder(c: Conn, order: OrderRecord): Promise<void> {
  await insertUnlessTaken({ key: `order id ${order.id}`, taken: () => exists(c, order.id) }, async () => {
    const row = orderValues(order);
    return { row, result: await insertRow(c, row, { eid: order.eid, id: `order id ${order.id}` }) };
  });
}

export async function saveOrder(c: Conn, order: OrderRecord): Promise<void> {
  const noOrder = () => new StoreConstraintError('InvalidInput', `no order ${order.id}`);
  let values: Omit<ReturnType<typeof orderValues>, 'id'>;
  try {
    const { id: _id, ...rest } = orderValues(order);
    values = rest;
  } catch (e) {
    // A missing order is refused first, as in the memory store, whatever else is wrong with it.
    throw (await exists(c, order.id)) ? e : noOrder();
  }
  // An update of no row changes nothing, so it stands in for reading the row first.
  const result = await c.run(
    (db) => db.updateTable('orders').set(values).where('id', '=', order.id).executeTakeFirstOrThrow(),
    { eid: order.eid },
  );
  if (result.numUpdatedRows === 0n) throw noOrder();
}
