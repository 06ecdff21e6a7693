/**
 * `handover transfer bulk …` against a real SM over HTTPS, as separate processes: a bad EID file
 * is refused before anything is sent (line numbers, exit 2); a job is created, paused, resumed,
 * shown and cancelled; a followed job prints plain progress lines when not on a terminal and
 * ends with its report.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { certificateToPem } from '../src/protocol/pki/certificate.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import { ALPHA, BETA, createHttpWorld, type HttpWorld, idem, smClient } from './support/http-world.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HANDOVER_')) env[k] = v;
  return env;
}

function handover(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { cwd: ROOT, env: cleanEnv(), timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

interface Status {
  job: { id: string; state: string };
  counts: Record<string, number>;
  report: { total: number; finished: boolean; failures: { eid: string; code: string }[] };
}

describe('the bulk transfer CLI over HTTPS', () => {
  let world: HttpWorld;
  let as: string[];
  before(async () => {
    world = await createHttpWorld({
      sms: [
        { smId: ALPHA, operators: [{ id: 'mno-a' }] },
        { smId: BETA, operators: [{ id: 'mno-b' }] },
      ],
    });
    const caFile = join(world.dir, 'pki', 'ci.pem');
    writeFileSync(caFile, certificateToPem(world.pki.ci.certificate));
    as = ['--sm', world.get(ALPHA).url, '--token', world.get(ALPHA).tokens.get('mno-a')!, '--ca', caFile];
  });
  after(() => world?.close());

  const file = (name: string, text: string): string => {
    const path = join(world.dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('refuses a file with bad lines, naming them, and sends nothing', async () => {
    const path = file('bad.txt', `${world.eid(1)}\n12345\n${world.eid(1)}\n`);
    const r = await handover(['transfer', 'bulk', '--to', BETA, '--eids', path, ...as]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad\.txt:2: /);
    assert.match(r.stderr, /bad\.txt:3: repeats the EID of line 1/);
    assert.equal(r.stdout, '');
  });

  it('limits past what the SM takes are usage errors naming the flag, before anything is sent', async () => {
    const path = file('one.txt', `${world.eid(1)}\n`);
    for (const [flag, value, max] of [
      ['--concurrency', '10001', '10000'],
      ['--rate', '100001', '100000'],
    ] as const) {
      const r = await handover(['transfer', 'bulk', '--to', BETA, '--eids', path, flag, value, ...as]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`${flag} is a whole number from 1 to ${max}`));
      assert.equal(r.stdout, '');
    }
  });

  it('creates, pauses, resumes, shows and cancels a job', async () => {
    // Two chips managed at alpha; nobody drives the first, so with concurrency 1 the second waits.
    const eids = [world.eid(11), world.eid(12)];
    for (const eid of eids) {
      const chip = createHttpTestChip(world.pki, eid, ALPHA);
      const r = await smClient(world, ALPHA, { operator: 'mno-a' }).call('/v1/chips', {
        headers: idem(),
        body: await chip.registration(),
      });
      assert.equal(r.status, 201, r.text);
    }
    const path = file('ok.csv', `eid\n${eids.join('\n')}\n`);
    const created = await handover([
      'transfer',
      'bulk',
      '--to',
      BETA,
      '--eids',
      path,
      '--no-follow',
      '--concurrency',
      '1',
      ...as,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const job = JSON.parse(created.stdout) as Status;
    assert.equal(job.report.total, 2);
    const paused = await handover(['transfer', 'bulk-pause', job.job.id, ...as]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal((JSON.parse(paused.stdout) as Status).job.state, 'paused');
    const resumed = await handover(['transfer', 'bulk-resume', job.job.id, ...as]);
    assert.equal((JSON.parse(resumed.stdout) as Status).job.state, 'running');
    const shown = await handover(['transfer', 'bulk-status', job.job.id, ...as]);
    assert.equal((JSON.parse(shown.stdout) as Status).job.id, job.job.id);
    const items = await handover(['transfer', 'bulk-items', job.job.id, ...as]);
    assert.equal((JSON.parse(items.stdout) as { items: unknown[] }).items.length, 2);
    const cancelled = await handover(['transfer', 'bulk-cancel', job.job.id, ...as]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    const c = JSON.parse(cancelled.stdout) as Status;
    assert.equal(c.job.state, 'cancelled');
    assert.deepEqual(c.counts, { pending: 0, started: 1, completed: 0, failed: 0, skipped: 1 });
    const again = await handover(['transfer', 'bulk-pause', job.job.id, ...as]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /InvalidState/);
  });

  it('follows a job with plain progress lines and ends with the report (exit 1 on failures)', async () => {
    const path = file('follow.txt', `${world.eid(21)}\n${world.eid(22)}\n${world.eid(23)}\n`);
    const r = await handover(['transfer', 'bulk', '--to', BETA, '--eids', path, '--interval', '100', ...as]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length >= 2, r.stdout);
    assert.equal(lines[0]!.total, 3);
    const last = lines[lines.length - 1] as unknown as { job: { state: string }; report: Status['report'] };
    assert.equal(last.job.state, 'completed');
    assert.deepEqual(
      last.report.failures.map((f) => f.code),
      ['ChipNotManaged', 'ChipNotManaged', 'ChipNotManaged'],
    );
  });
});
