/** `handover transfer …`: an operator's transfers at its own SM, over the operator API (PROTOCOL.md §9). */
import type { Command } from 'commander';
import { InvalidInput } from '../protocol/errors.ts';
import { TRANSFER_STATES } from '../sm/domain/transfer-states.ts';
import { eidArg } from './args.ts';
import { registerBulkCommands } from './bulk-command.ts';
import { addOperatorFlags, type OperatorFlags, operatorClient, printJson } from './operator-client.ts';

interface TransferView {
  id: string;
  state: string;
  direction: string;
  eid: string;
  peerSmId: string;
  updatedAt: string;
  endReason?: string;
}
interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  details: Record<string, unknown>;
}

const TERMINAL = new Set(['completed', 'rejected', 'cancelled', 'expired', 'failed']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = encodeURIComponent;

async function watch(
  id: string,
  flags: OperatorFlags & { interval: string; timeout: string },
): Promise<void> {
  const client = operatorClient(flags);
  const interval = Number(flags.interval);
  const timeout = Number(flags.timeout);
  if (!(interval >= 100)) throw new InvalidInput('UsageError', '--interval is milliseconds, at least 100');
  if (!(timeout > 0)) throw new InvalidInput('UsageError', '--timeout is seconds, more than 0');
  const deadline = Date.now() + timeout * 1000;
  const seen = new Set<number>();
  let last = '';
  for (;;) {
    const t = await client.get<TransferView>(`/v1/transfers/${enc(id)}`);
    const entries = await client.get<{ entries: AuditEntry[] }>(`/v1/audit?transferId=${enc(id)}`);
    for (const e of entries.entries) {
      if (seen.has(e.seq)) continue;
      seen.add(e.seq);
      printJson({ at: e.at, step: e.action, by: e.actor, ...e.details });
    }
    if (t.state !== last) {
      last = t.state;
      printJson({ transfer: t.id, state: t.state, direction: t.direction, peerSmId: t.peerSmId });
    }
    if (TERMINAL.has(t.state)) {
      if (t.state !== 'completed') process.exitCode = 1;
      return;
    }
    if (Date.now() > deadline) {
      printJson({ transfer: t.id, state: t.state, timedOut: true });
      process.exitCode = 1;
      return;
    }
    await sleep(interval);
  }
}

export function registerTransferCommands(program: Command): void {
  const transfer = program
    .command('transfer')
    .description(
      "an operator's transfers at its own SM (operator API; --sm, --token, --ca or HANDOVER_* env)",
    );

  addOperatorFlags(
    transfer
      .command('release')
      .description('current MNO: release a chip to a new SM (PROTOCOL.md §6.1)')
      .requiredOption('--eid <eid>', 'chip EID')
      .requiredOption('--to <smId>', 'the new SM id')
      .option('--activation-code <code>', 'bind the permission to an order holding this code')
      .option('--unlock-code <code>', "the chip's unlock code, if it is locked by code"),
  ).action(
    async (o: OperatorFlags & { eid: string; to: string; activationCode?: string; unlockCode?: string }) => {
      printJson(
        await operatorClient(o).post('/v1/releases', {
          eid: eidArg(o.eid),
          newSmId: o.to,
          ...(o.activationCode && { activationCode: o.activationCode }),
          ...(o.unlockCode && { unlockCode: o.unlockCode }),
        }),
      );
    },
  );

  addOperatorFlags(
    transfer
      .command('port-in')
      .description('new MNO: order a port-in from the current SM (asks it over the peer API unless --no-ask)')
      .requiredOption('--eid <eid>', 'chip EID')
      .requiredOption('--from <smId>', 'the current SM id')
      .option('--activation-code <code>', 'the activation code given to the subscriber')
      .option('--unlock-code <code>', "the current MNO's unlock code, if the chip is locked by code")
      .option('--no-ask', 'wait for the current MNO to release the chip instead of asking'),
  ).action(
    async (
      o: OperatorFlags & {
        eid: string;
        from: string;
        activationCode?: string;
        unlockCode?: string;
        ask: boolean;
      },
    ) => {
      printJson(
        await operatorClient(o).post('/v1/port-ins', {
          eid: eidArg(o.eid),
          currentSmId: o.from,
          ask: o.ask,
          ...(o.activationCode && { activationCode: o.activationCode }),
          ...(o.unlockCode && { unlockCode: o.unlockCode }),
        }),
      );
    },
  );

  for (const verb of ['approve', 'reject'] as const) {
    addOperatorFlags(
      transfer.command(`${verb} <id>`).description(`current MNO: ${verb} a transfer that awaits approval`),
    ).action(async (id: string, o: OperatorFlags) => {
      printJson(await operatorClient(o).post(`/v1/transfers/${enc(id)}/${verb}`, {}));
    });
  }

  addOperatorFlags(
    transfer
      .command('list')
      .description('list transfers (newest last)')
      .option('--eid <eid>', 'only this chip')
      .option(
        '--state <state>',
        `only this state, or several comma-separated: ${[...TRANSFER_STATES].join(', ')}`,
      )
      .option('--direction <dir>', 'outgoing or incoming'),
  ).action(async (o: OperatorFlags & { eid?: string; state?: string; direction?: string }) => {
    const q = new URLSearchParams();
    if (o.eid) q.set('eid', eidArg(o.eid));
    if (o.state) q.set('state', o.state);
    if (o.direction) q.set('direction', o.direction);
    printJson(await operatorClient(o).get(`/v1/transfers${q.size ? `?${q}` : ''}`));
  });

  addOperatorFlags(
    transfer
      .command('counts')
      .description('how many transfers are in each state (cheap on a whole fleet)')
      .option('--direction <dir>', 'outgoing or incoming'),
  ).action(async (o: OperatorFlags & { direction?: string }) => {
    const q = o.direction ? `?${new URLSearchParams({ direction: o.direction })}` : '';
    printJson(await operatorClient(o).get(`/v1/transfers/counts${q}`));
  });

  addOperatorFlags(transfer.command('show <id>').description('one transfer')).action(
    async (id: string, o: OperatorFlags) => {
      printJson(await operatorClient(o).get(`/v1/transfers/${enc(id)}`));
    },
  );

  addOperatorFlags(
    transfer
      .command('watch <id>')
      .description('show each step of a transfer live until it ends (exit 0 completed, 1 otherwise)')
      .option('--interval <ms>', 'poll interval', '500')
      .option('--timeout <s>', 'give up after this many seconds', '600'),
  ).action((id: string, o: OperatorFlags & { interval: string; timeout: string }) => watch(id, o));

  registerBulkCommands(transfer);
}
