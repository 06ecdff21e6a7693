/** The bulk CLI's EID file parsing and progress line. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeEid } from '../protocol/eid.ts';
import { HandoverError } from '../protocol/errors.ts';
import { renderProgress, renderSummary } from './bulk-command.ts';
import { checkEidFile, parseEidList, streamEids } from './eid-file.ts';

const e1 = makeEid('890490321234512345123456789012');
const e2 = makeEid('890490321234512345123456789013');

test('an EID file: one a line or CSV (first column, header skipped), comments and blanks ignored', () => {
  assert.deepEqual(parseEidList(`${e1}\n\n# comment\n ${e2} \n`), { eids: [e1, e2], bad: [] });
  assert.deepEqual(parseEidList(`eid,name\n"${e1}",meter 1\r\n${e2};meter 2\n`), { eids: [e1, e2], bad: [] });
});

test('bad lines are named by number: not digits, failing mod-97, repeated', () => {
  const wrong = `${e1.slice(0, 31)}${(Number(e1[31]) + 1) % 10}`;
  const { eids, bad } = parseEidList(`${e1}\nnot-an-eid\n${wrong}\n${e1}\n`);
  assert.deepEqual(eids, [e1]);
  assert.deepEqual(
    bad.map((b) => b.line),
    [2, 3, 4],
  );
  assert.match(bad[1]!.problem, /mod-97/);
  assert.match(bad[2]!.problem, /line 1/);
});

test('the progress line shows bar, counts, rate and ETA', () => {
  const counts = { pending: 50, started: 10, completed: 35, failed: 5, skipped: 0 };
  const line = renderProgress({ total: 100, counts, state: 'running', ratePerSecond: 4 }, 10);
  assert.equal(line, '[####------]  40% 40/100 ok 35 failed 5 in flight 10 | 4.0/s | ETA 0:15 | running');
  const start = renderProgress(
    { total: 100, counts: { ...counts, completed: 0, failed: 0 }, state: 'running' },
    4,
  );
  assert.match(start, /^\[----\] {3}0% 0\/100 .* --\/s \| ETA --:-- \| running$/);
  const end = renderProgress(
    { total: 2, counts: { pending: 0, started: 0, completed: 2, failed: 0, skipped: 0 }, state: 'completed' },
    4,
  );
  assert.match(end, /^\[####\] 100% 2\/2 .* \| done \| completed$/);
});

test('renderSummary: counts per outcome, failures grouped by reason with an example, where the rest is', () => {
  const failure = (position: number, code: string) => ({
    position,
    eid: `eid-${position}`,
    code,
    message: `reason ${code}`,
  });
  const text = renderSummary({
    job: { id: 'bulk_1', state: 'completed', kind: 'release', peerSmId: 'sm-b' },
    counts: { pending: 0, started: 0, completed: 7, failed: 3, skipped: 0 },
    report: {
      total: 10,
      finished: true,
      failures: [failure(1, 'ChipLocked'), failure(4, 'ChipNotManaged'), failure(6, 'ChipNotManaged')],
    },
  });
  assert.deepEqual(text.split('\n'), [
    'job bulk_1 completed: 10 chips, completed 7, failed 3',
    'failures by reason:',
    '  ChipNotManaged: 2  (e.g. eid-4: reason ChipNotManaged)',
    '  ChipLocked: 1  (e.g. eid-1: reason ChipLocked)',
    'every failed chip: handover transfer bulk-items bulk_1 --state failed',
  ]);
  const clean = renderSummary({
    job: { id: 'bulk_2', state: 'cancelled', kind: 'portIn', peerSmId: 'sm-a' },
    counts: { pending: 0, started: 1, completed: 2, failed: 0, skipped: 5 },
    report: { total: 8, finished: true, failures: [] },
  });
  assert.equal(clean, 'job bulk_2 cancelled: 8 chips, completed 2, failed 0, skipped 5, not finished 1');
});

test('EID files are checked line by line too (device run --batch): every bad line counted, a BOM and a header skipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'handover-eids-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.csv');
  writeFileSync(good, `\uFEFFeid,name\r\n${e1},a\r\n\r\n# note\r\n${e2},b\r\n`);
  assert.equal(await checkEidFile(good, 'x'), 2);
  const streamed: string[] = [];
  for await (const eid of streamEids(good)) streamed.push(eid);
  assert.deepEqual(streamed, [e1, e2]);
  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, `${e1}\nnot-an-eid\n${e1.slice(0, 31)}\n${e2}\n`);
  await assert.rejects(checkEidFile(bad, 'no chip was polled'), (e: unknown) => {
    assert.ok(e instanceof HandoverError && e.code === 'UsageError');
    assert.deepEqual(
      (e.details.badLines as { line: number }[]).map((b) => b.line),
      [2, 3],
    );
    return true;
  });
});
