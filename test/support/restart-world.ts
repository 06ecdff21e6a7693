/**
 * Two SMs as real processes (`handover sm start --config …`, as src/demo/process-demo.ts runs
 * them), for tests that kill them: SIGKILL (no shutdown code runs; what was committed is all
 * the store has), SIGSTOP/SIGCONT (a peer that takes connections but never answers), and a
 * start again with the same configuration, so on the same port the other SM's directory names.
 * Each SM has its own store: a SQLite file in its data folder, or its own PostgreSQL schema
 * (DATABASE_URL with `options=-c search_path=<schema>`, dropped at the end). Every wait is
 * bounded; `tails()` gives the stderr of every process the world ran, for failure reports.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Child, spawnHandover } from '../../src/demo/child.ts';
import type { SmEndpoints } from '../../src/device/agent.ts';
import { httpSmEndpoints } from '../../src/device/http-endpoints.ts';
import { httpsJson } from '../../src/net/https-json.ts';
import { makeEid } from '../../src/protocol/eid.ts';
import { certificateToPem } from '../../src/protocol/pki/certificate.ts';
import { createDevPki, type DevPki, smFileBase } from '../../src/protocol/pki/dev-pki.ts';
import { tokenSha256 } from '../../src/sm/server-config.ts';
import { tempSchema, testDatabaseUrl } from '../../src/sm/store/kysely/testing.ts';
import { freePort, tempDir } from './http-world.ts';

export type ProcessBackend = 'sqlite' | 'postgres';

/** How long an SM process may take to print its listening line. */
const START_TIMEOUT_MS = 30_000;
/** Operator calls: short, so that a test never hangs on an SM that is down. */
const CALL_TIMEOUT_MS = 5_000;

export interface SmProcessSpec {
  readonly smId: string;
  readonly operator: string;
}

export interface OperatorCalls {
  get<T>(path: string): Promise<T>;
  /** Sends a fresh Idempotency-Key. */
  post<T>(path: string, body?: unknown): Promise<T>;
}

export interface RestartWorld {
  readonly dir: string;
  readonly pki: DevPki;
  readonly caPem: string;
  url(smId: string): string;
  eid(serial: number): string;
  operator(smId: string): OperatorCalls;
  /** The device API of every SM, as the device agent reaches it. */
  readonly device: SmEndpoints;
  /** Starts the SM's process and waits for its listening line. */
  start(smId: string): Promise<void>;
  /** SIGKILL, and waits until the process is gone. */
  kill(smId: string): Promise<void>;
  /** SIGSTOP: the port still takes connections (the kernel does), nothing answers. */
  freeze(smId: string): void;
  /** SIGCONT. */
  thaw(smId: string): void;
  isFrozen(smId: string): boolean;
  isRunning(smId: string): boolean;
  /** Number of processes started so far for the SM. */
  generations(smId: string): number;
  /** The SM's configuration file, and the environment its processes run with (its store). */
  configFile(smId: string): string;
  env(smId: string): NodeJS.ProcessEnv;
  /** The stderr tails of the last `n` processes (default: all), oldest first. */
  tails(n?: number): string;
  close(): Promise<void>;
}

interface Running {
  readonly child: Child;
  readonly label: string;
  frozen: boolean;
}

export async function createRestartWorld(o: {
  readonly backend: ProcessBackend;
  readonly sms: readonly SmProcessSpec[];
}): Promise<RestartWorld> {
  const tmp = tempDir(`handover-restart-${o.backend}-`);
  const smIds = o.sms.map((s) => s.smId);
  const pki = createDevPki({ curve: 'p256', dir: join(tmp.dir, 'pki'), smIds });
  const caPem = certificateToPem(pki.ci.certificate);
  const ports = new Map<string, number>();
  for (const id of smIds) ports.set(id, await freePort());
  const url = (id: string) => `https://127.0.0.1:${ports.get(id)}`;
  const tokens = new Map(o.sms.map((s) => [s.smId, randomBytes(18).toString('base64url')]));

  // The environment of each SM's processes: its own store, whatever the test runner's env says.
  const envs = new Map<string, NodeJS.ProcessEnv>();
  const schemas: ReturnType<typeof tempSchema>[] = [];
  const base: NodeJS.ProcessEnv = { ...process.env, HANDOVER_LOG_LEVEL: 'info' };
  delete base.DATABASE_URL;
  const databaseUrl = testDatabaseUrl();
  for (const id of smIds) {
    if (o.backend === 'sqlite') {
      envs.set(id, base);
      continue;
    }
    if (databaseUrl === undefined) throw new Error('DATABASE_URL not set');
    const schema = tempSchema(databaseUrl);
    schemas.push(schema);
    // Created (and migrated) here: a search_path naming a missing schema has no current schema.
    await (await schema.open({ poolSize: 1 })).close();
    const options = encodeURIComponent(`-c search_path=${schema.schema}`);
    envs.set(id, {
      ...base,
      DATABASE_URL: `${databaseUrl}${databaseUrl.includes('?') ? '&' : '?'}options=${options}`,
    });
  }

  const configFile = (id: string) => join(tmp.dir, `${id}.json`);
  for (const spec of o.sms) {
    const peers = smIds.filter((p) => p !== spec.smId);
    writeFileSync(
      configFile(spec.smId),
      JSON.stringify({
        smId: spec.smId,
        keyFile: `pki/${smFileBase(spec.smId)}.key`,
        certFile: `pki/${smFileBase(spec.smId)}.pem`,
        ciFiles: ['pki/ci.pem'],
        listen: { host: '127.0.0.1', port: ports.get(spec.smId) },
        dataDir: `data/${spec.smId}`,
        peers: peers.map((p) => ({ smId: p, baseUrl: url(p), certFile: `pki/${smFileBase(p)}.pem` })),
        operators: [
          { id: spec.operator, tokenSha256: tokenSha256(tokens.get(spec.smId)!), approvalRequired: false },
        ],
      }),
    );
  }

  const running = new Map<string, Running>();
  const generation = new Map<string, number>();
  const finished: string[] = [];
  const tailOf = (r: Running) => `--- ${r.label} (stderr tail) ---\n${r.child.stderrTail()}`;

  const world: RestartWorld = {
    dir: tmp.dir,
    pki,
    caPem,
    url,
    eid: (serial) =>
      makeEid(pki.manifest.eidPrefix + String(serial).padStart(30 - pki.manifest.eidPrefix.length, '0')),
    operator(smId) {
      const call = <T>(method: string, path: string, body?: unknown) =>
        httpsJson<T>(method, `${url(smId)}${path}`, body, {
          ca: [caPem],
          expectedCommonName: smId,
          timeoutMs: CALL_TIMEOUT_MS,
          headers: {
            authorization: `Bearer ${tokens.get(smId)}`,
            ...(method !== 'GET' && { 'idempotency-key': randomBytes(12).toString('hex') }),
          },
        });
      return {
        get: (path) => call('GET', path),
        post: (path, body) => call('POST', path, body ?? {}),
      };
    },
    device: httpSmEndpoints([caPem], CALL_TIMEOUT_MS),
    async start(smId) {
      if (running.has(smId)) throw new Error(`${smId} is running already`);
      const n = (generation.get(smId) ?? 0) + 1;
      generation.set(smId, n);
      const label = `${smId} #${n}`;
      const child = spawnHandover(label, ['sm', 'start', '--config', configFile(smId)], envs.get(smId)!);
      const r: Running = { child, label, frozen: false };
      running.set(smId, r);
      try {
        await child.waitFor((v) => typeof v.url === 'string', START_TIMEOUT_MS);
      } catch (e) {
        running.delete(smId);
        finished.push(tailOf(r));
        await child.stop();
        throw e;
      }
    },
    async kill(smId) {
      const r = running.get(smId);
      if (!r) throw new Error(`${smId} is not running`);
      running.delete(smId);
      const p = r.child.process;
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise<void>((ok) => p.once('exit', () => ok()));
        p.kill('SIGKILL');
        await exited;
      }
      finished.push(tailOf(r));
    },
    freeze(smId) {
      const r = running.get(smId);
      if (!r || r.frozen) throw new Error(`${smId} is not running, or frozen already`);
      r.child.process.kill('SIGSTOP');
      r.frozen = true;
    },
    thaw(smId) {
      const r = running.get(smId);
      if (!r?.frozen) throw new Error(`${smId} is not frozen`);
      r.child.process.kill('SIGCONT');
      r.frozen = false;
    },
    isFrozen: (smId) => running.get(smId)?.frozen === true,
    isRunning: (smId) => running.has(smId),
    generations: (smId) => generation.get(smId) ?? 0,
    configFile,
    env: (smId) => envs.get(smId) ?? base,
    tails: (n) => [...finished, ...[...running.values()].map(tailOf)].slice(-(n ?? 0)).join('\n'),
    async close() {
      await Promise.allSettled(
        [...running.values()].map(async (r) => {
          if (r.frozen) r.child.process.kill('SIGCONT');
          await r.child.stop();
        }),
      );
      running.clear();
      if (databaseUrl !== undefined) {
        for (const schema of schemas) {
          // Best effort, opening included: a failed teardown must not fail a suite whose tests passed.
          await schema
            .open({ poolSize: 1 })
            .then((store) => schema.drop(store))
            .catch(() => undefined);
        }
      }
      tmp.remove();
    },
  };
  try {
    await Promise.all(smIds.map((id) => world.start(id)));
  } catch (e) {
    const report = world.tails();
    await world.close();
    throw new Error(`the SMs did not start: ${e instanceof Error ? e.message : String(e)}\n${report}`);
  }
  return world;
}
