/**
 * Device-poll load benchmark: one SM server (startSmServer, in this process) on SQLite (a
 * temporary folder) or PostgreSQL (a fresh schema, dropped afterwards), N registered chips, and
 * a bounded number of keep-alive HTTPS clients (in a worker thread, so they do not share the
 * server's event loop) calling GET /device/v1/chips/:eid/messages for random chips for a fixed
 * time. Loopback only. Prints one JSON object:
 *   {store, chips, requests, seconds, requestsPerSecond, p50Ms, p99Ms, errors, concurrency}
 *
 *   npm run bench:poll [-- --store sqlite|postgres] [--chips 1000] [--seconds 10] [--concurrency 32]
 *
 * PostgreSQL: DATABASE_URL, or postgres://postgres@127.0.0.1:5432/test.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { sql } from 'kysely';
import { makeEid } from '../src/protocol/eid.ts';
import { certificateToPem, loadCertificates } from '../src/protocol/pki/certificate.ts';
import { createDevPki, smFileBase } from '../src/protocol/pki/dev-pki.ts';
import { issueChip } from '../src/protocol/pki/issue.ts';
import { clientTlsOptions } from '../src/sm/http/tls.ts';
import { startSmServer } from '../src/sm/server.ts';
import { parseSmConfig, tokenSha256 } from '../src/sm/server-config.ts';
import { openPostgresStore, openSqliteStore, type SqlStore } from '../src/sm/store/kysely/index.ts';

const SM_ID = 'sm-bench.example';
const OPERATOR = 'mno-bench';
const DEFAULT_PG = 'postgres://postgres@127.0.0.1:5432/test';
/** Hard cap on requests, whatever the duration (bounds time and the latency samples kept). */
const MAX_REQUESTS = 2_000_000;
const REQUEST_TIMEOUT_MS = 10_000;

interface Options {
  readonly store: 'sqlite' | 'postgres';
  readonly chips: number;
  readonly seconds: number;
  readonly concurrency: number;
}

interface LoadJob {
  readonly url: string;
  readonly caPem: string;
  readonly eids: readonly string[];
  readonly seconds: number;
  readonly concurrency: number;
  readonly maxRequests: number;
}

interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  /** Milliseconds, one per successful request. */
  readonly latencies: Float64Array;
}

function usage(message: string): never {
  process.stderr.write(`${JSON.stringify({ error: { code: 'UsageError', message } })}\n`);
  process.exit(2);
}

function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(arg);
    if (!m) usage(`unexpected argument "${arg}"`);
    const name = m[1]!;
    if (!['store', 'chips', 'seconds', 'concurrency'].includes(name)) usage(`unknown option --${name}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) usage(`--${name} needs a value`);
    values.set(name, value);
  }
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const raw = values.get(name);
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) usage(`--${name} must be an integer in [${min}, ${max}]`);
    return n;
  };
  const store = values.get('store') ?? 'sqlite';
  if (store !== 'sqlite' && store !== 'postgres') usage('--store is sqlite or postgres');
  const seconds = Number(values.get('seconds') ?? '10');
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) usage('--seconds must be in (0, 600]');
  return {
    store,
    chips: int('chips', 1000, 1, 100_000),
    seconds,
    concurrency: int('concurrency', 32, 1, 1024),
  };
}

// ---- the clients (worker thread) ----

async function runLoad(job: LoadJob): Promise<LoadResult> {
  const ci = loadCertificates(Buffer.from(job.caPem));
  const agent = new Agent({
    keepAlive: true,
    maxSockets: job.concurrency,
    ...clientTlsOptions({ expectedSmId: SM_ID, caPem: job.caPem, trustedCis: ci }),
  });
  const latencies = new Float64Array(job.maxRequests);
  let requests = 0;
  let ok = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + job.seconds * 1000;
  const once = (eid: string) =>
    new Promise<boolean>((resolve) => {
      const req = request(
        `${job.url}/device/v1/chips/${eid}/messages`,
        { agent, timeout: REQUEST_TIMEOUT_MS },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
          res.on('error', () => resolve(false));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve(false));
      req.end();
    });
  const client = async () => {
    while (performance.now() < end && requests < job.maxRequests) {
      requests++;
      const eid = job.eids[Math.floor(Math.random() * job.eids.length)]!;
      const t0 = performance.now();
      if (await once(eid)) latencies[ok++] = performance.now() - t0;
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, client));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { requests, errors, seconds, latencies: latencies.slice(0, ok) };
}

if (!isMainThread) {
  const result = await runLoad(workerData as LoadJob);
  parentPort?.postMessage(result);
}

// ---- the server side (main thread) ----

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[i]! * 1000) / 1000;
}

async function openBenchStore(
  o: Options,
  dir: string,
): Promise<{ store: SqlStore; dispose(): Promise<void> }> {
  if (o.store === 'sqlite') {
    const store = await openSqliteStore(join(dir, 'sm.sqlite'));
    return { store, dispose: () => store.close() };
  }
  const url = process.env.DATABASE_URL || DEFAULT_PG;
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    usage(`the benchmark runs on loopback only: DATABASE_URL names ${host}`);
  }
  const schema = `handover_bench_${randomBytes(6).toString('hex')}`;
  const store = await openPostgresStore(url, { schema, poolSize: 10 });
  return {
    store,
    async dispose() {
      try {
        await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(store.db);
      } finally {
        await store.close();
      }
    },
  };
}

async function main(o: Options): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'handover-bench-poll-'));
  const opened = await openBenchStore(o, dir);
  try {
    const pki = createDevPki({ curve: 'p256', dir: join(dir, 'pki'), smIds: [SM_ID] });
    const config = parseSmConfig(
      {
        smId: SM_ID,
        keyFile: `pki/${smFileBase(SM_ID)}.key`,
        certFile: `pki/${smFileBase(SM_ID)}.pem`,
        ciFiles: ['pki/ci.pem'],
        listen: { host: '127.0.0.1', port: 0 },
        dataDir: 'data',
        peers: [],
        operators: [
          {
            id: OPERATOR,
            tokenSha256: tokenSha256(randomBytes(24).toString('hex')),
            approvalRequired: false,
          },
        ],
      },
      dir,
      'bench',
    );
    const server = await startSmServer(config, { store: opened.store, logger: false });
    try {
      // Register the chips in-process (setup, not measured), a few at a time.
      const eids = Array.from({ length: o.chips }, (_, i) =>
        makeEid(
          `${pki.manifest.eidPrefix}${String(i + 1).padStart(30 - pki.manifest.eidPrefix.length, '0')}`,
        ),
      );
      const eumDer = pki.eum.certificate.der;
      for (let i = 0; i < eids.length; i += 16) {
        await Promise.all(
          eids.slice(i, i + 16).map((eid) => {
            const chip = issueChip({ issuerCert: pki.eum.certificate, issuerKey: pki.eum.privateKey, eid });
            return server.sm.registerChip(OPERATOR, {
              chipCertificate: chip.certificate.der,
              eumCertificate: eumDer,
            });
          }),
        );
      }
      const job: LoadJob = {
        url: server.url,
        caPem: certificateToPem(pki.ci.certificate),
        eids,
        seconds: o.seconds,
        concurrency: o.concurrency,
        maxRequests: MAX_REQUESTS,
      };
      const result = await new Promise<LoadResult>((resolve, reject) => {
        // Node 20 does not carry `--import tsx` into workers: the worker registers tsx, then loads this file.
        const tsxApi = JSON.stringify(import.meta.resolve('tsx/esm/api'));
        const boot = `import(${tsxApi}).then((t) => { t.register(); return import(${JSON.stringify(import.meta.url)}); })`;
        const worker = new Worker(boot, { eval: true, workerData: job });
        worker.once('message', (m: LoadResult) => resolve(m));
        worker.once('error', reject);
        worker.once('exit', (code) => {
          if (code !== 0) reject(new Error(`load worker exited with ${code}`));
        });
      });
      const sorted = result.latencies.sort();
      const seconds = Math.round(result.seconds * 1000) / 1000;
      process.stdout.write(
        `${JSON.stringify({
          store: o.store,
          chips: o.chips,
          requests: result.requests,
          seconds,
          requestsPerSecond: Math.round((result.requests / result.seconds) * 10) / 10,
          p50Ms: percentile(sorted, 50),
          p99Ms: percentile(sorted, 99),
          errors: result.errors,
          concurrency: o.concurrency,
        })}\n`,
      );
    } finally {
      await server.close();
    }
  } finally {
    await opened.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMainThread) {
  await main(parseOptions(process.argv.slice(2)));
}
