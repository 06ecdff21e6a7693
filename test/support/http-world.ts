/**
 * Test helper for the SM over HTTPS: a dev PKI in a temporary folder, SM servers started with
 * startSmServer on 127.0.0.1 (ports picked first, since each SM's directory names the others'
 * URLs), each on a store of the chosen backend (a MemoryStore; a SQLite file in the SM's data
 * folder; a fresh PostgreSQL schema per SM in the database DATABASE_URL names, dropped at the
 * end), and a small HTTPS client that checks the server the way real clients do (chain to the
 * CI, SM role, CN = the expected SM id). `dump()` lists a store's content the same way on every
 * backend, for "a refusal changes nothing" checks.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { freePort } from '../../src/net/free-port.ts';
import type { Curve } from '../../src/protocol/crypto/curves.ts';
import { makeEid } from '../../src/protocol/eid.ts';
import type { Certificate } from '../../src/protocol/pki/certificate.ts';
import { certificateToPem } from '../../src/protocol/pki/certificate.ts';
import { createDevPki, type DevPki, smFileBase } from '../../src/protocol/pki/dev-pki.ts';
import type { ScryptParams } from '../../src/sm/domain/locks.ts';
import { clientTlsOptions, type TlsIdentity } from '../../src/sm/http/tls.ts';
import { type SmServerHandle, startSmServer } from '../../src/sm/server.ts';
import { parseSmConfig, type SmServerConfig, SQLITE_FILE, tokenSha256 } from '../../src/sm/server-config.ts';
import { openSqliteStore, type SqlStore } from '../../src/sm/store/kysely/index.ts';
import { tempSchema, testDatabaseUrl } from '../../src/sm/store/kysely/testing.ts';
import { MemoryStore } from '../../src/sm/store/memory.ts';
import type {
  AuditEntry,
  ChipRecord,
  OrderRecord,
  OutboxItem,
  SmStore,
  TransferRecord,
} from '../../src/sm/store/types.ts';

export const ALPHA = 'sm-alpha.example';
export const BETA = 'sm-beta.example';
export const GAMMA = 'sm-gamma.example';
/** Cheap unlock-code hashing, so lock tests stay fast (the default is production strength). */
export const FAST_SCRYPT: ScryptParams = { N: 2 ** 10, r: 8, p: 1 };

// ---- store backends ----

export type StoreBackend = 'memory' | 'sqlite' | 'postgres';
/** The backends the endpoint and refusal suites run on. */
export const SQL_BACKENDS: readonly StoreBackend[] = ['sqlite', 'postgres'];
export const PG_HTTP_SKIP = 'DATABASE_URL not set: the PostgreSQL variant of this HTTP suite is skipped';

/** Why a backend cannot run here (PostgreSQL without DATABASE_URL), or undefined. */
export function backendSkip(backend: StoreBackend): string | undefined {
  return backend === 'postgres' && testDatabaseUrl() === undefined ? PG_HTTP_SKIP : undefined;
}

/**
 * node:test's `test` for a suite on `backend`: when the backend cannot run here, every test calls
 * t.skip(reason), so the skipped variant lists the same tests as the real one.
 */
export function testOn(
  backend: StoreBackend,
): (name: string, body: (t: TestContext) => Promise<void> | void) => Promise<void> {
  const skip = backendSkip(backend);
  return (name, body) =>
    test(name, async (t) => {
      if (skip !== undefined) {
        t.skip(skip);
        return;
      }
      await body(t);
    });
}

/** An SM's store as lists, the same shape on every backend (insertion order). */
export interface StoreDump {
  readonly chips: ChipRecord[];
  readonly transfers: TransferRecord[];
  readonly orders: OrderRecord[];
  readonly outbox: OutboxItem[];
  readonly audit: AuditEntry[];
}

export function dumpStore(store: SmStore): Promise<StoreDump> {
  return store.transaction(async (tx) => ({
    chips: await tx.listChips(),
    transfers: await tx.listTransfers(),
    orders: await tx.listOrders(),
    outbox: await tx.listOutbox(),
    audit: await tx.listAudit(),
  }));
}

/**
 * What a request may change, for "a refusal changes nothing": the whole store except the
 * delivery bookkeeping of peer and operator outbox items, which the outbox loop updates in the
 * background (an operator without a webhook has its notifications settled at once).
 */
export async function requestVisibleState(store: SmStore): Promise<StoreDump> {
  const d = await dumpStore(store);
  return {
    ...d,
    outbox: d.outbox.map((item): OutboxItem => {
      if (item.channel === 'device') return item;
      const { state: _s, attempts: _a, nextAttemptAt: _n, lastError: _l, deliveredAt: _d, ...rest } = item;
      return { ...rest, state: 'pending', attempts: 0, nextAttemptAt: item.createdAt };
    }),
  };
}

/** Where one SM's store lives for the whole world: it outlives the SM's restarts. */
interface StoreHome {
  open(): Promise<SmStore>;
  /** Closes a store from `open` (the SM keeps its data: a restart reopens it). */
  close(store: SmStore): Promise<void>;
  /** Closes the last store and removes its data (PostgreSQL: drops the schema). */
  dispose(last: SmStore | undefined): Promise<void>;
}

function storeHome(backend: StoreBackend, dataDir: string): StoreHome {
  switch (backend) {
    case 'memory': {
      // The same MemoryStore across restarts, as a database would be.
      const store = new MemoryStore();
      return { open: async () => store, close: async () => {}, dispose: async () => {} };
    }
    case 'sqlite': {
      const path = join(dataDir, SQLITE_FILE);
      return {
        async open() {
          mkdirSync(dirname(path), { recursive: true });
          return openSqliteStore(path);
        },
        close: (store) => (store as SqlStore).close(),
        dispose: async (last) => {
          await (last as SqlStore | undefined)?.close();
        },
      };
    }
    case 'postgres': {
      const url = testDatabaseUrl();
      if (url === undefined) throw new Error(PG_HTTP_SKIP);
      const schema = tempSchema(url);
      return {
        open: () => schema.open({ poolSize: 4 }),
        close: (store) => (store as SqlStore).close(),
        async dispose(last) {
          await (last as SqlStore | undefined)?.close();
          // Dropped through a store of its own: the SM's is closed by now.
          await schema.drop(await schema.open({ poolSize: 1 }));
        },
      };
    }
  }
}

export interface OperatorSpec {
  readonly id: string;
  readonly approvalRequired?: boolean;
}

export interface SmSpec {
  readonly smId: string;
  readonly operators: readonly OperatorSpec[];
  /** Peer SM ids (default: every other SM of the world). */
  readonly peers?: readonly string[];
}

export interface WorldSm {
  readonly smId: string;
  readonly url: string;
  readonly config: SmServerConfig;
  readonly handle: SmServerHandle;
  readonly store: SmStore;
  /** Bearer token per operator id. */
  readonly tokens: ReadonlyMap<string, string>;
  /** The store's content now, as requests see it (requestVisibleState). */
  dump(): Promise<StoreDump>;
  /** Every outbox item as stored, delivery state included. */
  outbox(): Promise<OutboxItem[]>;
}

export interface HttpWorld {
  readonly curve: Curve;
  readonly backend: StoreBackend;
  readonly dir: string;
  readonly pki: DevPki;
  readonly sms: ReadonlyMap<string, WorldSm>;
  get(smId: string): WorldSm;
  /** The TLS identity (key, certificate, CI bundle) of an SM of the dev PKI. */
  identity(smId: string): TlsIdentity;
  eid(serial: number): string;
  /** The URL of any SM of the world, started or not. */
  urlOf(smId: string): string;
  /**
   * Stops an SM (close: requests in flight finish) and starts it again on the same port and
   * store (reopened: what was committed is all it has).
   */
  restart(smId: string): Promise<WorldSm>;
  close(): Promise<void>;
}

export interface WorldOptions {
  readonly curve?: Curve;
  /** Default: memory. */
  readonly backend?: StoreBackend;
  readonly sms: readonly SmSpec[];
  /** SM ids certified by the PKI but not started (callers the test impersonates, SMs that are down). */
  readonly extraSmIds?: readonly string[];
  readonly outboxMs?: number;
  readonly expireMs?: number;
  /** Bulk job loop (default 50 ms). */
  readonly bulkMs?: number;
  /** One clock for every SM (default: real time). */
  readonly clock?: () => Date;
}

export { freePort };

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function tlsIdentityOf(pki: DevPki, smId: string): TlsIdentity {
  const e = pki.sms.get(smId);
  if (!e) throw new Error(`no SM ${smId} in the dev PKI`);
  return {
    keyPem: e.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    certPem: certificateToPem(e.certificate),
    certificate: e.certificate,
    caPem: certificateToPem(pki.ci.certificate),
  };
}

export async function createHttpWorld(o: WorldOptions): Promise<HttpWorld> {
  const curve = o.curve ?? 'p256';
  const backend = o.backend ?? 'memory';
  const skip = backendSkip(backend);
  if (skip !== undefined) throw new Error(skip);
  const tmp = tempDir(`handover-http-${curve}-`);
  const smIds = o.sms.map((s) => s.smId);
  const pki = createDevPki({ curve, dir: join(tmp.dir, 'pki'), smIds: [...smIds, ...(o.extraSmIds ?? [])] });
  const ports = new Map<string, number>();
  // SMs that are certified but not started get a port too: nothing listens there (an SM that is down).
  for (const id of [...smIds, ...(o.extraSmIds ?? [])]) ports.set(id, await freePort());
  const urlOf = (id: string) => `https://127.0.0.1:${ports.get(id)}`;
  const sms = new Map<string, WorldSm>();
  const homes = new Map<string, StoreHome>();

  async function start(
    config: SmServerConfig,
    tokens: ReadonlyMap<string, string>,
    home: StoreHome,
  ): Promise<WorldSm> {
    const store = await home.open();
    let handle: SmServerHandle;
    try {
      handle = await startSmServer(config, {
        store,
        logger: false,
        unlockScrypt: FAST_SCRYPT,
        intervals: { outboxMs: o.outboxMs ?? 50, expireMs: o.expireMs ?? 60_000, bulkMs: o.bulkMs ?? 50 },
        ...(o.clock && { clock: o.clock }),
      });
    } catch (e) {
      await home.close(store);
      throw e;
    }
    const sm: WorldSm = {
      smId: config.smId,
      url: handle.url,
      config,
      store,
      tokens,
      dump: () => requestVisibleState(store),
      outbox: () => store.transaction((tx) => tx.listOutbox()),
      handle: {
        ...handle,
        // The world's store outlives the server: closing the handle closes it too.
        async close() {
          await handle.close();
          if (sms.get(config.smId) === sm) await home.close(store);
        },
      },
    };
    return sm;
  }

  try {
    for (const spec of o.sms) {
      const tokens = new Map(spec.operators.map((op) => [op.id, randomBytes(24).toString('base64url')]));
      const peers = spec.peers ?? smIds.filter((p) => p !== spec.smId);
      const file = {
        smId: spec.smId,
        keyFile: `pki/${smFileBase(spec.smId)}.key`,
        certFile: `pki/${smFileBase(spec.smId)}.pem`,
        ciFiles: ['pki/ci.pem'],
        listen: { host: '127.0.0.1', port: ports.get(spec.smId)! },
        dataDir: `data/${spec.smId}`,
        peers: peers.map((p) => ({ smId: p, baseUrl: urlOf(p), certFile: `pki/${smFileBase(p)}.pem` })),
        operators: spec.operators.map((op) => ({
          id: op.id,
          tokenSha256: tokenSha256(tokens.get(op.id)!),
          approvalRequired: op.approvalRequired ?? false,
        })),
      };
      const config = parseSmConfig(file, tmp.dir, `${spec.smId}.json`);
      const home = storeHome(backend, config.dataDir);
      homes.set(spec.smId, home);
      sms.set(spec.smId, await start(config, tokens, home));
    }
  } catch (e) {
    await shutdown();
    throw e;
  }

  async function shutdown(): Promise<void> {
    const running = [...sms.values()];
    await Promise.allSettled(running.map((s) => s.handle.close()));
    await Promise.allSettled([...homes.entries()].map(([id, home]) => home.dispose(sms.get(id)?.store)));
    tmp.remove();
  }

  return {
    curve,
    backend,
    dir: tmp.dir,
    pki,
    sms,
    get(smId) {
      const s = sms.get(smId);
      if (!s) throw new Error(`no SM ${smId} in this world`);
      return s;
    },
    identity: (smId) => tlsIdentityOf(pki, smId),
    urlOf,
    eid: (serial) =>
      makeEid(pki.manifest.eidPrefix + String(serial).padStart(30 - pki.manifest.eidPrefix.length, '0')),
    async restart(smId) {
      const old = sms.get(smId);
      const home = homes.get(smId);
      if (!old || !home) throw new Error(`no SM ${smId} in this world`);
      await old.handle.close();
      const again = await start(old.config, old.tokens, home);
      sms.set(smId, again);
      return again;
    },
    close: shutdown,
  };
}

// ---- an HTTPS client for tests ----

export interface CallOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** An object is sent as JSON; a string as is (with content-type application/json unless given). */
  readonly body?: unknown;
  /** Present this SM certificate as the TLS client certificate. */
  readonly clientIdentity?: TlsIdentity;
  /** The SM id the server must prove (default: the SM the world started at that URL). */
  readonly expectedSmId: string;
  readonly caPem: string;
  readonly trustedCis: readonly Certificate[];
}

export interface CallResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
  /** The parsed body (undefined when not JSON). */
  readonly json: unknown;
  /** The negotiated TLS version. */
  readonly protocol: string | null;
}

export function httpsCall(url: string, o: CallOptions): Promise<CallResult> {
  const body =
    o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...o.headers };
  if (body !== undefined) {
    headers['content-length'] = String(Buffer.byteLength(body));
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
      headers['content-type'] = 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: o.method ?? (body === undefined ? 'GET' : 'POST'),
        headers,
        agent: false,
        ...clientTlsOptions({
          expectedSmId: o.expectedSmId,
          caPem: o.caPem,
          trustedCis: o.trustedCis,
          ...(o.clientIdentity && { clientIdentity: o.clientIdentity }),
        }),
      },
      (res) => {
        const protocol = (res.socket as TLSSocket).getProtocol?.() ?? null;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, protocol });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Calls on one SM of a world, as a given party. */
export interface SmClient {
  call(path: string, o?: Omit<CallOptions, 'expectedSmId' | 'caPem' | 'trustedCis'>): Promise<CallResult>;
}

export function smClient(
  world: HttpWorld,
  smId: string,
  as: { operator?: string; peer?: string } = {},
): SmClient {
  const sm = world.get(smId);
  const ci = world.pki.ci.certificate;
  const caPem = world.identity(smId).caPem;
  return {
    call(path, o = {}) {
      const token = as.operator === undefined ? undefined : sm.tokens.get(as.operator);
      if (as.operator !== undefined && token === undefined)
        throw new Error(`no operator ${as.operator} at ${smId}`);
      return httpsCall(`${sm.url}${path}`, {
        ...o,
        headers: { ...(token !== undefined && { authorization: `Bearer ${token}` }), ...o.headers },
        ...(as.peer !== undefined && { clientIdentity: world.identity(as.peer) }),
        expectedSmId: smId,
        caPem,
        trustedCis: [ci],
      });
    },
  };
}

/** Polls `probe` until it returns a value (not undefined), or fails after `ms`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  ms = 5000,
  what = 'condition',
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let keys = 0;
/** A fresh Idempotency-Key header. */
export const idem = (): Record<string, string> => ({
  'idempotency-key': `test-${process.pid}-${++keys}-${Date.now()}`,
});
