import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HandoverError } from '../protocol/errors.ts';
import { DEMO_MARKER, prepareDemoDir } from './demo-dir.ts';

const usage = (e: unknown) => e instanceof HandoverError && e.code === 'UsageError';

test('the demo folder: new, empty or marked is emptied and marked; anything else is refused untouched', () => {
  const root = mkdtempSync(join(tmpdir(), 'handover-demo-dir-'));
  const cwd = join(root, 'work', 'repo');
  const home = join(root, 'home');
  mkdirSync(cwd, { recursive: true });
  mkdirSync(home);
  try {
    // New: made and marked.
    const dir = prepareDemoDir('.demo', cwd, home);
    assert.equal(dir, join(cwd, '.demo'));
    assert.deepEqual(readdirSync(dir), [DEMO_MARKER]);
    // Marked: emptied again (the marker stays).
    writeFileSync(join(dir, 'chip.json'), '{}');
    mkdirSync(join(dir, 'pki'));
    assert.equal(prepareDemoDir('.demo', cwd, home), dir);
    assert.deepEqual(readdirSync(dir), [DEMO_MARKER]);
    // Made by a run before the marker existed: only what the demo leaves.
    const legacy = join(root, 'legacy');
    mkdirSync(join(legacy, 'pki'), { recursive: true });
    writeFileSync(join(legacy, 'chip.json'), '{}');
    assert.equal(prepareDemoDir(legacy, cwd, home), legacy);
    assert.deepEqual(readdirSync(legacy), [DEMO_MARKER]);
    // Empty and existing: used.
    const empty = join(root, 'empty');
    mkdirSync(empty);
    assert.equal(prepareDemoDir(empty, cwd, home), empty);

    // Refused, and nothing deleted.
    const other = join(root, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'important.txt'), 'keep me');
    const file = join(root, 'a-file');
    writeFileSync(file, 'keep me too');
    for (const given of ['', '  ', other, file, '.', '..', cwd, join(root, 'work'), home, root, '/']) {
      assert.throws(() => prepareDemoDir(given, cwd, home), usage, JSON.stringify(given));
    }
    assert.ok(existsSync(join(other, 'important.txt')));
    assert.ok(existsSync(file));
    assert.ok(existsSync(join(cwd)));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
