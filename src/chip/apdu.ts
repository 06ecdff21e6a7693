/**
 * ISO 7816-4 framing of the chip's commands (PROTOCOL.md §5, as SGP.22 ES10 does it): SELECT of
 * the ISD-R AID, STORE DATA blocks carrying one command's DER, and GET RESPONSE for answers longer
 * than 256 bytes. Short APDUs only.
 */
import { type CommandProcessor, UnknownCommand } from './processor.ts';

/** The GSMA ISD-R AID, the chip's only application. */
export const ISD_R_AID = Uint8Array.from(Buffer.from('A0000005591010FFFFFFFF8900000100', 'hex'));

export const SW = {
  ok: 0x9000,
  wrongLength: 0x6700,
  conditionsNotSatisfied: 0x6985,
  wrongData: 0x6a80,
  fileNotFound: 0x6a82,
  notEnoughMemory: 0x6a84,
  wrongP1P2: 0x6a86,
  insNotSupported: 0x6d00,
  claNotSupported: 0x6e00,
  noPreciseDiagnosis: 0x6f00,
} as const;

export const INS = { select: 0xa4, storeData: 0xe2, getResponse: 0xc0 } as const;
export const STORE_DATA_MORE = 0x11;
export const STORE_DATA_LAST = 0x91;
/** The largest command the chip assembles from STORE DATA blocks. */
export const MAX_COMMAND_SIZE = 64 * 1024;
const PART = 256;

interface Apdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly data: Uint8Array | undefined;
  /** Le as a count (00 = 256), or undefined when absent. */
  readonly le: number | undefined;
}

/** Short APDU cases 1-4; undefined for any other length (answered 6700). */
function parseApdu(bytes: Uint8Array): Apdu | undefined {
  if (bytes.length < 4) return undefined;
  const [cla, ins, p1, p2] = [bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!];
  const head = { cla, ins, p1, p2 };
  if (bytes.length === 4) return { ...head, data: undefined, le: undefined };
  const b5 = bytes[4]!;
  if (bytes.length === 5) return { ...head, data: undefined, le: b5 === 0 ? 256 : b5 };
  // Lc 00 followed by data would be an extended-length APDU, which this chip does not take.
  if (b5 === 0) return undefined;
  if (bytes.length === 5 + b5) return { ...head, data: bytes.subarray(5), le: undefined };
  if (bytes.length === 6 + b5) {
    const le = bytes[5 + b5]!;
    return { ...head, data: bytes.subarray(5, 5 + b5), le: le === 0 ? 256 : le };
  }
  return undefined;
}

const sw = (word: number): Uint8Array => Uint8Array.of(word >> 8, word & 0xff);

function withSw(data: Uint8Array, word: number): Uint8Array {
  const out = new Uint8Array(data.length + 2);
  out.set(data);
  out.set(sw(word), data.length);
  return out;
}

export interface ChipCardOptions {
  /** Told about internal failures (e.g. the store could not save) that the card answers with 6F00. */
  readonly onError?: (error: unknown) => void;
}

/** The card: APDUs in, responses (data ‖ SW1 SW2) out, over a command processor. */
export class ChipCard {
  readonly #processor: CommandProcessor;
  readonly #onError: (error: unknown) => void;
  /** STORE DATA blocks received so far for the current command, and the next block number. */
  #blocks: Uint8Array[] = [];
  #blocksSize = 0;
  #nextBlock = 0;
  /** The part of the last answer that GET RESPONSE has not fetched yet. */
  #remaining: Uint8Array | undefined;

  constructor(processor: CommandProcessor, options: ChipCardOptions = {}) {
    this.#processor = processor;
    this.#onError = options.onError ?? (() => {});
  }

  /** A card reset (power cycle): drops a half-received command and an unfetched answer. */
  reset(): void {
    this.#dropBlocks();
    this.#remaining = undefined;
  }

  transmit(apduBytes: Uint8Array): Uint8Array {
    const apdu = parseApdu(apduBytes);
    if (!apdu) {
      this.reset();
      return sw(SW.wrongLength);
    }
    const remaining = this.#remaining;
    // Any command but GET RESPONSE abandons the rest of the previous answer.
    if (apdu.ins !== INS.getResponse) this.#remaining = undefined;
    if (apdu.cla !== 0x00 && apdu.cla !== 0x80) return sw(SW.claNotSupported);
    switch (apdu.ins) {
      case INS.select:
        return apdu.cla === 0x00 ? this.#select(apdu) : sw(SW.claNotSupported);
      case INS.storeData:
        return apdu.cla === 0x80 ? this.#storeData(apdu) : sw(SW.claNotSupported);
      case INS.getResponse:
        if (apdu.cla !== 0x00) return sw(SW.claNotSupported);
        return this.#getResponse(apdu, remaining);
      default:
        return sw(SW.insNotSupported);
    }
  }

  #select(apdu: Apdu): Uint8Array {
    if (apdu.p1 !== 0x04 || (apdu.p2 !== 0x00 && apdu.p2 !== 0x0c)) return sw(SW.wrongP1P2);
    if (!apdu.data) return sw(SW.wrongLength);
    if (Buffer.compare(apdu.data, ISD_R_AID) !== 0) return sw(SW.fileNotFound);
    this.reset();
    return sw(SW.ok);
  }

  #dropBlocks(): void {
    this.#blocks = [];
    this.#blocksSize = 0;
    this.#nextBlock = 0;
  }

  #storeData(apdu: Apdu): Uint8Array {
    if (!apdu.data) {
      this.#dropBlocks();
      return sw(SW.wrongLength);
    }
    if (apdu.p1 !== STORE_DATA_MORE && apdu.p1 !== STORE_DATA_LAST) {
      this.#dropBlocks();
      return sw(SW.wrongP1P2);
    }
    // Block 00 always starts a new command (a reader that restarts a chain is not stuck).
    if (apdu.p2 === 0) this.#dropBlocks();
    if (apdu.p2 !== this.#nextBlock) {
      this.#dropBlocks();
      return sw(SW.wrongP1P2);
    }
    if (this.#blocksSize + apdu.data.length > MAX_COMMAND_SIZE) {
      this.#dropBlocks();
      return sw(SW.notEnoughMemory);
    }
    this.#blocks.push(Uint8Array.from(apdu.data));
    this.#blocksSize += apdu.data.length;
    this.#nextBlock++;
    if (apdu.p1 === STORE_DATA_MORE) return sw(SW.ok);

    const command = Buffer.concat(this.#blocks);
    this.#dropBlocks();
    let answer: Uint8Array;
    try {
      answer = this.#processor.process(new Uint8Array(command));
    } catch (e) {
      if (e instanceof UnknownCommand) return sw(SW.wrongData);
      this.#onError(e);
      return sw(SW.noPreciseDiagnosis);
    }
    return this.#sendPart(answer, PART);
  }

  #getResponse(apdu: Apdu, remaining: Uint8Array | undefined): Uint8Array {
    if (apdu.p1 !== 0 || apdu.p2 !== 0) {
      this.#remaining = remaining;
      return sw(SW.wrongP1P2);
    }
    if (apdu.data || apdu.le === undefined) {
      this.#remaining = remaining;
      return sw(SW.wrongLength);
    }
    if (!remaining) return sw(SW.conditionsNotSatisfied);
    return this.#sendPart(remaining, apdu.le);
  }

  /** Up to `max` bytes with 61xx while more remain (xx = remaining, 00 for 256 or more), else 9000. */
  #sendPart(answer: Uint8Array, max: number): Uint8Array {
    if (answer.length <= max) {
      this.#remaining = undefined;
      return withSw(answer, SW.ok);
    }
    const rest = answer.subarray(max);
    this.#remaining = rest;
    return withSw(answer.subarray(0, max), 0x6100 | (rest.length >= 256 ? 0 : rest.length));
  }
}
