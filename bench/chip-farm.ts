/**
 * Chip farm benchmark: creates a farm of N chips (in this process), then serves it from a
 * separate `handover chip farm` process and sends it GetChipInfo commands through the TCP farm
 * link for a while. Prints one JSON object: creation time and rate, GetChipInfo per second, the
 * farm file size, and peak RSS (this process before and after creating; the server process).
 *
 *   node --import tsx bench/chip-farm.ts [--chips N] [--curve p256|brainpoolP256r1]
 *        [--seconds S | --commands M] [--concurrency C] [--connections K] [--sync full|normal]
 *        [--dir DIR]
 *
 * --commands M sends exactly M GetChipInfo (chips in EID order, round robin) instead of running
 * for S seconds: the same work for every N, so the server's peak RSS compares across N.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connectFarm } from '../src/chip/farm/farm-link.ts';
import { createFarm, farmEid } from '../src/chip/farm/sqlite-farm-store.ts';
import { sendCommand } from '../src/device/apdu-client.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../src/protocol/asn1/info.ts';
import { parseCurve } from '../src/protocol/crypto/curves.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function arg(name: string, fallback: string): string {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) return argv[i + 1] ?? fallback;
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return fallback;
}

function positive(name: string, fallback: string): number {
  const n = Number(arg(name, fallback));
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive number\n`);
    process.exit(2);
  }
  return n;
}

const maxRssKiB = () => process.resourceUsage().maxRSS;

/** Peak resident set of another process (Linux: VmHWM), in KiB. */
function peakRssOf(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const chips = Math.floor(positive('chips', '10000'));
const curve = parseCurve(arg('curve', 'p256'));
const seconds = positive('seconds', '5');
const commandLimit =
  arg('commands', '') === '' ? Number.POSITIVE_INFINITY : Math.floor(positive('commands', '1'));
const concurrency = Math.floor(positive('concurrency', '64'));
const connections = Math.floor(positive('connections', '1'));
const sync = arg('sync', 'full');
if (sync !== 'full' && sync !== 'normal') {
  process.stderr.write('--sync must be full or normal\n');
  process.exit(2);
}
const ownDir = arg('dir', '') === '';
const dir = ownDir ? mkdtempSync(join(os.tmpdir(), 'handover-bench-farm-')) : arg('dir', '');

const rssStart = maxRssKiB();
const pki = createDevPki({ curve, dir: join(dir, 'pki'), force: true });
const path = join(dir, `farm-${chips}.sqlite`);
rmSync(path, { force: true });
const rssBeforeCreate = maxRssKiB();
let started = performance.now();
const farm = await createFarm({
  pki,
  count: chips,
  smId: pki.manifest.smIds[0]!,
  path,
  onProgress: (p) => {
    if (p.created % 10_000 === 0 || p.created === p.count) {
      process.stderr.write(`${JSON.stringify({ creating: { created: p.created, seconds: p.seconds } })}\n`);
    }
  },
});
const createSeconds = (performance.now() - started) / 1000;
farm.close();
const rssAfterCreate = maxRssKiB();
const fileBytes = statSync(path).size;

// The farm server in its own process, as the full benchmark runs it.
const server = spawn(
  process.execPath,
  ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'chip', 'farm', '--state', path, '--sync', sync],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const ready = await new Promise<string>((resolve, reject) => {
  createInterface({ input: server.stdout! }).once('line', resolve);
  server.once('exit', (code) => reject(new Error(`the farm server exited (${code})`)));
});
const serverRssIdle = peakRssOf(server.pid!);
const [host, port] = (JSON.parse(ready) as { listening: string }).listening.split(':') as [string, string];
const link = await connectFarm(host, Number(port), { connections });

const command = encodeGetChipInfo();
const prefix = pki.manifest.eidPrefix;
let next = 0;
let done = 0;
let apdus = 0;
let wrong = 0;
const counting = (eid: string) => (apdu: Uint8Array) => {
  apdus++;
  return link.transmit(eid, apdu);
};
started = performance.now();
const deadline = started + seconds * 1000;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (
      next < commandLimit &&
      (commandLimit !== Number.POSITIVE_INFINITY || performance.now() < deadline)
    ) {
      const eid = farmEid(prefix, 1 + (next++ % chips));
      const info = decodeChipInfo(await sendCommand(counting(eid), command));
      if (info.eid !== eid) wrong++;
      done++;
    }
  }),
);
const elapsed = (performance.now() - started) / 1000;
const serverRssPeak = peakRssOf(server.pid!);
link.close();
server.kill('SIGTERM');
await new Promise<void>((r) => server.once('exit', () => r()));
if (ownDir) rmSync(dir, { recursive: true, force: true });

process.stdout.write(
  `${JSON.stringify({
    chips,
    curve,
    sync,
    create: {
      seconds: Number(createSeconds.toFixed(2)),
      chipsPerSecond: Math.round(chips / createSeconds),
      fileBytes,
      bytesPerChip: Math.round(fileBytes / chips),
    },
    getChipInfo: {
      seconds: Number(elapsed.toFixed(2)),
      commands: done,
      perSecond: Math.round(done / elapsed),
      apdusPerCommand: Number((apdus / Math.max(1, done)).toFixed(2)),
      distinctChips: Math.min(done, chips),
      wrongEid: wrong,
      concurrency,
      connections,
    },
    peakRssKiB: {
      benchAtStart: rssStart,
      benchBeforeCreate: rssBeforeCreate,
      benchAfterCreate: rssAfterCreate,
      farmServerListening: serverRssIdle,
      farmServerAfterGetChipInfo: serverRssPeak,
      benchAtEnd: maxRssKiB(),
    },
    machine: { cpus: os.cpus().length, loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))) },
    node: process.version,
  })}\n`,
);
