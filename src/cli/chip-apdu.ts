/**
 * `handover chip apdu --state FILE HEX…`: raw command APDUs to the chip whose state is in FILE,
 * as a card reader sends them (PROTOCOL.md §5), one response line each: data ‖ SW1 SW2 in hex.
 *
 * The chip is the real one (ChipCard over ChipProcessor over FileStateStore), so every state
 * change persists exactly as through any other transport. The APDU-level chaining state (STORE
 * DATA blocks received so far, the part of an answer GET RESPONSE has not fetched) lives in the
 * card, i.e. in this process: the APDUs of one invocation share one card, separate invocations
 * do not (as if the card were reset between them).
 */
import { ChipCard, INS, STORE_DATA_MORE, SW } from '../chip/apdu.ts';
import { FileStateStore } from '../chip/file-store.ts';
import { ChipProcessor, type CommandProcessor } from '../chip/processor.ts';
import { type ChipStateSummary, summarizeChipState } from '../chip/state.ts';
import type { ChipStateStore } from '../chip/store.ts';
import { ISD_R_AID_HEX, sendCommand } from '../device/apdu-client.ts';
import { HandoverError, InvalidInput } from '../protocol/errors.ts';

/** Runs each command on the state as it is in the store now, so other tools' changes are seen. */
class StoreProcessor implements CommandProcessor {
  readonly #store: ChipStateStore;
  constructor(store: ChipStateStore) {
    this.#store = store;
  }
  process(command: Uint8Array): Uint8Array {
    return new ChipProcessor(this.#store).process(command);
  }
}

/** The chip whose state is in a file, reached through one card (one reader session). */
export class FileChip {
  readonly store: FileStateStore;
  readonly card: ChipCard;

  /**
   * Loads the state once, so a missing or broken file fails here (ChipStateNotFound,
   * ChipStateInvalid) rather than as a 6F00 later. `onError` hears internal failures the card
   * answers with 6F00 (e.g. a state file that could not be saved).
   */
  constructor(path: string, onError: (error: unknown) => void) {
    this.store = new FileStateStore(path);
    this.store.load();
    this.card = new ChipCard(new StoreProcessor(this.store), { onError });
  }

  transmit(apdu: Uint8Array): Uint8Array {
    return this.card.transmit(apdu);
  }

  /** One whole command's DER, framed into STORE DATA blocks and GET RESPONSE; the DER answer. */
  send(der: Uint8Array): Promise<Uint8Array> {
    return sendCommand((apdu) => this.card.transmit(apdu), der);
  }

  summary(): ChipStateSummary {
    return summarizeChipState(this.store.load());
  }
}

export const SELECT_ISD_R = Uint8Array.from(Buffer.from(`00A4040010${ISD_R_AID_HEX}`, 'hex'));

export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** An APDU typed as hex (white space allowed). Throws a UsageError that says what is wrong. */
export function parseApduHex(text: string, label: string): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  const shown = compact.length > 24 ? `${compact.slice(0, 24)}…` : compact;
  if (compact.length === 0) throw new InvalidInput('UsageError', `${label} is empty; give the APDU as hex`);
  const bad = compact.search(/[^0-9A-Fa-f]/);
  if (bad >= 0) {
    throw new InvalidInput(
      'UsageError',
      `${label} "${shown}" is not hex: "${compact[bad]}" at position ${bad + 1}; give the APDU as hex digits, ` +
        'e.g. 00A4040010A0000005591010FFFFFFFF8900000100',
    );
  }
  if (compact.length % 2 !== 0) {
    throw new InvalidInput(
      'UsageError',
      `${label} "${shown}" has an odd number of hex digits (${compact.length}); each byte is two digits`,
    );
  }
  return new Uint8Array(Buffer.from(compact, 'hex'));
}

/** What a reader that stops after `apdu` leaves behind in the card, if anything (else undefined). */
export function unfinishedExchange(apdu: Uint8Array, response: Uint8Array): string | undefined {
  const sw =
    response.length >= 2 ? (response[response.length - 2]! << 8) | response[response.length - 1]! : 0;
  if ((sw & 0xff00) === 0x6100) {
    const more = sw & 0xff;
    return `the answer is not fetched completely (${more === 0 ? '256 or more' : more} bytes remain)`;
  }
  if (apdu[1] === INS.storeData && apdu[2] === STORE_DATA_MORE && sw === SW.ok) {
    return 'a STORE DATA chain is incomplete (the block with P1 91 is missing)';
  }
  return undefined;
}

export interface ApduRun {
  readonly lines: readonly string[];
  /** Internal failures the card answered with 6F00. */
  readonly errors: readonly unknown[];
  /** Set when the last APDU leaves a chain or an answer half done (lost when the process ends). */
  readonly unfinished?: string;
}

/** Sends every APDU through one card. All hex is checked before the first APDU is sent. */
export function runApdus(statePath: string, hexArgs: readonly string[]): ApduRun {
  const apdus = hexArgs.map((h, i) => parseApduHex(h, hexArgs.length === 1 ? 'the APDU' : `APDU ${i + 1}`));
  const errors: unknown[] = [];
  const chip = new FileChip(statePath, (e) => errors.push(e));
  const lines: string[] = [];
  let unfinished: string | undefined;
  for (const apdu of apdus) {
    const response = chip.transmit(apdu);
    lines.push(toHex(response));
    unfinished = unfinishedExchange(apdu, response);
  }
  return { lines, errors, ...(unfinished !== undefined && { unfinished }) };
}

export function errorJson(e: unknown): { error: { code: string; message: string } } {
  if (e instanceof HandoverError) return { error: { code: e.code, message: e.message } };
  return { error: { code: 'InternalError', message: e instanceof Error ? e.message : String(e) } };
}

/** The command's action: prints the lines; exit 1 when the card hit an internal failure (6F00). */
export function chipApduCommand(statePath: string, hexArgs: readonly string[]): number {
  const run = runApdus(statePath, hexArgs);
  process.stdout.write(run.lines.map((l) => `${l}\n`).join(''));
  for (const e of run.errors) process.stderr.write(`${JSON.stringify(errorJson(e))}\n`);
  if (run.unfinished) {
    process.stderr.write(
      `note: ${run.unfinished}; chaining is not kept between invocations, so send the rest of the ` +
        'exchange in the same "chip apdu" call (or use "chip shell")\n',
    );
  }
  return run.errors.length > 0 ? 1 : 0;
}
