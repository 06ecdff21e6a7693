/**
 * `handover device run`: the device agent. Polls the chip's SM over HTTPS, hands messages to the
 * chip over an APDU transport (TCP to `handover chip serve`, or a chip state file in-process),
 * and carries the answers to the SMs named in the signed messages. Prints one JSON line per step.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ChipCard } from '../chip/apdu.ts';
import { FileStateStore } from '../chip/file-store.ts';
import { ChipProcessor } from '../chip/processor.ts';
import { DeviceAgent } from '../device/agent.ts';
import { sendCommand, type Transmit } from '../device/apdu-client.ts';
import { httpSmEndpoints } from '../device/http-endpoints.ts';
import { connectTcpCard } from '../device/tcp-transport.ts';
import { parseEid } from '../protocol/eid.ts';
import { HandoverError, InvalidInput } from '../protocol/errors.ts';

interface RunOptions {
  eid: string;
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

async function chipLink(o: RunOptions): Promise<{ transmit: Transmit; close(): void }> {
  if ((o.chip === undefined) === (o.chipState === undefined)) {
    throw usage('give exactly one of --chip HOST:PORT (a `handover chip serve`) or --chip-state FILE');
  }
  if (o.chip !== undefined) {
    const m = /^(.+):(\d{1,5})$/.exec(o.chip);
    if (!m) throw usage(`--chip must be HOST:PORT, got "${o.chip}"`);
    return connectTcpCard(m[1]!, Number(m[2]));
  }
  const card = new ChipCard(new ChipProcessor(new FileStateStore(o.chipState!)));
  return { transmit: (apdu) => card.transmit(apdu), close: () => {} };
}

async function run(o: RunOptions): Promise<void> {
  const eid = parseEid(o.eid);
  if (!/^https:\/\//.test(o.sm))
    throw usage(`--sm must be the https base URL of the chip's SM, got "${o.sm}"`);
  if (o.ca.length === 0)
    throw usage('give the CI certificate(s) the SM server certificates chain to: --ca FILE');
  const ca = o.ca.map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      throw usage(`cannot read --ca ${f}`);
    }
  });
  const interval = Number(o.interval);
  if (!Number.isFinite(interval) || interval < 10) throw usage('--interval is milliseconds, at least 10');
  const maxPolls = o.maxPolls === undefined ? Number.POSITIVE_INFINITY : Number(o.maxPolls);
  const link = await chipLink(o);
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
  try {
    for (let polls = 0; !stop && polls < maxPolls; polls++) {
      try {
        const handled = await agent.runOnce();
        if (handled === 0 && o.untilIdle) break;
      } catch (e) {
        // Keep going: the agent keeps an unanswered HandoverCommand and repeats it (§6.6).
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
  line({ done: true, eid, homeSm: agent.homeSmAddress });
}

export function registerDeviceCommands(program: Command): void {
  const device = program
    .command('device')
    .description('the device agent: relays bytes between a chip and its SMs');
  device
    .command('run')
    .description('poll the SM for the chip and carry every message through; one JSON line per step')
    .requiredOption('--eid <eid>', 'the chip EID (32 digits)')
    .requiredOption('--sm <url>', "https base URL of the chip's current SM")
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
    .option('--max-polls <n>', 'stop after this many polls')
    .action((o: RunOptions) => run(o));
}
