/** `npm run demo` as CI sees it: real processes, SQLite, mutual TLS; twice in the same folder. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runProcessDemo } from '../src/demo/process-demo.ts';

test('the multi-process demo completes a port-in, twice in a row in the same folder', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'handover-demo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (let run = 0; run < 2; run++) {
    rmSync(dir, { recursive: true, force: true });
    const lines: string[] = [];
    const final = (await runProcessDemo({
      dir,
      curve: 'p256',
      activationCode: 'AC-TEST',
      print: (l) => lines.push(l),
      timeoutMs: 90_000,
    })) as {
      chip: { assignedSmId: string; pendingPermissionId?: string };
      currentSm: { transfers: { state: string }[]; chips: unknown[] };
      newSm: { transfers: { state: string }[]; chips: { status: string }[] };
    };
    assert.equal(final.chip.assignedSmId, 'sm-beta.example');
    assert.equal(final.chip.pendingPermissionId, undefined);
    assert.deepEqual(
      final.currentSm.transfers.map((x) => x.state),
      ['completed'],
    );
    assert.deepEqual(
      final.newSm.transfers.map((x) => x.state),
      ['completed'],
    );
    assert.deepEqual(final.currentSm.chips, []);
    assert.equal(final.newSm.chips[0]?.status, 'managed');
    assert.ok(lines.some((l) => l.includes('Stopped 4 processes')));
    assert.ok(lines.some((l) => l.includes('HandoverResult')));
  }
});
