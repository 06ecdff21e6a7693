import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

test('the CLI exits only once a long answer has gone through the pipe, with its exit code', () => {
  // A pipe holds 64 KiB: the rest of 1 MiB is still queued when the command ends. An open
  // interval keeps the event loop alive, as an HTTP agent's sockets would.
  const script = [
    "import { exitWhenFlushed } from './src/cli/exit.ts';",
    "process.stdout.write('x'.repeat(1 << 20));",
    "process.stderr.write('y'.repeat(200_000));",
    'setInterval(() => {}, 1000);',
    'exitWhenFlushed(3);',
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'latin1',
    maxBuffer: 4 << 20,
    timeout: 30_000,
  });
  assert.equal(r.status, 3, r.stderr.slice(0, 500));
  assert.equal(r.stdout.length, 1 << 20);
  assert.equal(r.stderr.length, 200_000);
});
