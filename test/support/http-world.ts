/**
 * Test helper for the SM over HTTPS: a dev PKI in a temporary folder, SM servers started with
 * startSmServer on 127.0.0.1 (ports picked first, since each SM's directory names the others'
 * URLs), MemoryStores the tests can dump, and a small HTTPS client that checks the server the way
 * real clients do (chain to the CI, SM role, CN = the expected SM id).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Curve } from '../../src/protocol/crypto/curves.ts';
import { makeEid } from '../../src/protocol/eid.ts';
import type { Certificate } from '../../src/protocol/pki/certificate.ts';
import { certificateToPem } from '../../src/protocol/pki/certificate.ts';
import { createDevPki, type DevPki, smFileBase } from '../../src/protocol/pki/dev-pki.ts';
import type { ScryptParams } from '../../src/sm/domain/locks.ts';
import { clientTlsOptions, type TlsIdentity } from '../../src/sm/http/tls.ts';
import { type SmServerHandle, startSmServer } from '../../src/sm/server.ts';
import { parseSmConfig, type SmServerConfig, tokenSha256 } from '../../src/sm/server-config.ts';
import { MemoryStore } from '../../src/sm/store/memory.ts';

export const ALPHA = 'sm-alpha.example';
export const BETA = 'sm-beta.example';
export const GAMMA = 'sm-gamma.example';
/** Cheap unlock-code hashing, so lock tests stay fast (the default is production strength). */
export const FAST_SCRYPT: ScryptParams = { N: 2 ** 10, r: 8, p: 1 };

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
  readonly store: MemoryStore;
  /** Bearer token per operator id. */
  readonly tokens: ReadonlyMap<string, string>;
}

export interface HttpWorld {
  readonly curve: Curve;
  readonly dir: string;
  readonly pki: DevPki;
  readonly sms: ReadonlyMap<string, WorldSm>;
  get(smId: string): WorldSm;
  /** The TLS identity (key, certificate, CI bundle) of an SM of the dev PKI. */
  identity(smId: string): TlsIdentity;
  eid(serial: number): string;
  /** The URL of any SM of the world, started or not. */
  urlOf(smId: string): string;
  close(): Promise<void>;
}

export interface WorldOptions {
  readonly curve?: Curve;
  readonly sms: readonly SmSpec[];
  /** SM ids certified by the PKI but not started (callers the test impersonates, SMs that are down). */
  readonly extraSmIds?: readonly string[];
  readonly outboxMs?: number;
  readonly expireMs?: number;
  /** One clock for every SM (default: real time). */
  readonly clock?: () => Date;
}

/** A free TCP port on 127.0.0.1 (closed again before use: a tiny race, fine in tests). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

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
  const tmp = tempDir(`handover-http-${curve}-`);
  const smIds = o.sms.map((s) => s.smId);
  const pki = createDevPki({ curve, dir: join(tmp.dir, 'pki'), smIds: [...smIds, ...(o.extraSmIds ?? [])] });
  const ports = new Map<string, number>();
  // SMs that are certified but not started get a port too: nothing listens there (an SM that is down).
  for (const id of [...smIds, ...(o.extraSmIds ?? [])]) ports.set(id, await freePort());
  const urlOf = (id: string) => `https://127.0.0.1:${ports.get(id)}`;
  const sms = new Map<string, WorldSm>();
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
      const store = new MemoryStore();
      const handle = await startSmServer(config, {
        store,
        logger: false,
        unlockScrypt: FAST_SCRYPT,
        intervals: { outboxMs: o.outboxMs ?? 50, expireMs: o.expireMs ?? 60_000 },
        ...(o.clock && { clock: o.clock }),
      });
      sms.set(spec.smId, { smId: spec.smId, url: handle.url, config, handle, store, tokens });
    }
  } catch (e) {
    await Promise.all([...sms.values()].map((s) => s.handle.close()));
    tmp.remove();
    throw e;
  }
  return {
    curve,
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
    async close() {
      await Promise.all([...sms.values()].map((s) => s.handle.close()));
      tmp.remove();
    },
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
