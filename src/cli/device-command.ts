/**
 * `handover device run`: the device agent. Polls the chip's SM over HTTPS, hands messages to the
 * chip over an APDU transport (TCP to `handover chip serve`, or a chip state file in-process),
 * and carries the answers to the SMs named in the signed messages. Prints one JSON line per step.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { ChipCard } from '../chip/apdu.ts';
import { connectFarm } from '../chip/farm/farm-link.ts';
import { FileStateStore } from '../chip/file-store.ts';
import { ChipProcessor } from '../chip/processor.ts';
import { type ChipRelayState, DeviceAgent } from '../device/agent.ts';
import { sendCommand, type Transmit } from '../device/apdu-client.ts';
import { apduChipLink, BatchDeviceAgent } from '../device/batch-agent.ts';
import { httpSmEndpoints } from '../device/http-endpoints.ts';
import { connectTcpCard } from '../device/tcp-transport.ts';
import { readCaFile } from '../net/ca-file.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import { HandoverError, InvalidInput } from '../protocol/errors.ts';
import { eidArg } from './args.ts';
import { checkEidFile, streamEids } from './eid-file.ts';
import { RelayStateWriter, readRelayStateFile } from './relay-state-file.ts';

interface RunOptions {
  eid?: string;
  batch?: boolean;
  farm?: string;
  eids?: string;
  homes?: string;
  concurrency?: string;
  connections?: string;
  sm: string;
  ca: string[];
  chip?: string;
  chipState?: string;
  interval: string;
  untilIdle?: boolean;
  maxPolls?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];
const usage = (message: string) => new InvalidInput('UsageError', message);
const line = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A server certificate --ca does not accept: retrying will not change it. */
const isUntrusted = (e: unknown): e is HandoverError =>
  e instanceof HandoverError && e.code === 'TlsUntrusted';

interface ChipLink {
  transmit: Transmit;
  close(): void;
}

function openChipLink(o: RunOptions): Promise<ChipLink> | ChipLink {
  if ((o.chip === undefined) === (o.chipState === undefined)) {
    throw usage('give exactly one of --chip HOST:PORT (a `handover chip serve`) or --chip-state FILE');
  }
  if (o.chip !== undefined) {
    const m = /^(.+):(\d{1,5})$/.exec(o.chip);
    if (!m) throw usage(`--chip must be HOST:PORT, got "${o.chip}"`);
    return connectTcpCard(m[1]!, Number(m[2]));
  }
  const store = new FileStateStore(o.chipState!);
  if (!store.exists()) throw usage(`--chip-state ${o.chipState}: no chip state file there`);
  store.load(); // a file that is not a chip state fails here, before any poll
  const card = new ChipCard(new ChipProcessor(store));
  return { transmit: (apdu) => card.transmit(apdu), close: () => {} };
}

/** The chip link, after asking the chip its EID (GetChipInfo): it must be the chip of --eid. */
async function chipLink(o: RunOptions, eid: string): Promise<ChipLink> {
  const link = await openChipLink(o);
  try {
    const info = decodeChipInfo(await sendCommand(link.transmit, encodeGetChipInfo()));
    if (info.eid !== eid) {
      throw usage(`the chip at ${o.chip ?? o.chipState} is ${info.eid}, not --eid ${eid}`);
    }
    return link;
  } catch (e) {
    link.close();
    throw e;
  }
}

function common(o: RunOptions): { ca: string[]; interval: number } {
  if (!/^https:\/\//.test(o.sm))
    throw usage(`--sm must be the https base URL of the chip's SM, got "${o.sm}"`);
  if (o.ca.length === 0)
    throw usage('give the CI certificate(s) the SM server certificates chain to: --ca FILE');
  const ca = o.ca.map((f) => readCaFile(f));
  const interval = Number(o.interval);
  if (!Number.isFinite(interval) || interval < 10) throw usage('--interval is milliseconds, at least 10');
  return { ca, interval };
}

function positive(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw usage(`${name} must be a positive integer`);
  return n;
}

/** `device run --batch`: every chip of --eids, served by a chip farm, relayed by one BatchDeviceAgent. */
async function runBatch(o: RunOptions): Promise<void> {
  if (o.eid !== undefined || o.chip !== undefined || o.chipState !== undefined) {
    throw usage('--batch takes --farm and --eids, not --eid / --chip / --chip-state');
  }
  if (o.farm === undefined || o.eids === undefined)
    throw usage('--batch needs --farm HOST:PORT and --eids FILE');
  const m = /^(.+):(\d{1,5})$/.exec(o.farm);
  if (!m) throw usage(`--farm must be HOST:PORT, got "${o.farm}"`);
  const eidsFile = o.eids;
  if (!existsSync(eidsFile)) throw usage(`cannot read --eids ${eidsFile}`);
  await checkEidFile(eidsFile, 'no chip was polled');
  const { ca, interval } = common(o);
  const concurrency = positive(o.concurrency, '--concurrency', 64);
  const maxPolls = o.maxPolls === undefined ? Number.POSITIVE_INFINITY : Number(o.maxPolls);
  const saved = readRelayStateFile(o.homes, o.sm);
  const homes = saved.homes;
  if (saved.tornLine !== undefined) {
    line({
      warning: `--homes ${o.homes}: line ${saved.tornLine} was cut short (a crash while writing it); left out`,
    });
  }
  if (saved.resume.length > 0) line({ resuming: saved.resume.length });
  const farm = await connectFarm(m[1]!, Number(m[2]), {
    connections: positive(o.connections, '--connections', 4),
  });
  const homesWriter = o.homes === undefined ? undefined : new RelayStateWriter(o.homes);
  const total = { sweeps: 0, polled: 0, messages: 0, handovers: 0, failed: 0, pollFailures: 0 };
  const agent = new BatchDeviceAgent({
    sms: httpSmEndpoints(ca),
    sendToChip: apduChipLink((eid, apdu) => farm.transmit(eid, apdu)),
    homeOf: (eid) => homes.get(eid) ?? o.sm,
    onHomeChanged: (eid, address) => {
      if (address === o.sm) homes.delete(eid);
      else homes.set(eid, address);
    },
    ...(homesWriter !== undefined && {
      onRelayState: (chip: ChipRelayState) => homesWriter.write(chip),
      resume: saved.resume,
    }),
    concurrency,
    maxTracked: Math.max(4096, concurrency * 4),
    onChipError: (eid, e) => {
      const err = e instanceof HandoverError ? e.toJSON() : { code: 'NetworkError', message: String(e) };
      line({ error: err, eid });
    },
    onPollError: (sm, eids, e) => {
      line({ pollError: String(e), sm, chips: eids.length });
      // A server certificate the CA file does not accept will not change by retrying.
      if (isUntrusted(e)) fatal ??= e;
    },
  });
  let fatal: HandoverError | undefined;
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (let polls = 0; !stop && !fatal && polls < maxPolls; polls++) {
      const started = performance.now();
      const r = await agent.sweep(streamEids(eidsFile));
      total.sweeps++;
      total.polled += r.polled;
      total.messages += r.messages;
      total.handovers += r.handovers;
      total.failed += r.failed;
      total.pollFailures += r.pollFailures;
      if (r.withMessages > 0 || r.failed > 0 || r.pollFailures > 0 || r.held > 0) {
        line({ sweep: { ...r, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) } });
      }
      if (o.untilIdle && r.withMessages === 0 && r.held === 0 && r.pollFailures === 0) break;
      if (!stop && !fatal) await sleep(interval);
    }
  } finally {
    farm.close();
    homesWriter?.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  if (fatal) throw fatal;
  line({ done: true, ...total, movedHome: homes.size });
  // Not one chip could be polled: the run did nothing, which is a failure, not a success.
  if (total.polled > 0 && total.pollFailures >= total.polled) process.exitCode = 1;
}

async function run(o: RunOptions): Promise<void> {
  if (o.batch) return runBatch(o);
  if (o.eid === undefined) throw usage('give --eid (one chip) or --batch');
  if (o.farm !== undefined || o.eids !== undefined) throw usage('--farm and --eids go with --batch');
  const eid = eidArg(o.eid);
  const { ca, interval } = common(o);
  const maxPolls = o.maxPolls === undefined ? Number.POSITIVE_INFINITY : Number(o.maxPolls);
  const link = await chipLink(o, eid);
  const agent = new DeviceAgent({
    eid,
    homeSmAddress: o.sm,
    sendToChip: (der) => sendCommand(link.transmit, der),
    sms: httpSmEndpoints(ca),
    onStep: (s) => line({ step: s.type, from: s.from, to: s.to, bytes: s.bytes.length }),
  });
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let polls = 0;
  let failures = 0;
  try {
    for (; !stop && polls < maxPolls; polls++) {
      try {
        const handled = await agent.runOnce();
        if (handled === 0 && o.untilIdle) {
          polls++;
          break;
        }
      } catch (e) {
        // A server certificate the CA file does not accept will not change by retrying.
        if (isUntrusted(e)) throw e;
        // Otherwise keep going: the agent keeps an unanswered HandoverCommand and repeats it (§6.6).
        failures++;
        const err = e instanceof HandoverError ? e.toJSON() : { code: 'NetworkError', message: String(e) };
        line({ error: err, homeSm: agent.homeSmAddress });
      }
      await sleep(interval);
    }
  } finally {
    link.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  line({ done: true, eid, homeSm: agent.homeSmAddress, polls, failures });
  // Every poll failed: the run did nothing, which is a failure, not a success.
  if (polls > 0 && failures >= polls) process.exitCode = 1;
}

export function registerDeviceCommands(program: Command): void {
  const device = program
    .command('device')
    .description('the device agent: relays bytes between a chip and its SMs');
  device
    .command('run')
    .description(
      'poll the SM for the chip and carry every message through; one JSON line per step. With ' +
        '--batch: every chip of --eids, served by a `handover chip farm`; one JSON line per sweep that did something',
    )
    .option('--eid <eid>', 'the chip EID (32 digits)')
    .requiredOption(
      '--sm <url>',
      "https base URL of the chip's current SM (with --batch: of every chip at first)",
    )
    .option(
      '--ca <file>',
      'CI certificate (PEM) that SM server certificates chain to; repeatable',
      collect,
      [],
    )
    .option('--chip <host:port>', 'a chip served by `handover chip serve`')
    .option('--chip-state <file>', 'a chip state file, driven in-process')
    .option('--interval <ms>', 'pause between polls', '1000')
    .option('--until-idle', 'stop after the first poll that brings nothing')
    .option('--max-polls <n>', 'stop after this many polls (with --batch: sweeps)')
    .option('--batch', 'serve many chips: needs --farm and --eids')
    .option('--farm <host:port>', 'with --batch: a chip farm served by `handover chip farm`')
    .option('--eids <file>', 'with --batch: the EIDs, one a line (or CSV, EID first)')
    .option(
      '--homes <file>',
      'with --batch: JSON lines of chips whose SM is no longer --sm and of HandoverCommands to deliver again after a crash (read, appended)',
    )
    .option('--concurrency <n>', 'with --batch: chips relayed at once (default 64)')
    .option('--connections <n>', 'with --batch: TCP connections to the farm (default 4)')
    .action((o: RunOptions) => run(o));
}
