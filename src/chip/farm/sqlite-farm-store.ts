/**
 * A chip farm's states in one SQLite file (WAL): table chips(eid PRIMARY KEY, state, version),
 * one row per chip, each save one transaction, so after a crash every row holds the state before
 * or after its last save, never a mix (PROTOCOL.md §4, as FileStateStore gives one chip).
 *
 * Rows are compact JSON. The certificates every chip of a farm shares (EUM, CIs, SM) are stored
 * once, in table certs, content-addressed by SHA-256, and rows carry "#<hash>" in their place:
 * about 1.1 kB a chip instead of 3 kB.
 *
 * Loading validates the row's shape (JSON, format, EID, field types), not the keys and
 * certificates inside it: full validation (validateChipState) costs ~1.4 ms a chip on OpenSSL 3.0
 * (certificate parsing and two PKCS#8 decodes), more than a whole transfer's chip cryptography,
 * and these rows are written only by this store, from states that were validated at creation or
 * produced by the chip's own command processor. `validate: 'full'` on open, and `verify()`, run
 * the full validation.
 *
 * Memory does not grow with the number of chips: the only caches are SQLite's page cache
 * (`cacheKiB`) and a bounded map of shared certificates.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { CURVES } from '../../protocol/crypto/curves.ts';
import { loadPrivateKeyPem } from '../../protocol/crypto/keys.ts';
import { makeEid } from '../../protocol/eid.ts';
import { HandoverError, InvalidInput } from '../../protocol/errors.ts';
import { parseCertificate } from '../../protocol/pki/certificate.ts';
import type { DevPki } from '../../protocol/pki/dev-pki.ts';
import { validateChain } from '../../protocol/pki/validate.ts';
import { createChipState } from '../create.ts';
import {
  CHIP_STATE_FORMAT,
  type ChipState,
  ChipStateInvalid,
  type ProfileState,
  toB64,
  validateChipState,
} from '../state.ts';
import type { ChipStateStore } from '../store.ts';
import { FarmChipIssuer, type IssuedChipIdentity } from './chip-issuer.ts';
import { LruMap } from './lru.ts';

export const FARM_FORMAT = 1;

/** No chip with this EID in the farm. */
export class FarmChipNotFound extends HandoverError {
  constructor(eid: string, path: string) {
    super('ChipStateNotFound', `no chip ${eid} in the farm ${path}`, { eid, path });
  }
}

export interface FarmOpenOptions {
  /**
   * 'full' (default): each commit is on disk (fsync) before it returns, as ChipStateStore
   * promises. 'normal': WAL commits survive a process crash and are never torn, but the last
   * ones may be lost at a power loss (SQLite synchronous=NORMAL); for benchmarks that say so.
   */
  readonly synchronous?: 'full' | 'normal';
  /** 'row' (default): the row's shape; 'full': validateChipState on every load (see the file comment). */
  readonly validate?: 'row' | 'full';
  /** SQLite page cache in KiB (default 16384): the farm's memory, whatever the number of chips. */
  readonly cacheKiB?: number;
}

export interface FarmInfo {
  readonly format: number;
  readonly curve: string;
  /** The SM the chips were created assigned to. */
  readonly smId: string;
  readonly eidPrefix: string;
  readonly startSerial: number;
  readonly count: number;
  readonly createdAt: string;
}

/** What an SM needs to register a chip (base64 DER). */
export interface FarmChipIdentity {
  readonly eid: string;
  readonly chipCertificate: string;
  readonly eumCertificate: string;
}

export interface FarmVerifyReport {
  readonly checked: number;
  /** The first 100 invalid rows. */
  readonly invalid: readonly { readonly eid: string; readonly message: string }[];
  readonly invalidCount: number;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const REF = /^#[0-9a-f]{64}$/;
const hashOf = (b64: string): string => createHash('sha256').update(b64).digest('hex');

/** The EID of the chip with this serial under an EID prefix (serial zero-padded to 30 digits). */
export function farmEid(eidPrefix: string, serial: number): string {
  const width = 30 - eidPrefix.length;
  const digits = String(serial);
  if (!Number.isSafeInteger(serial) || serial < 0 || digits.length > width) {
    throw new InvalidInput(
      'UsageError',
      `serial ${serial} does not fit the ${width} digits after ${eidPrefix}`,
    );
  }
  return makeEid(eidPrefix + digits.padStart(width, '0'));
}

function shapeProblem(v: unknown, eid: string): string | undefined {
  if (!isObj(v)) return 'not an object';
  if (v.format !== CHIP_STATE_FORMAT) return `format is not ${CHIP_STATE_FORMAT}`;
  if (v.eid !== eid) return 'eid differs from the row key';
  if (typeof v.curve !== 'string' || !CURVES.some((c) => c === v.curve)) return 'curve';
  for (const k of ['chipPrivateKey', 'chipCertificate', 'eumCertificate'] as const) {
    if (typeof v[k] !== 'string') return `${k} is not a string`;
  }
  if (!Array.isArray(v.ciCertificates) || !v.ciCertificates.every((c) => typeof c === 'string')) {
    return 'ciCertificates';
  }
  const a = v.assignment;
  if (!isObj(a) || typeof a.smId !== 'string' || typeof a.smCertificate !== 'string') return 'assignment';
  if (typeof a.counter !== 'number' || !Number.isInteger(a.counter)) return 'assignment.counter';
  if (!Array.isArray(v.profiles)) return 'profiles';
  if (v.pending !== undefined && (!isObj(v.pending) || typeof v.pending.otSkChip !== 'string'))
    return 'pending';
  return undefined;
}

/** The chips of one farm file. Not safe to share between processes that both write. */
export class ChipFarm {
  readonly path: string;
  readonly info: FarmInfo;
  readonly #db: BetterSqlite3.Database;
  readonly #validate: 'row' | 'full';
  /** hash → certificate base64: content-addressed, so a cached pair is always right. */
  readonly #certText = new LruMap<string, string>(256);
  /** Hashes known to be committed in certs (a save skips its INSERT OR IGNORE for them). */
  readonly #certKnown = new LruMap<string, true>(256);
  readonly #q: {
    load: BetterSqlite3.Statement<[string], string>;
    save: BetterSqlite3.Statement<[string, string]>;
    add: BetterSqlite3.Statement<[string, string]>;
    has: BetterSqlite3.Statement<[string], number>;
    version: BetterSqlite3.Statement<[string], number>;
    cert: BetterSqlite3.Statement<[string], string>;
    addCert: BetterSqlite3.Statement<[string, string]>;
    page: BetterSqlite3.Statement<[string, number], { eid: string; state: string }>;
    pageEids: BetterSqlite3.Statement<[string, number], string>;
  };

  readonly #saveTx: (eid: string, state: ChipState) => void;
  readonly #addTx: (state: ChipState) => void;

  /** Use openFarm / createFarm. */
  constructor(path: string, db: BetterSqlite3.Database, o: FarmOpenOptions = {}) {
    this.path = path;
    this.#db = db;
    this.#validate = o.validate ?? 'row';
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${o.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma(`cache_size = ${-(o.cacheKiB ?? 16384)}`);
    db.pragma('busy_timeout = 5000');
    // Statement journals and savepoints in memory, not in temporary files (as the SM store).
    db.pragma('temp_store = MEMORY');
    const meta = new Map(
      (db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]).map((r) => [
        r.key,
        r.value,
      ]),
    );
    if (meta.get('format') !== String(FARM_FORMAT)) {
      throw new HandoverError('InvalidFarm', `${path} is not a chip farm of format ${FARM_FORMAT}`);
    }
    this.info = {
      format: FARM_FORMAT,
      curve: meta.get('curve') ?? '',
      smId: meta.get('smId') ?? '',
      eidPrefix: meta.get('eidPrefix') ?? '',
      startSerial: Number(meta.get('startSerial') ?? 0),
      count: Number(meta.get('count') ?? 0),
      createdAt: meta.get('createdAt') ?? '',
    };
    this.#q = {
      load: db.prepare<[string], string>('SELECT state FROM chips WHERE eid = ?').pluck(),
      save: db.prepare<[string, string]>('UPDATE chips SET state = ?, version = version + 1 WHERE eid = ?'),
      add: db.prepare<[string, string]>('INSERT INTO chips (eid, state, version) VALUES (?, ?, 0)'),
      has: db.prepare<[string], number>('SELECT 1 FROM chips WHERE eid = ?').pluck(),
      version: db.prepare<[string], number>('SELECT version FROM chips WHERE eid = ?').pluck(),
      cert: db.prepare<[string], string>('SELECT b64 FROM certs WHERE hash = ?').pluck(),
      addCert: db.prepare<[string, string]>('INSERT OR IGNORE INTO certs (hash, b64) VALUES (?, ?)'),
      page: db.prepare<[string, number], { eid: string; state: string }>(
        'SELECT eid, state FROM chips WHERE eid > ? ORDER BY eid LIMIT ?',
      ),
      pageEids: db
        .prepare<[string, number], string>('SELECT eid FROM chips WHERE eid > ? ORDER BY eid LIMIT ?')
        .pluck(),
    };
    // better-sqlite3 runs a transaction function nested in another as a savepoint.
    this.#saveTx = db.transaction((eid: string, state: ChipState) => {
      if (this.#q.save.run(this.#encode(state), eid).changes !== 1) throw new FarmChipNotFound(eid, path);
    });
    this.#addTx = db.transaction((state: ChipState) => {
      this.#q.add.run(state.eid, this.#encode(state));
    });
    const known = db.prepare('SELECT hash FROM certs LIMIT 256').pluck().all() as string[];
    for (const h of known) this.#certKnown.set(h, true);
  }

  /** Number of chips (fixed at creation). */
  get count(): number {
    return this.info.count;
  }

  has(eid: string): boolean {
    return this.#q.has.get(eid) !== undefined;
  }

  /** How many times the chip's state was saved since creation; undefined when there is no such chip. */
  version(eid: string): number | undefined {
    return this.#q.version.get(eid);
  }

  load(eid: string): ChipState {
    const text = this.#q.load.get(eid);
    if (text === undefined) throw new FarmChipNotFound(eid, this.path);
    return this.#decode(eid, text, this.#validate);
  }

  /** Replaces the chip's row in one transaction (nested in an enclosing one as a savepoint). */
  save(eid: string, state: ChipState): void {
    if (state.eid !== eid) throw new InvalidInput('InvalidEid', `a state for ${state.eid} saved as ${eid}`);
    this.#saveTx(eid, state);
  }

  /** Adds a new chip (version 0); fails when the EID is in the farm already. */
  add(state: ChipState): void {
    this.#addTx(state);
  }

  /** The ChipStateStore of one chip: a view on its row. */
  store(eid: string): ChipStateStore {
    return { load: () => this.load(eid), save: (state) => this.save(eid, state) };
  }

  /**
   * Runs `fn` in one transaction (saves inside become savepoints): one fsync for many chips'
   * commands. If `fn` throws or the commit fails, every save inside is undone.
   */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /** Every EID in order, read a page at a time (no statement stays open between pages). */
  *eids(pageSize = 1000): Generator<string> {
    let after = '';
    for (;;) {
      const page = this.#q.pageEids.all(after, pageSize);
      yield* page;
      if (page.length < pageSize) return;
      after = page[page.length - 1]!;
    }
  }

  /** Every chip's certificates, for registering the chips at an SM. */
  *identities(pageSize = 1000): Generator<FarmChipIdentity> {
    let after = '';
    for (;;) {
      const page = this.#q.page.all(after, pageSize);
      for (const row of page) {
        const s = this.#decode(row.eid, row.state, 'row');
        yield { eid: s.eid, chipCertificate: s.chipCertificate, eumCertificate: s.eumCertificate };
      }
      if (page.length < pageSize) return;
      after = page[page.length - 1]!.eid;
    }
  }

  /** Full validation (validateChipState) of every row; about 1.4 ms a chip. */
  verify(onProgress?: (checked: number) => void): FarmVerifyReport {
    const invalid: { eid: string; message: string }[] = [];
    let checked = 0;
    let invalidCount = 0;
    let after = '';
    for (;;) {
      const page = this.#q.page.all(after, 500);
      for (const row of page) {
        checked++;
        try {
          this.#decode(row.eid, row.state, 'full');
        } catch (e) {
          invalidCount++;
          if (invalid.length < 100) invalid.push({ eid: row.eid, message: (e as Error).message });
        }
      }
      onProgress?.(checked);
      if (page.length < 500) break;
      after = page[page.length - 1]!.eid;
    }
    return { checked, invalid, invalidCount };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  // ---- rows ----

  #ref(b64: string): string {
    const hash = hashOf(b64);
    if (!this.#certKnown.has(hash)) this.#q.addCert.run(hash, b64);
    this.#certText.set(hash, b64);
    return `#${hash}`;
  }

  #deref(value: unknown, eid: string): unknown {
    if (typeof value !== 'string' || !REF.test(value)) return value;
    const hash = value.slice(1);
    let text = this.#certText.get(hash);
    if (text === undefined) {
      text = this.#q.cert.get(hash);
      if (text === undefined) {
        throw new ChipStateInvalid(`farm row ${eid}: no shared certificate ${hash}`, { field: 'certs' });
      }
      this.#certText.set(hash, text);
      if (!this.#db.inTransaction) this.#certKnown.set(hash, true);
    }
    return text;
  }

  #encode(s: ChipState): string {
    return JSON.stringify({
      ...s,
      eumCertificate: this.#ref(s.eumCertificate),
      ciCertificates: s.ciCertificates.map((c) => this.#ref(c)),
      assignment: { ...s.assignment, smCertificate: this.#ref(s.assignment.smCertificate) },
      ...(s.pending && {
        pending: { ...s.pending, newSmCertificate: this.#ref(s.pending.newSmCertificate) },
      }),
    });
  }

  #decode(eid: string, text: string, validate: 'row' | 'full'): ChipState {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new ChipStateInvalid(`farm row ${eid} is not valid JSON`);
    }
    if (isObj(v)) {
      v.eumCertificate = this.#deref(v.eumCertificate, eid);
      if (Array.isArray(v.ciCertificates))
        v.ciCertificates = v.ciCertificates.map((c) => this.#deref(c, eid));
      if (isObj(v.assignment)) v.assignment.smCertificate = this.#deref(v.assignment.smCertificate, eid);
      if (isObj(v.pending)) v.pending.newSmCertificate = this.#deref(v.pending.newSmCertificate, eid);
    }
    if (validate === 'full') {
      const state = validateChipState(v);
      if (state.eid !== eid) throw new ChipStateInvalid(`farm row ${eid} holds the state of ${state.eid}`);
      return state;
    }
    const problem = shapeProblem(v, eid);
    if (problem) throw new ChipStateInvalid(`farm row ${eid}: ${problem}`, { field: problem });
    return v as unknown as ChipState;
  }
}

function openDb(path: string, mustExist: boolean): BetterSqlite3.Database {
  if (mustExist && !existsSync(path)) {
    throw new HandoverError('InvalidFarm', `no chip farm at ${path}; create one with --create`);
  }
  return new BetterSqlite3(path, { fileMustExist: mustExist });
}

/** Opens an existing farm file. */
export function openFarm(path: string, o: FarmOpenOptions = {}): ChipFarm {
  const db = openDb(path, true);
  try {
    return new ChipFarm(path, db, o);
  } catch (e) {
    db.close();
    throw e;
  }
}

export interface FarmProgress {
  readonly created: number;
  readonly count: number;
  readonly seconds: number;
  readonly chipsPerSecond: number;
}

export interface CreateFarmOptions extends FarmOpenOptions {
  /** The dev PKI whose EUM issues the chips and whose CI they trust. */
  readonly pki: DevPki;
  readonly count: number;
  /** The SM every chip starts assigned to (its certificate comes from the PKI). */
  readonly smId: string;
  readonly path: string;
  /** Serial of the first chip inside the EUM's EID prefix (default 1). */
  readonly startSerial?: number;
  readonly profiles?: readonly ProfileState[];
  /** Chips per insert transaction (default 1000); progress is reported after each. */
  readonly batchSize?: number;
  readonly onProgress?: (p: FarmProgress) => void;
}

const SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE certs (hash TEXT PRIMARY KEY, b64 TEXT NOT NULL);
  CREATE TABLE chips (eid TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL);
`;

/**
 * Creates a farm of `count` chips, EIDs `startSerial`… under the PKI's EID prefix, all assigned
 * to `smId`, each with its own key and chip certificate from the PKI's EUM (see chip-issuer.ts).
 * Writes `${path}.creating` and renames it into place at the end, so an interrupted creation
 * leaves no half farm. Refuses to overwrite an existing file.
 */
export async function createFarm(o: CreateFarmOptions): Promise<ChipFarm> {
  if (!Number.isSafeInteger(o.count) || o.count < 1) {
    throw new InvalidInput('UsageError', '--count must be a positive integer');
  }
  const startSerial = o.startSerial ?? 1;
  const prefix = o.pki.manifest.eidPrefix;
  farmEid(prefix, startSerial + o.count - 1); // the last serial fits
  if (existsSync(o.path)) throw new InvalidInput('UsageError', `${o.path} exists already`);
  const sm = o.pki.sms.get(o.smId);
  if (!sm) {
    throw new InvalidInput('UnknownSm', `no SM "${o.smId}" in the PKI (${[...o.pki.sms.keys()].join(', ')})`);
  }
  const batchSize = o.batchSize ?? 1000;
  const started = performance.now();

  // The first chip through createChipState: chain, SM certificate, key and state all validated.
  const issuer = new FarmChipIssuer(o.pki.eum, farmEid(prefix, startSerial));
  const first = createChipState({
    identity: {
      kind: 'existing',
      chipCertificate: parseCertificate(issuer.first.certificateDer),
      chipKey: loadPrivateKeyPem(issuer.first.privateKeyPem),
      eumCertificate: o.pki.eum.certificate,
    },
    ciCertificates: [o.pki.ci.certificate],
    smId: o.smId,
    smCertificate: sm.certificate,
    ...(o.profiles && { profiles: o.profiles }),
  });
  const stateOf = (id: IssuedChipIdentity): ChipState => ({
    ...first,
    eid: id.eid,
    chipPrivateKey: id.privateKeyPem,
    chipCertificate: toB64(id.certificateDer),
  });
  // The second through the full validation too: the template patching is right, or nothing is written.
  const second = o.count > 1 ? issuer.issue(farmEid(prefix, startSerial + 1)) : undefined;
  if (second) {
    validateChipState(stateOf(second));
    validateChain([parseCertificate(second.certificateDer), o.pki.eum.certificate], {
      trusted: [o.pki.ci.certificate],
      expectRole: 'chip',
    });
  }

  const temp = `${o.path}.creating`;
  for (const f of [temp, `${temp}-wal`, `${temp}-shm`]) rmSync(f, { force: true });
  const db = openDb(temp, false);
  try {
    // 8 KiB pages hold five ~1.4 kB rows (4 KiB pages hold two).
    db.pragma('page_size = 8192');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // durability comes from the close and rename below
    db.exec(SCHEMA);
    const setMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    db.transaction(() => {
      for (const [k, v] of Object.entries({
        format: String(FARM_FORMAT),
        curve: issuer.curve,
        smId: o.smId,
        eidPrefix: prefix,
        startSerial: String(startSerial),
        count: String(o.count),
        createdAt: new Date().toISOString(),
      })) {
        setMeta.run(k, v);
      }
    })();
    const farm = new ChipFarm(temp, db, { synchronous: 'normal' });
    let created = 0;
    while (created < o.count) {
      const n = Math.min(batchSize, o.count - created);
      const rows: [string, ChipState][] = [];
      for (let i = 0; i < n; i++) {
        const index = created + i;
        const id =
          index === 0
            ? issuer.first
            : index === 1 && second
              ? second
              : issuer.issue(farmEid(prefix, startSerial + index));
        rows.push([id.eid, index === 0 ? first : stateOf(id)]);
      }
      farm.transaction(() => {
        for (const [, state] of rows) farm.add(state);
      });
      created += n;
      const seconds = (performance.now() - started) / 1000;
      o.onProgress?.({ created, count: o.count, seconds, chipsPerSecond: created / seconds });
      await new Promise<void>((r) => setImmediate(r));
    }
    db.close();
  } catch (e) {
    if (db.open) db.close();
    for (const f of [temp, `${temp}-wal`, `${temp}-shm`]) rmSync(f, { force: true });
    throw e;
  }
  renameSync(temp, o.path);
  const dirFd = openSync(dirname(o.path), 'r');
  try {
    fsyncSync(dirFd); // the rename is durable only once the folder entry is
  } finally {
    closeSync(dirFd);
  }
  return openFarm(o.path, o);
}
