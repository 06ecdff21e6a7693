/**
 * Fleet benchmark (issue 4, item 3): moves N chips from SM A to SM B end to end across real
 * processes and compares the rate with what the crypto of one transfer allows on this machine.
 *
 *   npm run bench -- --chips 1000 [--curve p256|brainpoolP256r1] [--store sqlite|postgres]
 *                   [--concurrency 64] [--order-concurrency 16] [--timeout-seconds 600]
 *                   [--cpu-prof DIR] [--heap-mb N]
 *                   [--bulk N [--bulk-rate R]]
 *   (--bulk N orders the port-ins as one bulk job at B, at most N in flight and R started per
 *   second (default 1000), as an operator moving a fleet would; without it, one order per chip
 *   at once, --order-concurrency calls in parallel, default 16)
 *   (--heap-mb caps each child's V8 heap: without it V8 grows its heap lazily, so peak RSS says
 *   more about the garbage collector than about what the process keeps)
 *   (npm run bench:fleet -- … is the same)
 *
 * Processes: SM A and SM B (`handover sm start`, SQLite files, or one PostgreSQL schema each in
 * DATABASE_URL with --store postgres), the chip farm (`handover chip farm`), and the batch device
 * agent (`handover device run --batch`). This process makes the dev PKI and the farm file, registers
 * every chip at A (operator API, bounded parallel batches), starts the agent, then starts the
 * clock and orders a port-in at B for every chip (ask: true), and watches both SMs' transfer
 * counts until every chip's incoming transfer at B and outgoing transfer at A are terminal (or
 * the timeout). A transfer counts as done when B completed it and A released the chip. Prints
 * one JSON object:
 *   transfers, failed, seconds (first order to the last release at A), transfersPerSecond,
 *   p50Ms, p99Ms (per transfer: A's release time - B's order time), peakRssMb per process (VmHWM
 *   from /proc at the end), crypto (ops/s on one core, measured here), cryptoOpsPerTransfer (the
 *   operations the four processes really did during the transfers, divided by the transfers:
 *   each process counts its own, src/protocol/crypto/op-counts.ts), cryptoFloorPerSecond, ratio.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFarm } from '../src/chip/farm/sqlite-farm-store.ts';
import { CRYPTO_COUNTS_ENV } from '../src/cli/crypto-counts-file.ts';
import { type Child, spawnHandover } from '../src/demo/child.ts';
import { freePort } from '../src/net/free-port.ts';
import { httpsJson } from '../src/net/https-json.ts';
import { CURVES, type Curve } from '../src/protocol/crypto/curves.ts';
import { ecdsaSign, ecdsaVerify } from '../src/protocol/crypto/ecdsa.ts';
import { generateKeyPair } from '../src/protocol/crypto/keys.ts';
import { generateOneTimeKey, oneTimeSharedSecret } from '../src/protocol/crypto/one-time-key.ts';
import type { CryptoOpCounts } from '../src/protocol/crypto/op-counts.ts';
import { certificateToPem } from '../src/protocol/pki/certificate.ts';
import { createDevPki, smFileBase } from '../src/protocol/pki/dev-pki.ts';

/**
 * Crypto operations in one transfer (a port-in with ask, no profile switch) as listed from the
 * code paths, without the caches (reported as cryptoOpsPerTransferListed; the floor uses the
 * measured counts, which are lower: certificate signatures already verified are not verified
 * again, src/protocol/pki/validate.ts). validateChain (src/protocol/pki/validate.ts) checks the trusted CI's self-signature and
 * then each certificate: 2 verifies for an SM certificate, 3 for chip + EUM.
 *
 * sign (4):
 *   SM A  issue-permission.ts       TransferPermission                          1
 *   chip  load-transfer-permission  TransferRequest                             1
 *   SM B  transfer-request.ts       HandoverCommand                             1
 *   chip  execute-handover.ts       HandoverResult                              1
 * verify (21):
 *   SM B  port-in.ts                requirePeer(A) → validateSmCertificate      2
 *   SM A  peer-auth.ts              client certificate of B, TransferAsk call   2
 *   SM A  release.ts authorise      requirePeer(B)                              2
 *   chip  load-transfer-permission  permission signature                        1
 *   chip  load-transfer-permission  checkNewSmCertificate → validateChain       2
 *   SM B  transfer-request.ts       validateChipChain (CI, EUM, chip)           3
 *   SM B  transfer-request.ts       chip signature on TransferRequest           1
 *   SM B  transfer-request.ts       validateSmCertificate(current SM)           2
 *   SM B  transfer-request.ts       permission signature (A's key)              1
 *   chip  execute-handover.ts       HandoverCommand signature                   1
 *   SM B  handover-result.ts        chip signature on HandoverResult            1
 *   SM A  peer-auth.ts              client certificate of B, Completed call     2
 *   SM A  handover-result.ts        handleCompleted: chip signature             1
 * keygen (2): chip one-time key (load-transfer-permission), SM B one-time key (transfer-request)
 * ecdh (2): SM B establishKeys (transfer-request), chip establishKeys (execute-handover)
 * Not counted: TLS handshakes (ECDHE and handshake signatures; connections are kept alive), the
 * client-side server-certificate checks per TLS connection (src/sm/http/tls.ts), chip
 * registration (done before the clock starts), hashes and HMACs.
 */
const OPS_PER_TRANSFER = { sign: 4, verify: 21, keygen: 2, ecdh: 2 } as const;

const SM_IDS = ['sm-alpha.example', 'sm-beta.example'] as const;
const PROCESS_NAMES = ['smA', 'smB', 'farm', 'agent'] as const;
type ProcessName = (typeof PROCESS_NAMES)[number];
const OPS = ['sign', 'verify', 'keygen', 'ecdh'] as const;
const OPERATORS = ['mno-a', 'mno-b'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (v: unknown) => process.stderr.write(`${JSON.stringify(v)}\n`);

interface Options {
  chips: number;
  curve: Curve;
  store: 'sqlite' | 'postgres';
  concurrency: number;
  timeoutSeconds: number;
  cryptoSeconds: number;
  /** Write a V8 CPU profile of every child process to this folder (node --cpu-prof). */
  cpuProf: string | undefined;
  /** V8 old-space limit of each child process in MB (node --max-old-space-size); default none. */
  heapMb: number | undefined;
  /** Order through one bulk port-in job with this concurrency (POST /v1/bulk-transfers). */
  bulk: number | undefined;
  bulkRate: number;
  /** Port-in orders (one per chip, without --bulk) sent at once. */
  orderConcurrency: number;
}

function parseArgs(argv: readonly string[]): Options {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    return eq?.slice(name.length + 3);
  };
  const int = (name: string, fallback: number, max: number): number => {
    const v = get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1 || n > max) fail(`--${name} must be an integer in 1..${max}`);
    return n;
  };
  const curveArg = get('curve') ?? 'p256';
  const curve = CURVES.find((c) => c.toLowerCase() === curveArg.toLowerCase());
  if (!curve) fail(`--curve must be one of ${CURVES.join(', ')}`);
  const store = get('store') ?? 'sqlite';
  if (store !== 'sqlite' && store !== 'postgres') fail('--store must be sqlite or postgres');
  return {
    chips: int('chips', 1000, 1_000_000),
    curve,
    store,
    concurrency: int('concurrency', 64, 10_000),
    timeoutSeconds: int('timeout-seconds', 600, 86_400),
    cryptoSeconds: Number(get('crypto-seconds') ?? '0.5'),
    cpuProf: get('cpu-prof'),
    heapMb: get('heap-mb') === undefined ? undefined : int('heap-mb', 0, 65_536),
    bulk: get('bulk') === undefined ? undefined : int('bulk', 0, 10_000),
    bulkRate: int('bulk-rate', 1000, 10_000),
    orderConcurrency: int('order-concurrency', 16, 1000),
  };
}

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** Operations per second of `op` on one core, for about `seconds`. */
function measure(seconds: number, op: (i: number) => void): number {
  for (let i = 0; i < 20; i++) op(i);
  const start = performance.now();
  let count = 0;
  while (performance.now() - start < seconds * 1000) op(count++);
  return Math.round((count * 1000) / (performance.now() - start));
}

type CryptoRates = ReturnType<typeof measureCrypto>;

function measureCrypto(curve: Curve, seconds: number) {
  const signer = generateKeyPair(curve);
  const data = new Uint8Array(256).fill(0xa5);
  const signature = ecdsaSign(signer.privateKey, data, 'plain');
  const pool = Array.from({ length: 16 }, () => generateOneTimeKey(curve));
  return {
    signPerSec: measure(seconds, () => void ecdsaSign(signer.privateKey, data, 'plain')),
    verifyPerSec: measure(seconds, () => {
      if (!ecdsaVerify(signer.publicKey, data, signature, 'plain')) throw new Error('verify failed');
    }),
    // Key generation and ECDH as the protocol code does them (one-time-key.ts).
    keygenPerSec: measure(seconds, () => void generateOneTimeKey(curve)),
    ecdhPerSec: measure(
      seconds,
      (i) => void oneTimeSharedSecret(curve, pool[i % 16]!.scalar, pool[(i + 1) % 16]!.publicPoint),
    ),
  };
}

/** Each operation's higher rate of two measurements. */
function bestRates(a: CryptoRates, b: CryptoRates): CryptoRates {
  return {
    signPerSec: Math.max(a.signPerSec, b.signPerSec),
    verifyPerSec: Math.max(a.verifyPerSec, b.verifyPerSec),
    keygenPerSec: Math.max(a.keygenPerSec, b.keygenPerSec),
    ecdhPerSec: Math.max(a.ecdhPerSec, b.ecdhPerSec),
  };
}

/** Peak resident set (VmHWM) of a live process, in MB; undefined once it has exited. */
function peakRssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `task` over `items` with at most `limit` at once. */
async function parallel<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** CPU seconds (user + system) a live process used so far; undefined once it has exited. */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(((Number(fields[11]) + Number(fields[12])) / 100).toFixed(1));
  } catch {
    return undefined;
  }
}

/** CPU seconds of each process named `postgres` on this machine (the server's own), by pid. */
function postgresCpu(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue;
      const cpu = cpuSeconds(Number(entry));
      if (cpu !== undefined) out.set(Number(entry), cpu);
    } catch {
      // The process ended meanwhile.
    }
  }
  return out;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

interface TransferView {
  id: string;
  eid: string;
  state: string;
  createdAt: string;
  updatedAt: string;
}
const TERMINAL = new Set(['completed', 'rejected', 'cancelled', 'expired', 'failed']);

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + o.timeoutSeconds * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  const dir = mkdtempSync(join(tmpdir(), 'handover-fleet-'));
  const children: Child[] = [];
  const schemas: { url: string; schema: string }[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  // One folder per process: the tsx loader thread writes a profile of its own next to the main one.
  const prof = (name: string): string[] => [
    ...(o.heapMb === undefined ? [] : [`--max-old-space-size=${o.heapMb}`]),
    ...(o.cpuProf === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(o.cpuProf, name)]),
  ];
  const countsFile = (name: ProcessName) => join(dir, `crypto-counts-${name}.json`);
  const readCounts = (): Record<ProcessName, CryptoOpCounts> => {
    const out = {} as Record<ProcessName, CryptoOpCounts>;
    for (const name of PROCESS_NAMES) {
      try {
        out[name] = JSON.parse(readFileSync(countsFile(name), 'utf8')) as CryptoOpCounts;
      } catch {
        out[name] = { sign: 0, verify: 0, keygen: 0, ecdh: 0 };
      }
    }
    return out;
  };
  const pgUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  try {
    // Measured first, on an idle machine (as far as this run goes), and again at the end.
    const cryptoAtStart = measureCrypto(o.curve, o.cryptoSeconds);
    const cores = os.cpus().length;
    log({ crypto: cryptoAtStart });

    const pki = createDevPki({ curve: o.curve, dir: join(dir, 'pki'), smIds: SM_IDS, force: true });
    const ports = [await freePort(), await freePort()];
    const url = (i: number) => `https://127.0.0.1:${ports[i]}`;
    const tokens = SM_IDS.map(() => randomBytes(18).toString('base64url'));
    const smEnvs: NodeJS.ProcessEnv[] = [];
    for (const [i, smId] of SM_IDS.entries()) {
      const other = 1 - i;
      const otherId = SM_IDS[other]!;
      const config = {
        smId,
        keyFile: `pki/${smFileBase(smId)}.key`,
        certFile: `pki/${smFileBase(smId)}.pem`,
        ciFiles: ['pki/ci.pem'],
        listen: { host: '127.0.0.1', port: ports[i] },
        dataDir: `data/${smId}`,
        peers: [{ smId: otherId, baseUrl: url(other), certFile: `pki/${smFileBase(otherId)}.pem` }],
        operators: [
          {
            id: OPERATORS[i],
            tokenSha256: createHash('sha256').update(tokens[i]!).digest('hex'),
            approvalRequired: false,
          },
        ],
        permissionValidityHours: 24,
        logLevel: 'warn',
      };
      writeFileSync(join(dir, `${smId}.json`), `${JSON.stringify(config, null, 2)}\n`);
      if (o.store === 'postgres') {
        // One schema per SM, made the connection's current schema through the URL.
        const schema = `handover_fleet_${randomBytes(5).toString('hex')}`;
        const pg = await import('pg');
        const client = new pg.default.Client({ connectionString: pgUrl });
        await client.connect();
        await client.query(`CREATE SCHEMA ${schema}`);
        await client.end();
        schemas.push({ url: pgUrl, schema });
        const u = new URL(pgUrl);
        u.searchParams.set('options', `-c search_path=${schema}`);
        smEnvs.push({ ...env, DATABASE_URL: u.toString() });
      } else {
        smEnvs.push(env);
      }
    }
    const sms = SM_IDS.map((smId, i) =>
      spawnHandover(
        smId,
        ['sm', 'start', '--config', join(dir, `${smId}.json`)],
        { ...smEnvs[i]!, [CRYPTO_COUNTS_ENV]: countsFile(i === 0 ? 'smA' : 'smB') },
        undefined,
        prof(`sm-${i === 0 ? 'a' : 'b'}`),
      ),
    );
    children.push(...sms);
    for (const c of sms) await c.waitFor<{ url: string }>((v) => typeof v.url === 'string', left());

    // The farm: created here (so this process has the chip certificates), then served by its own process.
    const farmPath = join(dir, 'farm.sqlite');
    const eidsFile = join(dir, 'eids.txt');
    let created = performance.now();
    const farm = await createFarm({
      pki,
      count: o.chips,
      smId: SM_IDS[0],
      path: farmPath,
      synchronous: 'normal',
    });
    const identities = [...farm.identities()];
    farm.close();
    writeFileSync(eidsFile, `${identities.map((c) => c.eid).join('\n')}\n`);
    const farmSeconds = (performance.now() - created) / 1000;
    log({ farm: { chips: identities.length, seconds: Number(farmSeconds.toFixed(1)) } });
    const farmChild = spawnHandover(
      'farm',
      ['chip', 'farm', '--state', farmPath, '--sync', 'normal'],
      { ...env, [CRYPTO_COUNTS_ENV]: countsFile('farm') },
      undefined,
      prof('farm'),
    );
    children.push(farmChild);
    const { listening } = await farmChild.waitFor<{ listening: string }>(
      (v) => typeof v.listening === 'string',
      left(),
    );

    const ca = [certificateToPem(pki.ci.certificate)];
    const call = <T>(i: number, method: string, path: string, body?: unknown) =>
      httpsJson<T>(method, `${url(i)}${path}`, body, {
        ca,
        expectedCommonName: SM_IDS[i],
        timeoutMs: 60_000,
        headers: {
          authorization: `Bearer ${tokens[i]}`,
          ...(method !== 'GET' && { 'idempotency-key': randomBytes(12).toString('hex') }),
        },
      });

    created = performance.now();
    await parallel(identities, 16, async (c) => {
      await call(0, 'POST', '/v1/chips', {
        chipCertificate: c.chipCertificate,
        eumCertificate: c.eumCertificate,
      });
    });
    log({
      registered: identities.length,
      seconds: Number(((performance.now() - created) / 1000).toFixed(1)),
    });

    // The agent runs from the start: it relays each chip's messages as soon as its SM has some.
    const agent = spawnHandover(
      'agent',
      [
        'device',
        'run',
        '--batch',
        '--farm',
        listening,
        '--eids',
        eidsFile,
        '--sm',
        url(0),
        '--ca',
        join(pki.dir, 'ci.pem'),
        '--homes',
        join(dir, 'homes.jsonl'),
        '--concurrency',
        String(o.concurrency),
        '--interval',
        '50',
      ],
      { ...env, [CRYPTO_COUNTS_ENV]: countsFile('agent') },
      undefined,
      prof('agent'),
    );
    children.push(agent);

    // Crypto counts of every process before the transfers (after registration); the files are
    // rewritten every 0.5 s, so wait for one more write.
    await sleep(700);
    const countsBefore = readCounts();
    // The clock starts with the first port-in order.
    const start = performance.now();
    const startWall = Date.now();
    const postgresBefore = o.store === 'postgres' ? postgresCpu() : undefined;
    if (o.bulk === undefined) {
      await parallel(identities, o.orderConcurrency, async (c) => {
        await call(1, 'POST', '/v1/port-ins', { eid: c.eid, currentSmId: SM_IDS[0], ask: true });
      });
    } else {
      const job = await call<{ id: string }>(1, 'POST', '/v1/bulk-transfers', {
        kind: 'portIn',
        currentSmId: SM_IDS[0],
        eids: identities.map((c) => c.eid),
        concurrency: o.bulk,
        ratePerSecond: o.bulkRate,
      });
      log({ bulkJob: job.id, concurrency: o.bulk, ratePerSecond: o.bulkRate });
    }
    log({ ordered: identities.length, seconds: Number(((performance.now() - start) / 1000).toFixed(1)) });

    // Progress from the state counts; done once every chip is terminal at B (incoming) and A's
    // side of every transfer that reached it is terminal too (A released the chip: end to end).
    type Counts = { total: number; counts: Record<string, number> };
    const terminal = (c: Counts) =>
      Object.entries(c.counts).reduce((n, [state, k]) => n + (TERMINAL.has(state) ? k : 0), 0);
    let finished = false;
    while (Date.now() < deadline) {
      await sleep(2000);
      const b = await call<Counts>(1, 'GET', '/v1/transfers/counts?direction=incoming');
      const a = await call<Counts>(0, 'GET', '/v1/transfers/counts?direction=outgoing');
      const doneB = terminal(b);
      const doneA = terminal(a);
      log({
        progress: {
          done: doneB,
          releasedAtA: doneA,
          of: identities.length,
          seconds: Number(((performance.now() - start) / 1000).toFixed(1)),
        },
      });
      if (doneB >= identities.length && doneA >= a.total && a.total >= (b.counts.completed ?? 0)) {
        finished = true;
        break;
      }
    }
    // Counts, peak RSS and CPU are read before the final listings, which are not part of the run.
    await sleep(700);
    const countsAfter = readCounts();
    const names = PROCESS_NAMES;
    const peakRss: Record<string, number | undefined> = {};
    const cpu: Record<string, number | undefined> = {};
    for (const [i, c] of [sms[0]!, sms[1]!, farmChild, agent].entries()) {
      peakRss[names[i]!] = peakRssMb(c.process.pid);
      cpu[names[i]!] = cpuSeconds(c.process.pid);
    }
    // The PostgreSQL server's CPU from the first order to here (its backends outlive the run).
    const postgresServerCpuSeconds =
      postgresBefore &&
      Number(
        [...postgresCpu()]
          .reduce((sum, [pid, seconds]) => sum + seconds - (postgresBefore.get(pid) ?? 0), 0)
          .toFixed(1),
      );
    // Every transfer, a page of 1,000 at a time (GET /v1/transfers?limit&after).
    const listAll = async (i: number, direction: string): Promise<TransferView[]> => {
      const all: TransferView[] = [];
      let after = '';
      for (;;) {
        const page = await call<{ transfers: TransferView[]; next?: string }>(
          i,
          'GET',
          `/v1/transfers?direction=${direction}&limit=1000${after === '' ? '' : `&after=${after}`}`,
        );
        all.push(...page.transfers);
        if (page.next === undefined) return all;
        after = page.next;
      }
    };
    const incoming = await listAll(1, 'incoming');
    const outgoing = await listAll(0, 'outgoing');
    // The crypto rates again with every child stopped; the floor takes each operation's better
    // measurement, so interference at one moment (another guest on the host) does not lower it.
    await Promise.all(children.map((c) => c.stop()));
    const cryptoAtEnd = measureCrypto(o.curve, o.cryptoSeconds);
    const crypto = bestRates(cryptoAtStart, cryptoAtEnd);
    const done = incoming.filter((t) => TERMINAL.has(t.state)).length;
    const releasedAt = new Map(
      outgoing.filter((t) => t.state === 'completed').map((t) => [t.eid, Date.parse(t.updatedAt)]),
    );
    // A transfer counts once both sides completed it: B committed the chip, A released it.
    const completed = incoming.filter((t) => t.state === 'completed' && releasedAt.has(t.eid));
    const endOf = (t: TransferView) => releasedAt.get(t.eid)!;
    // From the first order to the last release at A (server clock, same machine), not to when this loop saw it.
    const lastEnd = completed.reduce((m, t) => Math.max(m, endOf(t)), 0);
    const seconds =
      finished && completed.length > 0 ? (lastEnd - startWall) / 1000 : (performance.now() - start) / 1000;
    const durations = completed.map((t) => endOf(t) - Date.parse(t.createdAt)).sort((a, b) => a - b);
    // Operations per completed transfer, summed over the four processes (what really ran,
    // caches included), and per process.
    const perTransfer = (n: number) => Number((n / Math.max(1, completed.length)).toFixed(2));
    const ops: CryptoOpCounts = { sign: 0, verify: 0, keygen: 0, ecdh: 0 };
    const opsByProcess: Record<string, CryptoOpCounts> = {};
    for (const name of PROCESS_NAMES) {
      const d = { sign: 0, verify: 0, keygen: 0, ecdh: 0 };
      for (const op of OPS) {
        d[op] = countsAfter[name][op] - countsBefore[name][op];
        ops[op] += d[op];
      }
      opsByProcess[name] = {
        sign: perTransfer(d.sign),
        verify: perTransfer(d.verify),
        keygen: perTransfer(d.keygen),
        ecdh: perTransfer(d.ecdh),
      };
    }
    const cryptoOpsPerTransfer: CryptoOpCounts = {
      sign: perTransfer(ops.sign),
      verify: perTransfer(ops.verify),
      keygen: perTransfer(ops.keygen),
      ecdh: perTransfer(ops.ecdh),
    };
    const secondsPerTransferOneCore = OPS.reduce(
      (sum, op) => sum + cryptoOpsPerTransfer[op] / crypto[`${op}PerSec`],
      0,
    );
    const cryptoFloorPerSecond = cores / secondsPerTransferOneCore;
    peakRss.bench = Math.round(process.resourceUsage().maxRSS / 1024);
    const transfersPerSecond = completed.length / seconds;
    const result = {
      bench: 'fleet',
      chips: o.chips,
      curve: o.curve,
      store: o.store,
      concurrency: o.concurrency,
      ...(o.bulk === undefined && { orderConcurrency: o.orderConcurrency }),
      ...(o.bulk !== undefined && { bulk: { concurrency: o.bulk, ratePerSecond: o.bulkRate } }),
      // The V8 heap cap of each child (--heap-mb), when set: peak RSS depends on it.
      ...(o.heapMb !== undefined && { heapMb: o.heapMb }),
      cores,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      transfers: completed.length,
      failed: done - incoming.filter((t) => t.state === 'completed').length,
      notReleasedAtA: incoming.filter((t) => t.state === 'completed').length - completed.length,
      unfinished: identities.length - done,
      seconds: Number(seconds.toFixed(2)),
      transfersPerSecond: Number(transfersPerSecond.toFixed(2)),
      p50Ms: quantile(durations, 0.5),
      p99Ms: quantile(durations, 0.99),
      peakRssMb: peakRss,
      // CPU seconds per process over its whole life (SM figures include registration), to see what bounds the rate.
      cpuSeconds: cpu,
      ...(postgresServerCpuSeconds !== undefined && { postgresServerCpuSeconds }),
      crypto,
      cryptoAtStart,
      cryptoAtEnd,
      cryptoOpsPerTransfer,
      cryptoOpsPerTransferByProcess: opsByProcess,
      cryptoOpsPerTransferListed: OPS_PER_TRANSFER,
      cryptoFloorPerSecond: Number(cryptoFloorPerSecond.toFixed(2)),
      ratio: Number((transfersPerSecond / cryptoFloorPerSecond).toFixed(4)),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    if (completed.length < identities.length) process.exitCode = 1;
  } catch (e) {
    // Say which process died and what it said last: a reset connection alone explains nothing.
    for (const c of children) {
      const exited = c.process.exitCode !== null || c.process.signalCode !== null;
      log({
        process: c.name,
        ...(exited ? { exitCode: c.process.exitCode, signal: c.process.signalCode } : { running: true }),
        stderr: c.stderrTail(),
      });
    }
    throw e;
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    if (schemas.length > 0) {
      const pg = await import('pg');
      const client = new pg.default.Client({ connectionString: pgUrl });
      await client.connect();
      for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS ${s.schema} CASCADE`);
      await client.end();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
