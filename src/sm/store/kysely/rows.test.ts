import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { changedValues, chunked } from './rows.ts';

describe('changedValues', () => {
  it('keeps only the columns whose values differ, comparing bytes by content', () => {
    const row = { a: 'x', b: 1, c: null, d: Buffer.from([1, 2, 3]), e: Buffer.from([9]) };
    const next = { a: 'x', b: 2, c: null, d: Buffer.from([1, 2, 3]), e: Buffer.from([8]) };
    assert.deepEqual(changedValues(next, row), { b: 2, e: Buffer.from([8]) });
  });

  it('reads pg values as pg gives them back: a Date for ISO text, a boolean for 0/1', () => {
    const at = '2026-11-27T12:00:00.000Z';
    const row = { t: new Date(at), u: new Date(at), f: true, g: false };
    assert.deepEqual(changedValues({ t: at, u: '2026-11-27T12:00:00.001Z', f: 1, g: 1 }, row), {
      u: '2026-11-27T12:00:00.001Z',
      g: 1,
    });
  });

  it('counts a value set to null, and parsed jsonb, as changed (never skips a write it cannot prove equal)', () => {
    assert.deepEqual(changedValues({ a: null }, { a: 'x' }), { a: null });
    assert.deepEqual(changedValues({ j: '{"k":1}' }, { j: { k: 1 } }), { j: '{"k":1}' });
  });

  it('property: the row with the changed columns written over it holds every new value', () => {
    const value = fc.oneof(
      fc.constant(null),
      fc.integer({ min: 0, max: 3 }),
      fc.constantFrom('a', 'b'),
      fc.uint8Array({ maxLength: 3 }).map((b) => Buffer.from(b)),
    );
    const keys = ['k1', 'k2', 'k3', 'k4'] as const;
    const record = fc.record(
      Object.fromEntries(keys.map((k) => [k, value])) as Record<(typeof keys)[number], typeof value>,
    );
    fc.assert(
      fc.property(record, record, (row, next) => {
        const changed = changedValues(next, row);
        const written: Record<string, unknown> = { ...row, ...changed };
        for (const k of keys) {
          const want = next[k];
          const got = written[k];
          if (Buffer.isBuffer(want)) assert.ok(Buffer.isBuffer(got) && want.equals(got));
          else assert.equal(got, want);
          if (!(k in changed)) assert.ok(row[k] === next[k] || Buffer.isBuffer(row[k]));
        }
      }),
    );
  });
});

describe('chunked', () => {
  it('slices a list into runs of at most the size, none for an empty list', () => {
    assert.deepEqual(chunked([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(chunked([], 2), []);
  });
});
