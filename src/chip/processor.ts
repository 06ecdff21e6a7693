/**
 * The chip's command processor (PROTOCOL.md §5 command set): one command's DER in, the DER
 * answer out. `processCommand` is pure apart from randomness; `ChipProcessor` adds the store and
 * persists the new state before the answer is released.
 */

import { TAG_HANDOVER_COMMAND } from '../protocol/asn1/handover.ts';
import {
  decodeGetChipInfo,
  encodeChipInfo,
  TAG_CHIP_INFO,
  TAG_GET_CHIP_INFO,
} from '../protocol/asn1/info.ts';
import { TAG_TRANSFER_PERMISSION_MESSAGE } from '../protocol/asn1/permission.ts';
import { TAG_CONFIRM_PROFILE_SWITCH, TAG_PROFILE_ROLLBACK } from '../protocol/asn1/profile.ts';
import { TAG_CANCEL_PERMISSION } from '../protocol/asn1/results.ts';
import { readSingle, type Tlv } from '../protocol/der/reader.ts';
import { sameTag, type Tag, tagName } from '../protocol/der/tag.ts';
import { HandoverError, MalformedMessage } from '../protocol/errors.ts';
import { bytesEqual } from '../protocol/pki/certificate.ts';
import { cancelPermission } from './cancel-permission.ts';
import {
  type ChipEnvironment,
  type CommandContext,
  type CommandName,
  defaultChipEnvironment,
  type Handled,
  refuse,
} from './command-context.ts';
import { executeHandover } from './execute-handover.ts';
import { loadTransferPermission } from './load-transfer-permission.ts';
import { confirmProfileSwitch, profileRollback } from './profile-switch.ts';
import { type ChipState, fromB64, fromHex } from './state.ts';
import type { ChipStateStore } from './store.ts';

export type { AnswerType, ChipEnvironment, CommandName } from './command-context.ts';

/** Bytes that are not one DER element with a command tag: answered with status word 6A80. */
export class UnknownCommand extends HandoverError {
  constructor(message: string) {
    super('UnknownCommand', message);
  }
}

export interface CommandResult extends Handled {
  readonly command: CommandName;
}

function getChipInfo(ctx: CommandContext): Handled {
  const { state } = ctx;
  try {
    decodeGetChipInfo(ctx.command);
  } catch (e) {
    if (e instanceof MalformedMessage) return refuse(ctx, 'malformed');
    throw e;
  }
  // Unsigned and never evidence of anything (PROTOCOL.md §5).
  const response = encodeChipInfo({
    eid: state.eid,
    assignedSmId: state.assignment.smId,
    counter: state.assignment.counter,
    ...(state.pending && { pendingPermissionId: fromHex(state.pending.permissionId) }),
    chipCertificate: fromB64(state.chipCertificate),
    eumCertificate: fromB64(state.eumCertificate),
  });
  return { response, state, answer: 'ChipInfo', outcome: 'ok', repeated: false };
}

interface CommandEntry {
  readonly tag: Tag;
  readonly name: CommandName;
  readonly handle: (ctx: CommandContext) => Handled;
  /** Whether a byte-equal repeat of the command that produced `lastResult` gets it again (§6.6). */
  readonly repeatable: boolean;
}

const COMMANDS: readonly CommandEntry[] = [
  {
    tag: TAG_TRANSFER_PERMISSION_MESSAGE,
    name: 'LoadTransferPermission',
    handle: loadTransferPermission,
    repeatable: false,
  },
  { tag: TAG_HANDOVER_COMMAND, name: 'ExecuteHandover', handle: executeHandover, repeatable: true },
  { tag: TAG_CANCEL_PERMISSION, name: 'CancelPermission', handle: cancelPermission, repeatable: true },
  { tag: TAG_GET_CHIP_INFO, name: 'GetChipInfo', handle: getChipInfo, repeatable: false },
  {
    tag: TAG_CONFIRM_PROFILE_SWITCH,
    name: 'ConfirmProfileSwitch',
    handle: confirmProfileSwitch,
    repeatable: true,
  },
  // Unsigned and accepted once (§7): a repeat is a second rollback attempt, answered noPending.
  { tag: TAG_PROFILE_ROLLBACK, name: 'ProfileRollback', handle: profileRollback, repeatable: false },
];

/** The command a DER element is, by its outer tag; throws UnknownCommand for anything else. */
export function commandOf(command: Uint8Array): CommandName {
  return entryOf(command).name;
}

function entryOf(command: Uint8Array): CommandEntry {
  let top: Tlv;
  try {
    top = readSingle(command, 'command');
  } catch (e) {
    if (e instanceof MalformedMessage) throw new UnknownCommand(`not one DER element: ${e.message}`);
    throw e;
  }
  const entry = COMMANDS.find((c) => sameTag(top, c.tag));
  if (!entry) {
    const hint = sameTag(top, TAG_CHIP_INFO) ? ' (ChipInfo is an answer, not a command)' : '';
    throw new UnknownCommand(`tag ${tagName(top)} is not a chip command${hint}`);
  }
  return entry;
}

/**
 * Runs one command against `state`. Refusals return the input state object itself; a state
 * change returns a new object. Throws UnknownCommand only for bytes that are not a command.
 */
export function processCommand(
  state: ChipState,
  command: Uint8Array,
  env: ChipEnvironment = defaultChipEnvironment,
): CommandResult {
  const entry = entryOf(command);
  if (entry.repeatable && state.lastResult && bytesEqual(fromB64(state.lastResult.command), command)) {
    return {
      command: entry.name,
      response: fromB64(state.lastResult.response),
      state,
      answer: entry.name === 'ExecuteHandover' ? 'HandoverResult' : 'ChipResult',
      outcome: 'ok',
      repeated: true,
    };
  }
  return { command: entry.name, ...entry.handle({ state, command, env }) };
}

/** Anything that turns a command into its answer: what the APDU layer talks to. */
export interface CommandProcessor {
  process(command: Uint8Array): Uint8Array;
}

/** A chip: the processor over a store. The new state is saved before the answer is returned. */
export class ChipProcessor implements CommandProcessor {
  readonly #store: ChipStateStore;
  readonly #env: ChipEnvironment;
  #state: ChipState | undefined;

  constructor(store: ChipStateStore, env: ChipEnvironment = defaultChipEnvironment) {
    this.#store = store;
    this.#env = env;
  }

  /** The current state (loaded from the store on first use, and again after a failed save). */
  get state(): ChipState {
    this.#state ??= this.#store.load();
    return this.#state;
  }

  process(command: Uint8Array): Uint8Array {
    return this.execute(command).response;
  }

  /** Like `process`, with what happened (command, answer type, outcome) for logs and tests. */
  execute(command: Uint8Array): CommandResult {
    const before = this.state;
    const result = processCommand(before, command, this.#env);
    if (result.state !== before) {
      try {
        this.#store.save(result.state);
      } catch (e) {
        // The store may hold either state now; read it back before the next command.
        this.#state = undefined;
        throw e;
      }
      this.#state = result.state;
    }
    return result;
  }
}
