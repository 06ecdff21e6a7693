import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { systemErrorOf } from './system-error.ts';

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail('did not throw');
}

test('file system failures become FileError with the path; a non-database file StoreError', () => {
  const dir = mkdtempSync(join(tmpdir(), 'handover-syserr-'));
  try {
    const file = join(dir, 'f');
    writeFileSync(file, 'not a database, and long enough to be read as a header by SQLite........');
    const eexist = systemErrorOf(thrown(() => mkdirSync(file)));
    assert.equal(eexist?.code, 'FileError');
    assert.equal(eexist?.details.errno, 'EEXIST');
    assert.equal(eexist?.details.path, file);
    assert.match(eexist?.message ?? '', /already there/);
    assert.equal(systemErrorOf(thrown(() => mkdirSync(join(file, 'sub'))))?.details.errno, 'ENOTDIR');
    const notDb = systemErrorOf(
      thrown(() => {
        const db = new BetterSqlite3(file);
        try {
          db.pragma('user_version');
        } finally {
          db.close();
        }
      }),
    );
    assert.equal(notDb?.code, 'StoreError');
    assert.match(notDb?.message ?? '', /not a database/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors of our own code or without a known system code stay internal (undefined)', () => {
  assert.equal(systemErrorOf(new TypeError('x is undefined')), undefined);
  assert.equal(systemErrorOf('a string'), undefined);
  assert.equal(systemErrorOf(Object.assign(new Error('odd'), { code: 'ESOMETHINGELSE' })), undefined);
});
