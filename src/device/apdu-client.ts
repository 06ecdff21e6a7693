/**
 * The card-reader side of PROTOCOL.md §5's APDU transport: sends one command's DER as STORE DATA
 * blocks and collects the answer across 61xx / GET RESPONSE. It sees only bytes: nothing here
 * knows the chip's implementation.
 */
import { HandoverError, InvalidInput } from '../protocol/errors.ts';

export type Transmit = (apdu: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** A status word other than the one expected. `sw` is the word, e.g. 0x6a80. */
export class ApduError extends HandoverError {
  readonly sw: number;
  constructor(sw: number, message: string) {
    const hex = sw.toString(16).toUpperCase().padStart(4, '0');
    super('ApduError', `${message}: status word ${hex}`, { sw: hex });
    this.sw = sw;
  }
}

export const ISD_R_AID_HEX = 'A0000005591010FFFFFFFF8900000100';
const BLOCK = 255;
const MAX_BLOCKS = 256;
/** Bound on an answer assembled from GET RESPONSE parts, so a misbehaving card cannot loop forever. */
const MAX_ANSWER = 1 << 20;

function split(response: Uint8Array): { data: Uint8Array; sw: number } {
  if (response.length < 2) throw new ApduError(0, 'the card answered fewer than two bytes');
  const n = response.length - 2;
  return { data: response.subarray(0, n), sw: (response[n]! << 8) | response[n + 1]! };
}

/** SELECT the ISD-R (optional: the chip has only this application). */
export async function selectIsdR(transmit: Transmit): Promise<void> {
  const aid = Buffer.from(ISD_R_AID_HEX, 'hex');
  const { sw } = split(await transmit(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, aid.length, ...aid)));
  if (sw !== 0x9000) throw new ApduError(sw, 'SELECT ISD-R failed');
}

/** The STORE DATA APDUs that carry `der`: P1 11 then 91 on the last, P2 the block number, no Le. */
export function storeDataApdus(der: Uint8Array): Uint8Array[] {
  if (der.length === 0) throw new InvalidInput('MessageEmpty', 'no command to send');
  const count = Math.ceil(der.length / BLOCK);
  if (count > MAX_BLOCKS) {
    throw new InvalidInput(
      'MessageTooLong',
      `a command of ${der.length} bytes needs more than ${MAX_BLOCKS} blocks`,
    );
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const block = der.subarray(i * BLOCK, (i + 1) * BLOCK);
    const last = i === count - 1;
    // `80 E2 P1 P2 Lc data`, as PROTOCOL.md §5 writes it: no Le, also on the last block (the chip
    // answers with up to 256 bytes and 61xx whatever Le says).
    const apdu = new Uint8Array(5 + block.length);
    apdu.set([0x80, 0xe2, last ? 0x91 : 0x11, i, block.length]);
    apdu.set(block, 5);
    out.push(apdu);
  }
  return out;
}

/** Sends one command and returns the chip's DER answer. Any status but 9000 / 61xx is an ApduError. */
export async function sendCommand(transmit: Transmit, der: Uint8Array): Promise<Uint8Array> {
  const apdus = storeDataApdus(der);
  let response: Uint8Array | undefined;
  for (const [i, apdu] of apdus.entries()) {
    response = await transmit(apdu);
    if (i < apdus.length - 1) {
      const { data, sw } = split(response);
      if (sw !== 0x9000 || data.length > 0) throw new ApduError(sw, `STORE DATA block ${i} refused`);
    }
  }
  let { data, sw } = split(response!);
  const parts: Uint8Array[] = [Uint8Array.from(data)];
  let size = data.length;
  while (sw !== 0x9000) {
    if ((sw & 0xff00) !== 0x6100) {
      throw new ApduError(sw, parts.length === 1 ? 'the chip refused the command' : 'GET RESPONSE failed');
    }
    if (size > MAX_ANSWER) throw new ApduError(sw, `the answer exceeds ${MAX_ANSWER} bytes`);
    // 61xx: xx bytes remain (00: 256 or more), fetched with Le = xx.
    ({ data, sw } = split(await transmit(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, sw & 0xff))));
    parts.push(Uint8Array.from(data));
    size += data.length;
  }
  return new Uint8Array(Buffer.concat(parts));
}
