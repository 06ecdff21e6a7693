/** Chips and their counters (types.ts: putChip, updateChip, useCounter). */
import { sql } from 'kysely';
import { COUNTER_MAX } from '../../../protocol/asn1/permission.ts';
import type { Curve } from '../../../protocol/crypto/curves.ts';
import type { Keyset } from '../../../protocol/handover-keys.ts';
import type { LockPolicy } from '../../domain/locks.ts';
import {
  type ChipPatch,
  type ChipRecord,
  type ChipStatus,
  type ProfileSwitchRecord,
  StoreConstraintError,
} from '../types.ts';
import { bytesIn, bytesOut, jsonIn, jsonOrNull, jsonOut, timeIn, timeOut } from './codec.ts';
import type { Conn } from './conn.ts';
import { prepared } from './prepared.ts';
import { allTaken, chunked, type Values } from './rows.ts';
import type { ChipsTable } from './schema.ts';

type ChipColumns = Omit<Values<ChipsTable>, 'eid' | 'generation' | 'counter' | 'created_at'>;

/** The columns a chip's owner may change (everything but eid, generation, counter, created_at). */
function mutableColumns(chip: ChipRecord): ChipColumns {
  const {
    eid: _eid,
    counter: _counter,
    createdAt: _createdAt,
    operatorId,
    chipCertificate,
    eumCertificate,
    curve,
    status,
    lock,
    keyset,
    profileSwitch,
    updatedAt,
    ...rest
  } = chip;
  allTaken(rest);
  return {
    operator_id: operatorId,
    chip_certificate: bytesIn(chipCertificate, 'chipCertificate'),
    eum_certificate: bytesIn(eumCertificate, 'eumCertificate'),
    curve,
    status,
    lock: jsonIn(lock, 'lock'),
    keyset: jsonOrNull(keyset, 'keyset'),
    profile_switch: jsonOrNull(profileSwitch, 'profileSwitch'),
    updated_at: timeIn(updatedAt, 'updatedAt'),
  };
}

interface ChipRow {
  eid: string;
  operator_id: string;
  chip_certificate: Uint8Array;
  eum_certificate: Uint8Array;
  curve: string;
  counter: number;
  status: string;
  lock: unknown;
  keyset: unknown;
  profile_switch: unknown;
  created_at: Date | string;
  updated_at: Date | string;
}

function chipOf(row: ChipRow): ChipRecord {
  return {
    eid: row.eid,
    operatorId: row.operator_id,
    chipCertificate: bytesOut(row.chip_certificate),
    eumCertificate: bytesOut(row.eum_certificate),
    curve: row.curve as Curve,
    counter: row.counter,
    status: row.status as ChipStatus,
    lock: jsonOut<LockPolicy>(row.lock),
    ...(row.keyset !== null && { keyset: jsonOut<Keyset>(row.keyset) }),
    ...(row.profile_switch !== null && { profileSwitch: jsonOut<ProfileSwitchRecord>(row.profile_switch) }),
    createdAt: timeOut(row.created_at),
    updatedAt: timeOut(row.updated_at),
  };
}

const CHIP_COLUMNS = [
  'eid',
  'operator_id',
  'chip_certificate',
  'eum_certificate',
  'curve',
  'counter',
  'status',
  'lock',
  'keyset',
  'profile_switch',
  'created_at',
  'updated_at',
] as const;

const notManaged = (eid: string) => new StoreConstraintError('ChipNotManaged', `no chip ${eid}`, { eid });

const chipRow = prepared((db, p: { eid: string }) =>
  db.selectFrom('chips').select(CHIP_COLUMNS).where('eid', '=', p.eid),
);

export async function getChip(c: Conn, eid: string): Promise<ChipRecord | undefined> {
  const [row] = (await chipRow<ChipRow>(c, { eid })).rows;
  return row && chipOf(row);
}

export async function listChips(
  c: Conn,
  filter: { readonly operatorId?: string; readonly status?: ChipStatus } = {},
): Promise<ChipRecord[]> {
  const rows = await c.run((db) => {
    let q = db.selectFrom('chips').select(CHIP_COLUMNS);
    if (filter.operatorId !== undefined) q = q.where('operator_id', '=', filter.operatorId);
    if (filter.status !== undefined) q = q.where('status', '=', filter.status);
    return q.orderBy('pos').execute();
  });
  return rows.map(chipOf);
}

export async function putChip(c: Conn, chip: ChipRecord): Promise<void> {
  const hint = { eid: chip.eid };
  const existing = await c.run((db) =>
    db.selectFrom('chips').select(['status', 'generation']).where('eid', '=', chip.eid).executeTakeFirst(),
  );
  if (existing && existing.status !== 'released') {
    throw new StoreConstraintError('ChipExists', `chip ${chip.eid} is already managed here`, hint);
  }
  if (!Number.isInteger(chip.counter) || chip.counter < 0 || chip.counter > COUNTER_MAX) {
    throw new StoreConstraintError('InvalidInput', 'a chip counter is an integer from 0', hint);
  }
  const columns = {
    ...mutableColumns(chip),
    counter: chip.counter,
    created_at: timeIn(chip.createdAt, 'createdAt'),
  };
  if (!existing) {
    await c.run(
      (db) =>
        db
          .insertInto('chips')
          .values({ eid: chip.eid, generation: 1, ...columns })
          .execute(),
      hint,
    );
    return;
  }
  // A chip coming back: same row (and list position), a new generation of counters.
  await c.run(
    (db) =>
      db
        .updateTable('chips')
        .set({ ...columns, generation: existing.generation + 1 })
        .where('eid', '=', chip.eid)
        .execute(),
    hint,
  );
}

export async function updateChip(c: Conn, eid: string, patch: ChipPatch): Promise<ChipRecord> {
  const existing = await getChip(c, eid);
  if (!existing) throw notManaged(eid);
  const { eid: _e, counter: _c, createdAt: _t, ...allowed } = patch as Partial<ChipRecord>;
  const next: Record<string, unknown> = { ...existing, ...allowed };
  // `undefined` in a patch removes the field (keys wiped, switch closed).
  for (const [k, v] of Object.entries(allowed)) if (v === undefined) delete next[k];
  await c.run(
    (db) =>
      db
        .updateTable('chips')
        .set(mutableColumns(next as unknown as ChipRecord))
        .where('eid', '=', eid)
        .execute(),
    { eid },
  );
  // The row now holds `next`: the stored record (as read) with the patch's fields, each of which
  // reads back as written (the store contract's updateChip tests compare it with getChip).
  return next as unknown as ChipRecord;
}

export async function useCounter(c: Conn, eid: string, counterValue: number): Promise<void> {
  const chip = await c.run((db) =>
    db.selectFrom('chips').select(['counter', 'generation']).where('eid', '=', eid).executeTakeFirst(),
  );
  if (!chip) throw notManaged(eid);
  if (!Number.isInteger(counterValue) || counterValue > COUNTER_MAX) {
    throw new StoreConstraintError('InvalidInput', `counter value ${counterValue} is out of range`, { eid });
  }
  const reused = () =>
    new StoreConstraintError(
      'CounterReused',
      `counter value ${counterValue} toward chip ${eid} is not above the last one used (${chip.counter})`,
      { eid, counterValue, counter: chip.counter },
    );
  if (counterValue <= chip.counter) throw reused();
  // Both in this transaction: the primary key refuses a value used before, the guarded update
  // (and the chips trigger) a counter that would not move up.
  await c.run(
    (db) =>
      db
        .insertInto('used_counters')
        .values({ eid, generation: chip.generation, counter: counterValue })
        .execute(),
    { eid },
  );
  const result = await c.run(
    (db) =>
      db
        .updateTable('chips')
        .set({ counter: counterValue })
        .where('eid', '=', eid)
        .where('generation', '=', chip.generation)
        .where('counter', '<', counterValue)
        .executeTakeFirst(),
    { eid },
  );
  if (result.numUpdatedRows !== 1n) throw reused();
}

/**
 * Of `eids`, the managed chips whose profile switch is unconfirmed: one query per chunk. The
 * switch is JSON (text in SQLite, jsonb in PostgreSQL); its `state` is a plain string in both.
 */
export async function eidsWithUnconfirmedSwitch(c: Conn, eids: readonly string[]): Promise<Set<string>> {
  const state =
    c.dialect === 'postgres'
      ? sql<string>`profile_switch ->> 'state'`
      : sql<string>`json_extract(profile_switch, '$.state')`;
  const found = new Set<string>();
  for (const chunk of chunked(eids)) {
    const rows = await c.run((db) =>
      db
        .selectFrom('chips')
        .select('eid')
        .where('eid', 'in', chunk)
        .where('status', '=', 'managed')
        .where('profile_switch', 'is not', null)
        .where(state, '=', 'unconfirmed')
        .execute(),
    );
    for (const r of rows) found.add(r.eid);
  }
  return found;
}
