/**
 * Composition root of one SM process (ARCHITECTURE.md: config → store → domain → http): the
 * configuration's files are loaded and checked, the store opened, the SubscriptionManager built,
 * the HTTPS app listening; two background loops carry out what the domain decided (the outbox's
 * peer deliveries and operator webhooks, every ~250 ms) and what time decides (expiry, every few seconds). close()
 * stops the loops, then the server (requests in flight finish), then the store.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { keySigner } from '../protocol/crypto/signer.ts';
import { errorCode, HandoverError } from '../protocol/errors.ts';
import type { ScryptParams } from './domain/locks.ts';
import { SmError } from './errors.ts';
import { buildSmApp, type SmApp, type SmLoggerOptions } from './http/app.ts';
import { type IdempotencyStore, MemoryIdempotencyStore } from './http/idempotency.ts';
import { serverTlsOptions } from './http/tls.ts';
import { HttpPeerTransport } from './http-peer-transport.ts';
import type { PeerTransport } from './peer-api.ts';
import {
  ConfigInvalid,
  type LogLevel,
  loadSmMaterial,
  type SmMaterial,
  type SmServerConfig,
  type StoreLocation,
  storeLocation,
} from './server-config.ts';
import { openStore, sqlIdempotencyStore } from './store/kysely/index.ts';
import type { SmStore } from './store/types.ts';
import { SubscriptionManager } from './subscription-manager.ts';
import { webhookNotifier } from './webhooks.ts';

export interface OpenedStore {
  readonly store: SmStore;
  /** Where it lives, for the start-up log line. */
  readonly location: StoreLocation | { readonly memory: true; readonly configured: StoreLocation };
  close(): Promise<void>;
}

/**
 * The store a configuration names: `<dataDir>/sm.sqlite` (SQLite, the default), or PostgreSQL
 * when DATABASE_URL is set (storeLocation). Migrations run when it opens.
 */
export async function createStore(
  config: SmServerConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<OpenedStore> {
  const location = storeLocation(config, env);
  if ('sqlitePath' in location) mkdirSync(dirname(location.sqlitePath), { recursive: true });
  const store = await openStore(location);
  return { store, location, close: () => store.close() };
}

export interface LoopIntervals {
  /** Outbox drain (peer deliveries, then operator webhooks); default 250 ms. */
  readonly outboxMs?: number;
  /** expire(); default 5 s. */
  readonly expireMs?: number;
  /** Bulk transfer jobs (stepBulkJobs); default 250 ms. */
  readonly bulkMs?: number;
}

export interface StartSmServerOptions {
  /** Use this store instead of createStore(config) (not closed by close()). */
  readonly store?: SmStore;
  readonly clock?: () => Date;
  /** Default: the config's logLevel (HANDOVER_LOG_LEVEL overrides) to stdout. false: silent. */
  readonly logger?: false | SmLoggerOptions;
  readonly env?: NodeJS.ProcessEnv;
  readonly intervals?: LoopIntervals;
  /** Peer transport (default: HttpPeerTransport with the SM's certificate). */
  readonly peerTransport?: PeerTransport;
  /** Default: durable in a SQL store (the table of migration 0002), else in memory. */
  readonly idempotency?: IdempotencyStore;
  /** Unlock-code hashing cost (default: production strength); tests lower it. */
  readonly unlockScrypt?: ScryptParams;
}

export interface SmServerHandle {
  readonly smId: string;
  /** https://host:port of the listener. */
  readonly url: string;
  readonly sm: SubscriptionManager;
  readonly store: SmStore;
  readonly app: SmApp;
  close(): Promise<void>;
}

interface Loop {
  stop(): Promise<void>;
}

/** Runs `fn` every `ms` (never two at once); failures are logged and the loop goes on. */
function every(ms: number, fn: () => Promise<unknown>, onError: (e: unknown) => void): Loop {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = fn()
      .then(
        () => undefined,
        (e: unknown) => onError(e),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, ms);
      });
  };
  timer = setTimeout(tick, ms);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

function buildSm(
  config: SmServerConfig,
  material: SmMaterial,
  store: SmStore,
  clock: () => Date,
  unlockScrypt: ScryptParams | undefined,
): SubscriptionManager {
  try {
    return new SubscriptionManager({
      smId: config.smId,
      signer: keySigner(material.privateKey),
      certificate: material.certificate.der,
      trustedCis: material.trustedCis,
      store,
      clock,
      permissionValidityMs: config.permissionValidityHours * 3_600_000,
      operators: config.operators.map((op) => ({
        id: op.id,
        approvalRequired: op.approvalRequired,
        webhook: op.webhook !== undefined,
      })),
      directory: new Map(
        [...material.peers.values()].map((p) => [
          p.smId,
          { address: p.baseUrl, certificate: p.certificate.der },
        ]),
      ),
      ...(unlockScrypt && { unlockScrypt }),
    });
  } catch (e) {
    if (e instanceof SmError) throw new ConfigInvalid('', e.message, { source: config.source });
    throw e;
  }
}

const LOG_LEVELS: ReadonlySet<string> = new Set([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
]);

/** HANDOVER_LOG_LEVEL if set to a level, else the config's logLevel, else info. */
export function logLevelFor(config: SmServerConfig, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const fromEnv = env.HANDOVER_LOG_LEVEL;
  return fromEnv !== undefined && LOG_LEVELS.has(fromEnv)
    ? (fromEnv as LogLevel)
    : (config.logLevel ?? 'info');
}

/** Starts one SM: loads the configuration's files, opens the store, listens, starts the loops. */
export async function startSmServer(
  config: SmServerConfig,
  o: StartSmServerOptions = {},
): Promise<SmServerHandle> {
  const clock = o.clock ?? (() => new Date());
  const material = loadSmMaterial(config, clock());
  const webhooks = webhookNotifier(config);
  const opened: Pick<OpenedStore, 'store' | 'close'> & { location?: OpenedStore['location'] } = o.store
    ? { store: o.store, close: async () => {} }
    : await createStore(config, o.env ?? process.env);
  const store = opened.store;
  let app: SmApp | undefined;
  let transport: HttpPeerTransport | undefined;
  try {
    const sm = buildSm(config, material, store, clock, o.unlockScrypt);
    app = await buildSmApp({
      smId: config.smId,
      sm,
      store,
      tls: serverTlsOptions(material),
      trustedCis: material.trustedCis,
      peers: new Set(material.peers.keys()),
      operators: config.operators,
      clock,
      logger: o.logger ?? { level: logLevelFor(config, o.env) },
      // Durable keys on a SQL store; in memory for any other store.
      idempotency: o.idempotency ?? sqlIdempotencyStore(store) ?? new MemoryIdempotencyStore(),
    });
    await app.listen({ host: config.listen.host, port: config.listen.port });
    const address = app.server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `https://${host}:${address.port}`;

    transport = o.peerTransport
      ? undefined
      : new HttpPeerTransport({
          smId: config.smId,
          identity: material,
          trustedCis: material.trustedCis,
          clock,
        });
    const peers: PeerTransport | undefined = o.peerTransport ?? transport;
    if (!peers) throw new Error('no peer transport');
    const log = app.log;
    log.info({ smId: config.smId, url, store: opened.location ?? 'given' }, 'SM listening');
    for (const operatorId of webhooks.unsigned())
      log.warn({ operatorId }, 'webhook has no secretFile: its deliveries are not signed');
    const outbox = every(
      o.intervals?.outboxMs ?? 250,
      async () => {
        const r = await sm.drainOutbox(peers, webhooks);
        if (r.delivered + r.refused + r.retried > 0) log.debug({ outbox: r }, 'outbox drained');
      },
      (e) => log.error({ err: e }, 'outbox drain failed'),
    );
    const expiry = every(
      o.intervals?.expireMs ?? 5000,
      async () => {
        const r = await sm.expire();
        if (r.expired.length + r.cancelsIssued.length > 0) log.info({ expiry: r }, 'transfers expired');
      },
      (e) => log.error({ err: e }, 'expiry failed'),
    );
    const bulk = every(
      o.intervals?.bulkMs ?? 250,
      async () => {
        const r = await sm.stepBulkJobs();
        if (r.started + r.ended + r.jobsCompleted > 0) log.debug({ bulk: r }, 'bulk jobs stepped');
      },
      (e) => log.error({ err: e }, 'bulk step failed'),
    );
    const started = app;
    let closing: Promise<void> | undefined;
    return {
      smId: config.smId,
      url,
      sm,
      store,
      app: started,
      close() {
        closing ??= (async () => {
          await Promise.all([outbox.stop(), expiry.stop(), bulk.stop()]);
          await started.close();
          transport?.close();
          webhooks.close();
          await opened.close();
        })();
        return closing;
      },
    };
  } catch (e) {
    await app?.close();
    transport?.close();
    webhooks.close();
    await opened.close();
    if (e instanceof HandoverError) throw e;
    const code = errorCode(e);
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConfigInvalid(
        'listen',
        `cannot listen on ${config.listen.host}:${config.listen.port} (${code}): choose another host or port`,
        { source: config.source },
      );
    }
    throw e;
  }
}

/** Closes the server on SIGTERM or SIGINT; resolves once closed. */
export function closeOnSignals(
  handle: SmServerHandle,
  onSignal?: (signal: NodeJS.Signals) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      onSignal?.(signal);
      handle.close().then(resolve, reject);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
