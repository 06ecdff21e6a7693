/**
 * `handover chip farm`: many simulated chips in one process, their states in one SQLite file,
 * all served on one TCP port with addressed frames (see src/chip/farm/farm-server.ts).
 * Progress of a creation goes to stderr as JSON lines; stdout gets one JSON line when the farm
 * listens ({listening, chips, state}), or when it was only created (--no-serve).
 */
import { createWriteStream, existsSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { serveFarm } from '../chip/farm/farm-server.ts';
import { type ChipFarm, createFarm, openFarm } from '../chip/farm/sqlite-farm-store.ts';
import { InvalidInput } from '../protocol/errors.ts';
import { loadDevPki } from '../protocol/pki/dev-pki.ts';

interface FarmCommandOptions {
  state: string;
  create?: boolean;
  count?: string;
  pki?: string;
  sm?: string;
  startSerial: string;
  host: string;
  port: string;
  sync: string;
  eidsOut?: string;
  verify?: boolean;
  serve: boolean;
}

const line = (stream: NodeJS.WriteStream, value: unknown) => stream.write(`${JSON.stringify(value)}\n`);

function integer(text: string | undefined, name: string, min: number, max: number): number {
  const n = Number(text);
  if (text === undefined || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidInput('UsageError', `${name} must be an integer in ${min}..${max}`);
  }
  return n;
}

async function writeEids(farm: ChipFarm, path: string): Promise<void> {
  const out = createWriteStream(path);
  for (const eid of farm.eids()) {
    if (!out.write(`${eid}\n`)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

/** A file the command will write later: refused now (before anything is created) if it cannot be. */
function checkWritableFile(path: string, flag: string): void {
  const full = resolve(path);
  if (existsSync(full) && statSync(full).isDirectory()) {
    throw new InvalidInput('UsageError', `${flag} ${path} is a folder: name a file`);
  }
  const parent = dirname(full);
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    throw new InvalidInput('UsageError', `${flag} ${path}: the folder ${parent} does not exist`);
  }
}

export function registerChipFarmCommand(chip: Command): void {
  chip
    .command('farm')
    .description(
      'Serve many simulated chips from one SQLite file over TCP: each frame is a 2-byte length, the ' +
        "chip's EID (16 bytes BCD) and one APDU; the answer is the APDU response. With --create, " +
        "first issue --count chips from the PKI folder's EUM, assigned to --sm",
    )
    .requiredOption('--state <file>', 'the farm file (SQLite)')
    .option('--create', 'create the farm file first (it must not exist)')
    .option('--count <n>', 'with --create: number of chips')
    .option('--pki <dir>', 'with --create: development PKI folder (EUM, CI, SM certificates)')
    .option('--sm <smId>', "with --create: the SM the chips start assigned to (default: the PKI's first)")
    .option('--start-serial <n>', "with --create: the first chip's serial inside the EID prefix", '1')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 = any free port)', '0')
    .option(
      '--sync <mode>',
      'full: every commit fsynced before the answer; normal: survives a process crash, not a power loss',
      'full',
    )
    .option('--eids-out <file>', "write every chip's EID to this file, one a line")
    .option('--verify', 'validate every chip state fully before serving (about 1.4 ms a chip)')
    .option('--no-serve', 'stop after --create / --eids-out / --verify')
    .action(async (o: FarmCommandOptions) => {
      if (o.sync !== 'full' && o.sync !== 'normal') {
        throw new InvalidInput('UsageError', '--sync must be full or normal');
      }
      const synchronous = o.sync;
      const port = integer(o.port, '--port', 0, 65535);
      if (o.eidsOut !== undefined) checkWritableFile(o.eidsOut, '--eids-out');
      let farm: ChipFarm;
      if (o.create) {
        if (!o.pki) throw new InvalidInput('UsageError', '--create needs --pki');
        const count = integer(o.count, '--count', 1, 100_000_000);
        const pki = loadDevPki(o.pki);
        const smId = o.sm ?? pki.manifest.smIds[0];
        if (!smId) throw new InvalidInput('UsageError', 'the PKI has no SM; give --sm');
        let lastPrint = 0;
        farm = await createFarm({
          pki,
          count,
          smId,
          path: o.state,
          startSerial: integer(o.startSerial, '--start-serial', 0, Number.MAX_SAFE_INTEGER),
          synchronous,
          onProgress: (p) => {
            const now = performance.now();
            if (p.created < p.count && now - lastPrint < 1000) return;
            lastPrint = now;
            line(process.stderr, {
              creating: {
                created: p.created,
                count: p.count,
                seconds: Number(p.seconds.toFixed(2)),
                chipsPerSecond: Math.round(p.chipsPerSecond),
              },
            });
          },
        });
      } else {
        if (o.count !== undefined || o.pki !== undefined) {
          throw new InvalidInput('UsageError', '--count and --pki go with --create');
        }
        farm = openFarm(o.state, { synchronous });
      }
      try {
        if (o.eidsOut) await writeEids(farm, o.eidsOut);
        if (o.verify) {
          const report = farm.verify((checked) => {
            if (checked % 10_000 === 0) line(process.stderr, { verifying: { checked, count: farm.count } });
          });
          line(process.stderr, { verified: report });
          if (report.invalidCount > 0) {
            process.exitCode = 1;
            return;
          }
        }
        if (!o.serve) {
          line(process.stdout, { chips: farm.count, state: o.state, ...farm.info });
          return;
        }
        const { server, close } = serveFarm(farm, {
          onError: (e, eid) =>
            line(process.stderr, { error: e instanceof Error ? e.message : String(e), ...(eid && { eid }) }),
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, o.host, resolve);
        });
        const addr = server.address() as AddressInfo;
        line(process.stdout, {
          listening: `${addr.address}:${addr.port}`,
          chips: farm.count,
          state: o.state,
        });
        await new Promise<void>((resolve) => {
          const stop = () => void close().then(resolve);
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      } finally {
        farm.close();
      }
    });
}
