/**
 * Atomic persistence (PROTOCOL.md §4): a crash between any two file operations of a save, or in
 * the middle of a write, leaves a file that loads as exactly the old or the new state. And the
 * processor saves before it answers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { smOf, transferPermissionMessage } from '../../test/support/sm-messages.ts';
import { ApduError, sendCommand } from '../device/apdu-client.ts';
import { HandoverError } from '../protocol/errors.ts';
import { ChipCard } from './apdu.ts';
import { ChipStateNotFound, type FileOps, FileStateStore, nodeFileOps } from './file-store.ts';
import { ChipProcessor, processCommand } from './processor.ts';
import { type ChipState, serializeChipState } from './state.ts';
import { type ChipStateStore, MemoryStateStore } from './store.ts';
import { createTestChipState, createTestPki, testEid } from './testing.ts';

const pki = createTestPki('p256');
const dirs: string[] = [];
after(() => {
  pki.remove();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'handover-chip-store-'));
  dirs.push(d);
  return d;
}

const oldState = createTestChipState(pki);
const permission = transferPermissionMessage(smOf(pki, 'sm-alpha.example'), smOf(pki, 'sm-beta.example'), {
  eid: testEid(pki),
  counterValue: 1,
});
const newState = processCommand(oldState, permission).state;

class Crash extends Error {}

/**
 * Real file operations that crash (throw, and from then on do nothing but throw, like a dead
 * process) after the `crashAfter`-th operation, or in the middle of the first write.
 */
function crashingOps(
  crashAfter: number,
  mode: 'after' | 'midWrite' = 'after',
): { ops: FileOps; log: string[] } {
  const log: string[] = [];
  let dead = false;
  const step = <T>(name: string, run: () => T): T => {
    if (dead) throw new Crash(`dead at ${name}`);
    const value = run();
    log.push(name);
    if (mode === 'after' && log.length === crashAfter) {
      dead = true;
      throw new Crash(`crash after ${name}`);
    }
    return value;
  };
  const ops: FileOps = {
    open: (p, f) => step(`open(${f === 'r' ? 'dir' : 'temp'})`, () => nodeFileOps.open(p, f)),
    write: (fd, data, offset) => {
      if (mode === 'midWrite' && !dead) {
        const half = Math.max(1, Math.floor((data.length - offset) / 2));
        nodeFileOps.write(fd, data.subarray(0, offset + half), offset);
        dead = true;
        throw new Crash('crash in the middle of a write');
      }
      return step('write', () => nodeFileOps.write(fd, data, offset));
    },
    fsync: (fd) => step('fsync', () => nodeFileOps.fsync(fd)),
    close: (fd) => step('close', () => nodeFileOps.close(fd)),
    rename: (a, b) => step('rename', () => nodeFileOps.rename(a, b)),
    readFile: (p) => step('readFile', () => nodeFileOps.readFile(p)),
    readdir: (d) => step('readdir', () => nodeFileOps.readdir(d)),
    unlink: (p) => step('unlink', () => nodeFileOps.unlink(p)),
  };
  return { ops, log };
}

describe('FileStateStore', () => {
  test('save then load round-trips; a missing file is ChipStateNotFound', () => {
    const path = join(tempDir(), 'chip.json');
    const store = new FileStateStore(path);
    assert.equal(store.exists(), false);
    assert.throws(() => store.load(), ChipStateNotFound);
    store.save(oldState);
    assert.deepEqual(store.load(), oldState);
    store.save(newState);
    assert.deepEqual(new FileStateStore(path).load(), newState);
    assert.deepEqual(readdirSync(join(path, '..')), ['chip.json']);
  });

  test('a clean save is: clean up, open temp, write, fsync, close, rename, open dir, fsync dir, close', () => {
    const path = join(tempDir(), 'chip.json');
    new FileStateStore(path).save(oldState);
    const { ops, log } = crashingOps(Number.POSITIVE_INFINITY);
    new FileStateStore(path, ops).save(newState);
    assert.deepEqual(log, [
      'readdir',
      'open(temp)',
      'write',
      'fsync',
      'close',
      'rename',
      'open(dir)',
      'fsync',
      'close',
    ]);
  });

  test('a crash after any operation of a save: the reopened store holds the old or the new state, never a mix', () => {
    const cleanSave = 9;
    const renameAt = 6;
    for (let n = 1; n <= cleanSave; n++) {
      const dir = tempDir();
      const path = join(dir, 'chip.json');
      new FileStateStore(path).save(oldState);
      const { ops, log } = crashingOps(n);
      assert.throws(() => new FileStateStore(path, ops).save(newState), Crash, `crash after step ${n}`);
      const reopened = new FileStateStore(path).load();
      const expected = n >= renameAt ? newState : oldState;
      assert.deepEqual(reopened, expected, `crash after ${log.at(-1)} (step ${n})`);
      // A stale temporary file is ignored by load and removed by the next save.
      const store = new FileStateStore(path);
      store.save(reopened);
      assert.deepEqual(readdirSync(dir), ['chip.json']);
      assert.deepEqual(store.load(), expected);
    }
  });

  test('a crash in the middle of writing the temporary file leaves the old state', () => {
    const dir = tempDir();
    const path = join(dir, 'chip.json');
    new FileStateStore(path).save(oldState);
    const { ops } = crashingOps(0, 'midWrite');
    assert.throws(() => new FileStateStore(path, ops).save(newState), Crash);
    assert.equal(readdirSync(dir).length, 2, 'a partial temporary file was left behind');
    const store = new FileStateStore(path);
    assert.deepEqual(store.load(), oldState);
    assert.equal(readdirSync(dir).length, 2, 'load only reads');
    store.save(newState);
    assert.deepEqual(readdirSync(dir), ['chip.json']);
    assert.deepEqual(store.load(), newState);
  });

  test('a crash on the very first save leaves no state (ChipStateNotFound), not a broken one', () => {
    const dir = tempDir();
    const path = join(dir, 'chip.json');
    const { ops } = crashingOps(0, 'midWrite');
    assert.throws(() => new FileStateStore(path, ops).save(oldState), Crash);
    assert.throws(() => new FileStateStore(path).load(), ChipStateNotFound);
  });

  test('files that are not a chip state: ChipStateInvalid; other files in the folder survive a save', () => {
    const dir = tempDir();
    const path = join(dir, 'chip.json');
    writeFileSync(join(dir, 'notes.tmp'), 'keep');
    writeFileSync(join(dir, '.other.json.0123456789abcdef.tmp'), 'keep');
    for (const text of ['', '{', serializeChipState(oldState).slice(0, 200), '[]', '{"format":2}']) {
      writeFileSync(path, text);
      assert.throws(
        () => new FileStateStore(path).load(),
        (e: unknown) => e instanceof HandoverError && e.code === 'ChipStateInvalid',
        JSON.stringify(text.slice(0, 20)),
      );
    }
    new FileStateStore(path).save(oldState);
    assert.deepEqual(readdirSync(dir).sort(), ['.other.json.0123456789abcdef.tmp', 'chip.json', 'notes.tmp']);
  });
});

describe('ChipProcessor persistence', () => {
  test('the new state is saved before the answer is released; a failed save releases no answer', () => {
    const events: string[] = [];
    const memory = new MemoryStateStore(oldState);
    let failNext = true;
    const store: ChipStateStore = {
      load: () => {
        events.push('load');
        return memory.load();
      },
      save: (s: ChipState) => {
        events.push('save');
        if (failNext) {
          failNext = false;
          throw new Crash('disk gone');
        }
        memory.save(s);
      },
    };
    const processor = new ChipProcessor(store);
    assert.throws(() => processor.process(permission), Crash);
    assert.deepEqual(memory.load(), oldState);
    // The chip reloads and the command works the second time; the answer follows the save.
    const answer = processor.process(permission);
    events.push('answer');
    assert.deepEqual(events, ['load', 'save', 'load', 'save', 'answer']);
    assert.ok(answer.length > 0);
    assert.equal(memory.load().pending !== undefined, true);
  });

  test('through the card: a failed save answers 6F00, and the state on disk is the old one', async () => {
    const dir = tempDir();
    const path = join(dir, 'chip.json');
    new FileStateStore(path).save(oldState);
    // readFile of the load, then the save's readdir and open: crash.
    const { ops, log } = crashingOps(3);
    const errors: unknown[] = [];
    const card = new ChipCard(new ChipProcessor(new FileStateStore(path, ops)), {
      onError: (e) => errors.push(e),
    });
    await assert.rejects(
      sendCommand((a) => card.transmit(a), permission),
      (e: unknown) => e instanceof ApduError && e.sw === 0x6f00,
    );
    assert.deepEqual(log, ['readFile', 'readdir', 'open(temp)']);
    assert.ok(errors[0] instanceof Crash);
    assert.deepEqual(new FileStateStore(path).load(), oldState);
  });
});
