/**
 * `handover audit verify --config FILE`: walks the audit hash chain (sm/audit-chain.ts) of the
 * SM a configuration names, in its store (storeLocation: `<dataDir>/sm.sqlite`, or PostgreSQL
 * when DATABASE_URL is set), entry by entry in seq order. Prints one JSON line:
 * `{"valid":true,"entries":N}` (exit 0) or `{"valid":false,"firstBrokenSeq":n,"reason":"…"}`
 * (exit 1). It only reads; opening the store brings its schema up to date, as a starting SM would.
 * A SQLite file that does not exist is an error (exit 1), not created.
 *
 * What the chain shows: an entry edited, inserted, removed or reordered anywhere before the last
 * one. What it cannot show on its own: entries cut off at the end (keep the last hash elsewhere,
 * e.g. GET /v1/audit, to compare).
 */
import { existsSync, statSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import type { Command } from 'commander';
import { HandoverError } from '../protocol/errors.ts';
import { chainAuditEntry, GENESIS_HASH } from '../sm/audit-chain.ts';
import { readSmConfig, storeLocation } from '../sm/server-config.ts';
import { readAuditRows, type StoredAuditRow } from '../sm/store/kysely/audit.ts';
import { openStore } from '../sm/store/kysely/index.ts';
import type { AuditEntry } from '../sm/store/types.ts';

export type AuditVerdict =
  | { readonly valid: true; readonly entries: number }
  | { readonly valid: false; readonly firstBrokenSeq: number; readonly reason: string };

/** Rows read per query: the log is walked in pages, never loaded whole. */
const PAGE = 1000;

/** The chain's checks for the next row, given the last good entry; a reason when it breaks. */
function breakAt(
  previous: AuditEntry | undefined,
  row: StoredAuditRow,
): { seq: number; reason: string } | undefined {
  const expectedSeq = previous ? previous.seq + 1 : 1;
  if (row.seq !== expectedSeq) {
    return {
      seq: expectedSeq,
      reason: `entry ${expectedSeq} is missing: the entry after ${previous ? `entry ${previous.seq}` : 'the start'} is entry ${row.seq}`,
    };
  }
  if ('unreadable' in row)
    return { seq: row.seq, reason: `entry ${row.seq} cannot be read: ${row.unreadable}` };
  const e = row.entry;
  const expectedPrev = previous?.hash ?? GENESIS_HASH;
  if (e.prevHash !== expectedPrev) {
    return {
      seq: e.seq,
      reason: previous
        ? `the prevHash of entry ${e.seq} is not the hash of entry ${previous.seq}: an entry was changed and its hash recomputed, or entries were replaced`
        : `the prevHash of entry 1 is not the genesis hash (64 zeros)`,
    };
  }
  if (chainAuditEntry(previous, e).hash !== e.hash) {
    return {
      seq: e.seq,
      reason: `the hash of entry ${e.seq} does not match its content: the entry was changed`,
    };
  }
  return undefined;
}

/**
 * Whether the SQLite file exists and has an audit table, read only: verifying must not create or
 * migrate a store where there is none (an empty file would otherwise pass as a store of 0 entries).
 */
function holdsAuditLog(path: string): boolean {
  if (!existsSync(path) || statSync(path).size === 0) return false;
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
    return (
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").get() !== undefined
    );
  } catch {
    // Not a database at all: openStore names the SQLite error.
    return true;
  } finally {
    db?.close();
  }
}

/** Walks the chain of the store `configFile` names; `env` decides the store as for `sm start`. */
export async function verifyAuditLog(
  configFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AuditVerdict> {
  const config = readSmConfig(configFile);
  const location = storeLocation(config, env);
  if ('sqlitePath' in location && !holdsAuditLog(location.sqlitePath)) {
    throw new HandoverError(
      'StoreNotFound',
      `no store at ${location.sqlitePath}: check --config (its dataDir), or set DATABASE_URL for a PostgreSQL store`,
      { path: location.sqlitePath },
    );
  }
  const store = await openStore(location);
  try {
    let previous: AuditEntry | undefined;
    let entries = 0;
    for (;;) {
      const rows = await readAuditRows(store.db, previous?.seq ?? 0, PAGE);
      for (const row of rows) {
        const broken = breakAt(previous, row);
        if (broken) return { valid: false, firstBrokenSeq: broken.seq, reason: broken.reason };
        if ('entry' in row) previous = row.entry;
        entries++;
      }
      if (rows.length < PAGE) return { valid: true, entries };
    }
  } finally {
    await store.close();
  }
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description("the SM's append-only, hash-chained audit log");
  audit
    .command('verify')
    .description(
      'check the audit hash chain in the store of an SM configuration; prints {"valid","entries"} or {"valid":false,"firstBrokenSeq","reason"}',
    )
    .requiredOption(
      '--config <file>',
      'the SM configuration file (its dataDir, or DATABASE_URL, names the store)',
    )
    .action(async (opts: { config: string }) => {
      const verdict = await verifyAuditLog(opts.config);
      process.stdout.write(`${JSON.stringify(verdict)}\n`);
      process.exitCode = verdict.valid ? 0 : 1;
    });
}
