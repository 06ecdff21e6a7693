/**
 * `handover audit verify`: an intact chain is valid; an attacker with access to the database
 * file (who first drops the append-only triggers) is found out whether an entry is edited, edited
 * with its hash recomputed, removed, or made unreadable. SQLite, and PostgreSQL when
 * DATABASE_URL is set.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { HandoverError } from '../protocol/errors.ts';
import { chainAuditEntry } from '../sm/audit-chain.ts';
import { SQLITE_FILE } from '../sm/server-config.ts';
import { openSqliteStore, type SqlStore } from '../sm/store/kysely/index.ts';
import { tempSchema, testDatabaseUrlOrSkip } from '../sm/store/kysely/testing.ts';
import type { AuditEntry } from '../sm/store/types.ts';
import { verifyAuditLog } from './audit-command.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-audit-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const NO_DATABASE_URL: NodeJS.ProcessEnv = {};
let dirs = 0;

/** A config file (its key and certificate files are never read by audit verify). */
function configIn(dir: string): string {
  const file = join(dir, 'sm.json');
  writeFileSync(
    file,
    JSON.stringify({
      smId: 'sm-alpha.example',
      keyFile: 'pki/sm.key',
      certFile: 'pki/sm.pem',
      ciFiles: ['pki/ci.pem'],
      listen: { host: '127.0.0.1', port: 0 },
      dataDir: 'data',
      peers: [],
      operators: [{ id: 'mno-a', tokenSha256: 'ab'.repeat(32), approvalRequired: false }],
    }),
  );
  return file;
}

async function appendEntries(store: SqlStore, n: number): Promise<AuditEntry[]> {
  return store.transaction(async (tx) => {
    for (let i = 1; i <= n; i++) {
      await tx.appendAudit({
        at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
        actor: i % 2 ? 'operator:mno-a' : 'system',
        action: `step${i}`,
        operatorId: 'mno-a',
        eid: '89049032123451234512345678901235',
        details: { n: i, ok: i % 3 === 0, note: `entry ${i}`, none: null },
      });
    }
    return tx.listAudit();
  });
}

/** An SM folder with a SQLite store holding `n` chained entries. */
async function smWithEntries(n: number): Promise<{ config: string; db: string; entries: AuditEntry[] }> {
  const dir = join(tmp, `sm-${++dirs}`);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const db = join(dir, 'data', SQLITE_FILE);
  const store = await openSqliteStore(db);
  try {
    return { config: configIn(dir), db, entries: await appendEntries(store, n) };
  } finally {
    await store.close();
  }
}

/** As an attacker with the file: the triggers are dropped first, then rows written directly. */
function tamper(db: string, statements: (d: BetterSqlite3.Database) => void): void {
  const d = new BetterSqlite3(db);
  try {
    d.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete');
    statements(d);
  } finally {
    d.close();
  }
}

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'audit', ...args], {
    encoding: 'utf8',
    env: { ...process.env, DATABASE_URL: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('handover audit verify (SQLite)', () => {
  test('an intact chain: {"valid":true,"entries":N}, exit 0', async () => {
    const sm = await smWithEntries(6);
    const r = cli('verify', '--config', sm.config);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '{"valid":true,"entries":6}\n');
  });

  test('an empty log is a valid chain of 0 entries', async () => {
    const sm = await smWithEntries(0);
    assert.deepEqual(await verifyAuditLog(sm.config, NO_DATABASE_URL), { valid: true, entries: 0 });
  });

  test('an edited entry: its own hash no longer matches; exit 1', async () => {
    const sm = await smWithEntries(6);
    tamper(sm.db, (d) => d.prepare("UPDATE audit SET action = 'forged' WHERE seq = 3").run());
    const r = cli('verify', '--config', sm.config);
    assert.equal(r.status, 1, r.stderr);
    const verdict = JSON.parse(r.stdout) as { valid: boolean; firstBrokenSeq: number; reason: string };
    assert.equal(verdict.valid, false);
    assert.equal(verdict.firstBrokenSeq, 3);
    assert.match(verdict.reason, /hash of entry 3 does not match its content/);
  });

  test('an edited entry with its hash recomputed: the next entry no longer follows it', async () => {
    const sm = await smWithEntries(6);
    const [, second, third] = sm.entries;
    const forged = chainAuditEntry(second, { ...third!, details: { ...third!.details, n: 999 } });
    tamper(sm.db, (d) =>
      d
        .prepare('UPDATE audit SET details = ?, hash = ? WHERE seq = 3')
        .run(JSON.stringify(forged.details), forged.hash),
    );
    const verdict = await verifyAuditLog(sm.config, NO_DATABASE_URL);
    assert.equal(verdict.valid, false);
    assert.equal(!verdict.valid && verdict.firstBrokenSeq, 4);
    assert.match(!verdict.valid ? verdict.reason : '', /prevHash of entry 4 is not the hash of entry 3/);
  });

  test('a removed entry, and an unreadable one, are found', async () => {
    const removed = await smWithEntries(6);
    tamper(removed.db, (d) => d.prepare('DELETE FROM audit WHERE seq = 2').run());
    const gap = await verifyAuditLog(removed.config, NO_DATABASE_URL);
    assert.deepEqual(gap, {
      valid: false,
      firstBrokenSeq: 2,
      reason: 'entry 2 is missing: the entry after entry 1 is entry 3',
    });

    const garbled = await smWithEntries(6);
    tamper(garbled.db, (d) => d.prepare("UPDATE audit SET details = '{not json' WHERE seq = 5").run());
    const unreadable = await verifyAuditLog(garbled.config, NO_DATABASE_URL);
    assert.equal(!unreadable.valid && unreadable.firstBrokenSeq, 5);
    assert.match(!unreadable.valid ? unreadable.reason : '', /entry 5 cannot be read/);
  });

  test('no store at the configured place: StoreNotFound (exit 1), and no file is created', async () => {
    const dir = join(tmp, 'empty');
    mkdirSync(dir);
    await assert.rejects(verifyAuditLog(configIn(dir), NO_DATABASE_URL), (e: unknown) => {
      assert.ok(e instanceof HandoverError);
      assert.equal(e.code, 'StoreNotFound');
      return true;
    });
    assert.equal(existsSync(join(dir, 'data', SQLITE_FILE)), false);
  });

  test('an empty file where the store belongs: StoreNotFound, and the file is left as it was', async () => {
    const dir = join(tmp, 'cut-short');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const path = join(dir, 'data', SQLITE_FILE);
    writeFileSync(path, '');
    await assert.rejects(verifyAuditLog(configIn(dir), NO_DATABASE_URL), { code: 'StoreNotFound' });
    assert.equal(statSync(path).size, 0, 'not turned into a new store');
    // An SM does not start on it either: it says what happened instead of starting empty.
    await assert.rejects(openSqliteStore(path), { code: 'StoreError', message: /empty file/ });
    assert.equal(statSync(path).size, 0);
  });
});

test('handover audit verify (PostgreSQL, DATABASE_URL): intact, then an edited entry', async (t) => {
  const url = testDatabaseUrlOrSkip(t);
  if (url === undefined) return;
  const schema = tempSchema(url);
  const store = await schema.open({ poolSize: 2 });
  try {
    await appendEntries(store, 5);
    const dir = join(tmp, 'pg');
    mkdirSync(dir);
    const config = configIn(dir);
    const options = encodeURIComponent(`-c search_path=${schema.schema}`);
    const env = { DATABASE_URL: `${url}${url.includes('?') ? '&' : '?'}options=${options}` };
    assert.deepEqual(await verifyAuditLog(config, env), { valid: true, entries: 5 });
    await sql`DROP TRIGGER audit_no_change ON audit`.execute(store.db);
    await sql`UPDATE audit SET actor = 'operator:someone-else' WHERE seq = 2`.execute(store.db);
    const verdict = await verifyAuditLog(config, env);
    assert.equal(!verdict.valid && verdict.firstBrokenSeq, 2);
  } finally {
    await schema.drop(store);
  }
});
