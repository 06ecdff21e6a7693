/**
 * The two transfer state machines of PROTOCOL.md §6.6 as pure functions.
 *
 * Current SM: requested → awaitingApproval → permitted → delivered → completed | rejected | cancelled | expired
 * New SM:     ordered → asked → permitted → keyEstablished → completed | failed | expired
 *
 * How the terminal states attach to the chain (the spec lists them after the last arrow):
 * - current SM: `rejected` only ends an awaited approval; `expired` ends an approval that never
 *   came or a permission that was never delivered (no chip has seen it); once delivered, only a
 *   chip-signed statement ends the transfer (§6.6): `completed` (the chip moved) or `cancelled`
 *   (the chip stayed, after a CancelPermission).
 * - new SM: before `keyEstablished` a transfer may fail (refused ask, cancellation reported by the
 *   current SM) or expire (the order's time ran out); from `keyEstablished` it never fails or
 *   expires on its own: only the chip's proof (`completed`) or a chip-signed cancellation
 *   outcome relayed by the current SM (`failed`) ends it.
 * Optional steps are skipped forward (no approval needed; no peer ask when the current MNO
 * initiated the release), never backward.
 */
import { SmError } from '../errors.ts';

export type CurrentSmState =
  | 'requested'
  | 'awaitingApproval'
  | 'permitted'
  | 'delivered'
  | 'completed'
  | 'rejected'
  | 'cancelled'
  | 'expired';

export type CurrentSmEvent =
  | 'awaitApproval'
  | 'issuePermission'
  | 'reject'
  | 'deliver'
  | 'chipMoved'
  | 'chipStayed'
  | 'expire';

export type NewSmState =
  | 'ordered'
  | 'asked'
  | 'permitted'
  | 'keyEstablished'
  | 'completed'
  | 'failed'
  | 'expired';

export type NewSmEvent =
  | 'askSent'
  | 'permissionIssued'
  | 'establishKeys'
  | 'chipMoved'
  | 'chipStayed'
  | 'refuse'
  | 'expire';

export interface Machine<S extends string, E extends string> {
  readonly name: string;
  readonly initial: S;
  /** States in chain order; a transition never moves to an earlier one. */
  readonly states: readonly S[];
  readonly events: readonly E[];
  readonly terminal: readonly S[];
  readonly arrows: { readonly [K in S]: Partial<Readonly<Record<E, S>>> };
}

export const CURRENT_SM: Machine<CurrentSmState, CurrentSmEvent> = {
  name: 'current SM',
  initial: 'requested',
  states: [
    'requested',
    'awaitingApproval',
    'permitted',
    'delivered',
    'completed',
    'rejected',
    'cancelled',
    'expired',
  ],
  events: ['awaitApproval', 'issuePermission', 'reject', 'deliver', 'chipMoved', 'chipStayed', 'expire'],
  terminal: ['completed', 'rejected', 'cancelled', 'expired'],
  arrows: {
    requested: { awaitApproval: 'awaitingApproval', issuePermission: 'permitted' },
    awaitingApproval: { issuePermission: 'permitted', reject: 'rejected', expire: 'expired' },
    permitted: { deliver: 'delivered', expire: 'expired' },
    delivered: { chipMoved: 'completed', chipStayed: 'cancelled' },
    completed: {},
    rejected: {},
    cancelled: {},
    expired: {},
  },
};

export const NEW_SM: Machine<NewSmState, NewSmEvent> = {
  name: 'new SM',
  initial: 'ordered',
  states: ['ordered', 'asked', 'permitted', 'keyEstablished', 'completed', 'failed', 'expired'],
  events: ['askSent', 'permissionIssued', 'establishKeys', 'chipMoved', 'chipStayed', 'refuse', 'expire'],
  terminal: ['completed', 'failed', 'expired'],
  arrows: {
    ordered: {
      askSent: 'asked',
      permissionIssued: 'permitted',
      chipStayed: 'failed',
      refuse: 'failed',
      expire: 'expired',
    },
    asked: { permissionIssued: 'permitted', chipStayed: 'failed', refuse: 'failed', expire: 'expired' },
    permitted: { establishKeys: 'keyEstablished', chipStayed: 'failed', refuse: 'failed', expire: 'expired' },
    keyEstablished: { chipMoved: 'completed', chipStayed: 'failed' },
    completed: {},
    failed: {},
    expired: {},
  },
};

export type Transition<S> =
  | { readonly ok: true; readonly state: S }
  | { readonly ok: false; readonly error: SmError };

/** The next state, or a typed refusal (`InvalidState`) when the event does not apply. */
export function transition<S extends string, E extends string>(
  machine: Machine<S, E>,
  state: S,
  event: E,
): Transition<S> {
  // Own properties only: a state or event named like an Object.prototype member is just unknown.
  const row: Partial<Readonly<Record<E, S>>> | undefined = Object.hasOwn(machine.arrows, state)
    ? machine.arrows[state]
    : undefined;
  const next = row && Object.hasOwn(row, event) ? row[event] : undefined;
  if (next !== undefined) return { ok: true, state: next };
  return {
    ok: false,
    error: new SmError(
      'InvalidState',
      `${machine.name} transfer in state ${state} cannot take event ${event}`,
      {
        state,
        event,
      },
    ),
  };
}

/** Applies events in order; throws the first refusal. */
export function advance<S extends string, E extends string>(
  machine: Machine<S, E>,
  state: S,
  ...events: E[]
): S {
  let s = state;
  for (const e of events) {
    const t = transition(machine, s, e);
    if (!t.ok) throw t.error;
    s = t.state;
  }
  return s;
}

export const isTerminal = <S extends string, E extends string>(machine: Machine<S, E>, state: S): boolean =>
  machine.terminal.includes(state);

export const CURRENT_SM_TERMINAL: readonly CurrentSmState[] = CURRENT_SM.terminal;
export const NEW_SM_TERMINAL: readonly NewSmState[] = NEW_SM.terminal;

/** Whether a transfer of either direction is still in progress (not in a terminal state). */
export function isOpenTransfer(t: {
  readonly direction: 'outgoing' | 'incoming';
  readonly state: string;
}): boolean {
  return t.direction === 'outgoing'
    ? !CURRENT_SM.terminal.includes(t.state as CurrentSmState)
    : !NEW_SM.terminal.includes(t.state as NewSmState);
}

/** Every state of either direction, the values a transfer state filter may name. */
export const TRANSFER_STATES: ReadonlySet<string> = new Set<string>([...CURRENT_SM.states, ...NEW_SM.states]);
