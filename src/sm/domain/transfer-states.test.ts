import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SmError } from '../errors.ts';
import {
  advance,
  CURRENT_SM,
  type CurrentSmState,
  isTerminal,
  type Machine,
  NEW_SM,
  type NewSmState,
  transition,
} from './transfer-states.ts';

// PROTOCOL.md §6.6, written out independently of the tables: every pair a transfer may move along.
const SPEC_CURRENT: readonly [CurrentSmState, CurrentSmState][] = [
  ['requested', 'awaitingApproval'],
  ['requested', 'permitted'], // no approval needed
  ['awaitingApproval', 'permitted'],
  ['awaitingApproval', 'rejected'],
  ['awaitingApproval', 'expired'],
  ['permitted', 'delivered'],
  ['permitted', 'expired'], // never delivered: no chip has seen it
  ['delivered', 'completed'],
  ['delivered', 'cancelled'],
];
const SPEC_NEW: readonly [NewSmState, NewSmState][] = [
  ['ordered', 'asked'],
  ['ordered', 'permitted'], // no ask: the current MNO started the release
  ['asked', 'permitted'],
  ['permitted', 'keyEstablished'],
  ['keyEstablished', 'completed'],
  ['keyEstablished', 'failed'],
  ...(['ordered', 'asked', 'permitted'] as const).flatMap((s): [NewSmState, NewSmState][] => [
    [s, 'failed'],
    [s, 'expired'],
  ]),
];

function checkMachine<S extends string, E extends string>(
  machine: Machine<S, E>,
  spec: readonly [S, S][],
): void {
  const allowed = new Set(spec.map(([a, b]) => `${a}>${b}`));
  const rank = (s: S) => machine.states.indexOf(s);

  // Terminal states absorb nothing.
  for (const s of machine.terminal) {
    for (const e of machine.events) {
      const t = transition(machine, s, e);
      assert.equal(t.ok, false, `${s} + ${e}`);
    }
  }
  // Every arrow of the table is one of the spec's.
  for (const s of machine.states) {
    for (const e of machine.events) {
      const t = transition(machine, s, e);
      if (t.ok) assert.ok(allowed.has(`${s}>${t.state}`), `${s} --${e}--> ${t.state} is not in the spec`);
    }
  }
  // Every spec arrow is reachable by some event.
  for (const [a, b] of spec) {
    assert.ok(
      machine.events.some((e) => {
        const t = transition(machine, a, e);
        return t.ok && t.state === b;
      }),
      `spec arrow ${a} → ${b} has no event`,
    );
  }
  // Random event sequences from the initial state: only spec arrows, always forward, typed refusals only.
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...machine.events), { maxLength: 30 }), (events) => {
      let s = machine.initial;
      for (const e of events) {
        const t = transition(machine, s, e);
        if (!t.ok) {
          assert.ok(t.error instanceof SmError);
          assert.equal(t.error.code, 'InvalidState');
          continue;
        }
        assert.ok(allowed.has(`${s}>${t.state}`));
        assert.ok(rank(t.state) > rank(s));
        s = t.state;
      }
      // A terminal state is reached only through a path; once there, nothing moves it.
      if (isTerminal(machine, s))
        for (const e of machine.events) assert.equal(transition(machine, s, e).ok, false);
    }),
    { numRuns: 1000 },
  );
  // Arbitrary strings as state and event never crash and never produce a state.
  const weird = fc.oneof(
    fc.string(),
    fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', ''),
    fc.constantFrom(...machine.states),
    fc.constantFrom(...machine.events),
  );
  fc.assert(
    fc.property(weird, weird, (s, e) => {
      const t = transition(machine, s as S, e as E);
      if (t.ok) {
        assert.ok(machine.states.includes(s as S) && machine.events.includes(e as E));
        assert.ok(machine.states.includes(t.state));
      } else {
        assert.equal(t.error.code, 'InvalidState');
      }
    }),
    { numRuns: 2000 },
  );
}

test('current SM machine follows PROTOCOL.md §6.6', () => checkMachine(CURRENT_SM, SPEC_CURRENT));
test('new SM machine follows PROTOCOL.md §6.6', () => checkMachine(NEW_SM, SPEC_NEW));

test('the happy paths', () => {
  assert.equal(advance(CURRENT_SM, 'requested', 'issuePermission', 'deliver', 'chipMoved'), 'completed');
  assert.equal(
    advance(CURRENT_SM, 'requested', 'awaitApproval', 'issuePermission', 'deliver', 'chipStayed'),
    'cancelled',
  );
  assert.equal(
    advance(NEW_SM, 'ordered', 'askSent', 'permissionIssued', 'establishKeys', 'chipMoved'),
    'completed',
  );
  assert.equal(advance(NEW_SM, 'ordered', 'permissionIssued', 'establishKeys', 'chipStayed'), 'failed');
});

test('a new SM in keyEstablished never expires on its own', () => {
  assert.equal(transition(NEW_SM, 'keyEstablished', 'expire').ok, false);
  assert.equal(transition(NEW_SM, 'keyEstablished', 'refuse').ok, false);
  assert.throws(() => advance(CURRENT_SM, 'delivered', 'expire'), { code: 'InvalidState' });
});
