import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChipRelayState } from '../device/agent.ts';
import { RelayStateWriter, readRelayStateFile } from './relay-state-file.ts';

function appendRelayState(path: string, chip: ChipRelayState): void {
  const w = new RelayStateWriter(path);
  w.write(chip);
  w.close();
}

const A = 'https://sm-a.example:9443';
const B = 'https://sm-b.example:9443';
const E1 = '89049032123451234512345678901235';
const E2 = '89049032123451234512345678901333';

function temp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'handover-homes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'homes.jsonl');
}

test('a held command survives the agent; the line that answers it sets the new home', (t) => {
  const path = temp(t);
  const command = Uint8Array.of(0xe3, 1, 2);
  appendRelayState(path, { eid: E1, home: A, held: { address: B, command } });
  appendRelayState(path, { eid: E2, home: A, held: { address: B, command } });
  appendRelayState(path, { eid: E2, home: B, held: undefined });
  // As after a crash between the two writes of E1: E1 is resumed, E2 has moved.
  const state = readRelayStateFile(path, A);
  assert.deepEqual(state.resume, [{ eid: E1, home: A, held: { address: B, command } }]);
  assert.deepEqual([...state.homes], [[E2, B]]);
  assert.equal(state.tornLine, undefined);
});

test('the old {eid, sm} lines still read; no file is an empty state', (t) => {
  const path = temp(t);
  assert.deepEqual(readRelayStateFile(path, A), { homes: new Map(), resume: [] });
  writeFileSync(path, `${JSON.stringify({ eid: E1, sm: B })}\n${JSON.stringify({ eid: E2, sm: A })}\n`);
  assert.deepEqual([...readRelayStateFile(path, A).homes], [[E1, B]]);
});

test('a torn last line is left out and named; a bad line before it is an error naming the line', (t) => {
  const path = temp(t);
  appendRelayState(path, { eid: E1, home: B, held: undefined });
  appendFileSync(path, '{"eid":"8904903212345123451234');
  const state = readRelayStateFile(path, A);
  assert.deepEqual([...state.homes], [[E1, B]]);
  assert.equal(state.tornLine, 2);
  appendFileSync(path, `\n${JSON.stringify({ eid: E2, sm: B })}\n`);
  assert.throws(() => readRelayStateFile(path, A), { code: 'FileError', message: /line 2/ });
});
