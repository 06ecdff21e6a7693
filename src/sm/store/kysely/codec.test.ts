import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CURRENT_SM, NEW_SM } from '../../domain/transfer-states.ts';
import { StoreConstraintError } from '../types.ts';
import { boolOut, bytesOut, detailsIn, jsonIn, jsonOut, timeIn, timeOut } from './codec.ts';
import { storeErrorOf } from './errors.ts';
import { OPEN_INCOMING_STATES, OPEN_OUTGOING_STATES } from './migrations.ts';

test('codec: nested bytes and dates survive JSON (text or parsed jsonb) exactly', () => {
  const value = {
    a: new Uint8Array([0, 1, 255]),
    empty: new Uint8Array(0),
    at: new Date('2026-01-01T00:00:00.123Z'),
    list: [new Uint8Array([7]), 1, 'x', null, { d: new Date(0) }],
    nested: { n: 1.5, b: false, s: '' },
    gone: undefined,
  };
  const { gone: _g, ...expected } = value;
  const text = jsonIn(value);
  assert.deepEqual(jsonOut(text), expected);
  assert.deepEqual(jsonOut(JSON.parse(text)), expected, 'as pg gives jsonb');
  const out = jsonOut<typeof expected>(text);
  assert.equal(Object.getPrototypeOf(out.a), Uint8Array.prototype);
  assert.ok(out.at instanceof Date);
});

test('codec: a Buffer view is stored as its own bytes only', () => {
  const big = Buffer.from([9, 9, 1, 2, 3, 9]);
  const view = big.subarray(2, 5);
  assert.deepEqual(jsonOut(jsonIn({ v: view })), { v: new Uint8Array([1, 2, 3]) });
});

test('codec: what JSON cannot hold faithfully is refused, not mangled', () => {
  for (const bad of [{ $bytes: 'AA==' }, { x: { $date: 'now' } }, { n: 1n }, { f: () => 1 }]) {
    assert.throws(() => jsonIn(bad), StoreConstraintError);
  }
  assert.throws(() => timeIn(new Date(Number.NaN)), { code: 'InvalidInput' });
});

test('codec: a "__proto__" key stays a plain key', () => {
  const out = jsonOut<Record<string, unknown>>('{"__proto__": {"polluted": true}}');
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.deepEqual(Object.keys(out), ['__proto__']);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('codec: scalars from either driver', () => {
  assert.equal(boolOut(1), true);
  assert.equal(boolOut(0), false);
  assert.equal(boolOut(true), true);
  assert.deepEqual(timeOut('2026-01-01T00:00:00.000Z'), new Date('2026-01-01T00:00:00.000Z'));
  const d = new Date(5);
  assert.notEqual(timeOut(d), d, 'a copy');
  assert.equal(Object.getPrototypeOf(bytesOut(Buffer.from([1]))), Uint8Array.prototype);
  assert.equal(detailsIn({ a: undefined, b: 1 }), '{"a":null,"b":1}');
});

test('migrations: the partial unique index covers exactly the non-terminal states', () => {
  const open = <S extends string>(m: { states: readonly S[]; terminal: readonly S[] }) =>
    m.states.filter((s) => !m.terminal.includes(s));
  assert.deepEqual([...OPEN_OUTGOING_STATES], open(CURRENT_SM));
  assert.deepEqual([...OPEN_INCOMING_STATES], open(NEW_SM));
});

test('errors: database errors map to the store codes; others pass through', () => {
  const pg = (code: string, constraint = '') => Object.assign(new Error('x'), { code, constraint });
  const sqlite = (code: string, message: string) => Object.assign(new Error(message), { code });
  const cases: [unknown, string | undefined, object?][] = [
    [pg('23505', 'transfers_permission_id_unique'), 'PermissionReused'],
    [pg('23505', 'transfers_one_open'), 'TransferPending', { direction: 'outgoing' }],
    [pg('23505', 'transfers_one_open'), 'OrderPending', { direction: 'incoming' }],
    [pg('23505', 'used_counters_pk'), 'CounterReused'],
    [pg('23505', 'chips_pk'), 'ChipExists'],
    [pg('23505', 'outbox_pk'), 'InvalidInput'],
    [pg('23503'), 'ChipNotManaged'],
    [pg('23514'), 'InvalidInput'],
    [pg('22P02'), 'InvalidInput'],
    [pg('40001'), undefined],
    [pg('P0001'), undefined],
    [Object.assign(new Error('handover:CounterReused: never down'), { code: 'P0001' }), 'CounterReused'],
    [
      sqlite('SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE constraint failed: transfers.permission_id'),
      'PermissionReused',
    ],
    [
      sqlite('SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE constraint failed: transfers.eid, transfers.direction'),
      'OrderPending',
      { direction: 'incoming' },
    ],
    [
      sqlite('SQLITE_CONSTRAINT_PRIMARYKEY', 'UNIQUE constraint failed: used_counters.eid, ...'),
      'CounterReused',
    ],
    [sqlite('SQLITE_CONSTRAINT_TRIGGER', 'handover:ChipExists: only a released chip'), 'ChipExists'],
    [sqlite('SQLITE_CONSTRAINT_CHECK', 'CHECK constraint failed: transfers_shape'), 'InvalidInput'],
    [sqlite('SQLITE_BUSY', 'database is locked'), undefined],
    [new Error('plain'), undefined],
    ['not even an error', undefined],
  ];
  for (const [e, code, hint] of cases) assert.equal(storeErrorOf(e, hint)?.code, code, String(e));
});
