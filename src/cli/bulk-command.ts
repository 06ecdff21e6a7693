/**
 * `handover transfer bulk …`: bulk transfer jobs at the operator's own SM (POST /v1/bulk-transfers).
 * The EID file is CSV (the first column; a header line naming `eid` is skipped) or one EID a line;
 * blank lines and `#` comments are ignored. Every EID is checked before anything is sent: bad lines
 * are reported with their numbers and the command exits 2. Then it follows the job: on a terminal a
 * one-line progress bar with rate and ETA, otherwise a JSON line each time the counts change; at
 * the end a summary (terminal: counts and failures by reason) or the JSON report (otherwise);
 * exit 0 when every chip completed, 1 otherwise.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { HandoverError, InvalidInput } from '../protocol/errors.ts';
import { BULK_LIMITS } from '../sm/bulk/limits.ts';
import { parseEidList, refuseBadLines } from './eid-file.ts';
import {
  addOperatorFlags,
  type OperatorClient,
  type OperatorFlags,
  operatorClient,
  printJson,
} from './operator-client.ts';

function readEids(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new InvalidInput('UsageError', `cannot read the EID file ${file}`);
  }
  const { eids, bad } = parseEidList(text);
  if (bad.length > 0) refuseBadLines(file, bad, 'nothing was sent');
  if (eids.length === 0) throw new InvalidInput('UsageError', `${file} lists no EID`);
  return eids;
}

interface Counts {
  pending: number;
  started: number;
  completed: number;
  failed: number;
  skipped: number;
}
export interface BulkFailureLine {
  readonly position: number;
  readonly eid: string;
  readonly code: string;
  readonly message: string;
}
export interface BulkStatus {
  job: { id: string; state: string; kind: string; peerSmId: string };
  counts: Counts;
  report: { total: number; finished: boolean; failures: BulkFailureLine[]; failuresTruncated?: boolean };
}

/**
 * The end of a job for a person at a terminal: counts per outcome, the failures grouped by
 * reason (how many, and one example each), and where the full list is. Pipes get the JSON report.
 */
export function renderSummary(s: BulkStatus): string {
  const c = s.counts;
  const lines = [
    `job ${s.job.id} ${s.job.state}: ${s.report.total} chips, completed ${c.completed}, failed ${c.failed}` +
      `${c.skipped > 0 ? `, skipped ${c.skipped}` : ''}${c.pending + c.started > 0 ? `, not finished ${c.pending + c.started}` : ''}`,
  ];
  const byCode = new Map<string, { n: number; example: BulkFailureLine }>();
  for (const f of s.report.failures) {
    const seen = byCode.get(f.code);
    if (seen) seen.n++;
    else byCode.set(f.code, { n: 1, example: f });
  }
  if (byCode.size > 0) {
    lines.push(`failures by reason${s.report.failuresTruncated ? ' (of the first listed)' : ''}:`);
    for (const [code, { n, example }] of [...byCode].sort((a, b) => b[1].n - a[1].n)) {
      lines.push(`  ${code}: ${n}  (e.g. ${example.eid}: ${example.message})`);
    }
    lines.push(`every failed chip: handover transfer bulk-items ${s.job.id} --state failed`);
  }
  return lines.join('\n');
}

export interface Progress {
  readonly total: number;
  readonly counts: Counts;
  readonly state: string;
  /** Items ended per second since following began; undefined until measurable. */
  readonly ratePerSecond?: number;
}

const clock = (s: number): string => {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
};

/** One terminal line: bar, percentage, counts, rate and ETA (no newline; the caller writes \r first). */
export function renderProgress(p: Progress, width = 24): string {
  const c = p.counts;
  const done = c.completed + c.failed + c.skipped;
  const ratio = p.total === 0 ? 1 : done / p.total;
  const filled = Math.min(width, Math.round(ratio * width));
  const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
  const rate = p.ratePerSecond;
  const remaining = p.total - done;
  const eta =
    remaining === 0
      ? 'done'
      : rate !== undefined && rate > 0
        ? `ETA ${clock(remaining / rate)}`
        : 'ETA --:--';
  const rateText = rate !== undefined ? `${rate.toFixed(1)}/s` : '--/s';
  return (
    `[${bar}] ${(ratio * 100).toFixed(0).padStart(3)}% ${done}/${p.total}` +
    ` ok ${c.completed} failed ${c.failed}${c.skipped > 0 ? ` skipped ${c.skipped}` : ''} in flight ${c.started}` +
    ` | ${rateText} | ${eta} | ${p.state}`
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = encodeURIComponent;

/** How long `--follow` keeps asking an SM that does not answer before it gives up. */
const FOLLOW_UNREACHABLE_MS = 120_000;

async function follow(client: OperatorClient, id: string, intervalMs: number): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const startedAt = Date.now();
  let firstDone: number | undefined;
  let last = '';
  let unreachableSince: number | undefined;
  for (;;) {
    let s: BulkStatus;
    try {
      s = await client.get<BulkStatus>(`/v1/bulk-transfers/${enc(id)}`);
      unreachableSince = undefined;
    } catch (e) {
      // The job runs at the SM whether or not anyone follows it: ride out a restart of the SM.
      if (!(e instanceof HandoverError) || e.code !== 'SmUnreachable') throw e;
      const now = Date.now();
      unreachableSince ??= now;
      if (now - unreachableSince > FOLLOW_UNREACHABLE_MS) {
        if (tty) process.stdout.write('\n');
        throw new HandoverError(
          'SmUnreachable',
          `${e.message}; the job goes on at the SM: follow it again with \`bulk-status ${id} --follow\``,
          { jobId: id },
        );
      }
      const note = `SM unreachable, retrying (${Math.round((now - unreachableSince) / 1000)} s)`;
      if (tty) process.stdout.write(`\r${note}\u001b[K`);
      else process.stdout.write(`${JSON.stringify({ job: id, unreachable: e.message })}\n`);
      await sleep(intervalMs);
      continue;
    }
    const c = s.counts;
    const done = c.completed + c.failed + c.skipped;
    firstDone ??= done;
    const elapsed = (Date.now() - startedAt) / 1000;
    const progress: Progress = {
      total: s.report.total,
      counts: c,
      state: s.job.state,
      ...(elapsed >= 1 && { ratePerSecond: (done - firstDone) / elapsed }),
    };
    if (tty) {
      // Never wider than the terminal: a wrapped line would scroll instead of being redrawn.
      const columns = process.stdout.columns ?? 80;
      const text = renderProgress(progress, columns >= 100 ? 24 : 10);
      process.stdout.write(`\r${text.slice(0, Math.max(0, columns - 1))}\u001b[K`);
    } else {
      const line = JSON.stringify({ job: id, state: s.job.state, total: s.report.total, ...c });
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
    }
    if (s.report.finished) {
      if (tty) process.stdout.write(`\n${renderSummary(s)}\n`);
      else printJson({ job: s.job, report: s.report });
      if (s.job.state !== 'completed' || c.failed > 0) process.exitCode = 1;
      return;
    }
    await sleep(intervalMs);
  }
}

interface StartFlags extends OperatorFlags {
  eids: string;
  concurrency?: string;
  rate?: string;
  activationCode?: string;
  follow: boolean;
  interval: string;
}

function intFlag(v: string | undefined, name: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new InvalidInput('UsageError', `${name} is a whole number from 1 to ${max}`);
  }
  return n;
}

async function start(kind: 'release' | 'portIn', smId: string, o: StartFlags): Promise<void> {
  const interval = Number(o.interval);
  if (!(interval >= 100)) throw new InvalidInput('UsageError', '--interval is milliseconds, at least 100');
  const concurrency = intFlag(o.concurrency, '--concurrency', BULK_LIMITS.concurrency);
  const ratePerSecond = intFlag(o.rate, '--rate', BULK_LIMITS.ratePerSecond);
  const eids = readEids(o.eids);
  if (eids.length > BULK_LIMITS.eids) {
    throw new InvalidInput(
      'UsageError',
      `--eids ${o.eids} lists ${eids.length} chips; one job takes at most ${BULK_LIMITS.eids}: split the file`,
    );
  }
  const client = operatorClient(o);
  const created = await client.post<BulkStatus>('/v1/bulk-transfers', {
    kind,
    eids,
    ...(kind === 'release' ? { newSmId: smId } : { currentSmId: smId }),
    ...(concurrency !== undefined && { concurrency }),
    ...(ratePerSecond !== undefined && { ratePerSecond }),
    ...(o.activationCode !== undefined && { activationCode: o.activationCode }),
  });
  if (!o.follow) {
    printJson(created);
    return;
  }
  process.stderr.write(`bulk job ${created.job.id}: ${created.report.total} chips\n`);
  await follow(client, created.job.id, interval);
}

const startOptions = (cmd: Command): Command =>
  addOperatorFlags(
    cmd
      .requiredOption('--eids <file>', 'the EIDs: CSV (first column) or one per line')
      .option(
        '--concurrency <n>',
        `transfers in flight at most, 1 to ${BULK_LIMITS.concurrency} (SM default 10)`,
      )
      .option(
        '--rate <n>',
        `transfers started per second at most, 1 to ${BULK_LIMITS.ratePerSecond} (SM default 10)`,
      )
      .option(
        '--activation-code <code>',
        'one activation code for every transfer of the job (only its SHA-256 is kept)',
      )
      .option('--no-follow', 'print the created job and return')
      .option('--interval <ms>', 'progress poll interval', '1000'),
  );

export function registerBulkCommands(transfer: Command): void {
  startOptions(
    transfer
      .command('bulk')
      .description('current MNO: release every listed chip to a new SM, as one job')
      .requiredOption('--to <smId>', 'the new SM id'),
  ).action((o: StartFlags & { to: string }) => start('release', o.to, o));

  startOptions(
    transfer
      .command('bulk-port-in')
      .description('new MNO: order a port-in of every listed chip from the current SM, as one job')
      .requiredOption('--from <smId>', 'the current SM id'),
  ).action((o: StartFlags & { from: string }) => start('portIn', o.from, o));

  addOperatorFlags(
    transfer
      .command('bulk-status <id>')
      .description('a bulk job: state, counts and report; --follow to watch it to the end')
      .option('--follow', 'follow progress until the job is finished')
      .option('--interval <ms>', 'progress poll interval', '1000'),
  ).action(async (id: string, o: OperatorFlags & { follow?: boolean; interval: string }) => {
    const client = operatorClient(o);
    if (o.follow) await follow(client, id, Math.max(100, Number(o.interval) || 1000));
    else printJson(await client.get(`/v1/bulk-transfers/${enc(id)}`));
  });

  addOperatorFlags(
    transfer
      .command('bulk-items <id>')
      .description("a bulk job's items (per-chip outcomes)")
      .option('--state <state>', 'only items in this state (pending, started, completed, failed, skipped)')
      .option('--after <position>', 'only items after this position (paging)')
      .option('--limit <n>', 'at most this many', '1000'),
  ).action(async (id: string, o: OperatorFlags & { state?: string; after?: string; limit: string }) => {
    const q = new URLSearchParams();
    if (o.state) q.set('state', o.state);
    if (o.after !== undefined) q.set('after', o.after);
    q.set('limit', o.limit);
    printJson(await operatorClient(o).get(`/v1/bulk-transfers/${enc(id)}/items?${q}`));
  });

  for (const verb of ['pause', 'resume', 'cancel'] as const) {
    addOperatorFlags(
      transfer
        .command(`bulk-${verb} <id>`)
        .description(
          verb === 'cancel'
            ? 'cancel a bulk job: pending chips are skipped, started transfers run to their end'
            : `${verb} a bulk job`,
        ),
    ).action(async (id: string, o: OperatorFlags) => {
      printJson(await operatorClient(o).post(`/v1/bulk-transfers/${enc(id)}/${verb}`, {}));
    });
  }
}
