/** ICCID (PROTOCOL.md §2, §7): 10 bytes, nibble-swapped BCD padded with F, as SGP.22 carries it. */
import { InvalidInput, MalformedMessage } from './errors.ts';

/** 18 to 20 digits in, 10 bytes out. */
export function iccidToBytes(iccid: string): Uint8Array {
  if (!/^\d{18,20}$/.test(iccid))
    throw new InvalidInput('InvalidIccid', 'ICCID must be 18 to 20 decimal digits');
  const padded = iccid.padEnd(20, 'F');
  const out = new Uint8Array(10);
  for (let i = 0; i < 10; i++) out[i] = Number.parseInt(padded[2 * i + 1]! + padded[2 * i]!, 16);
  return out;
}

export function iccidFromBytes(bytes: Uint8Array, field: string): string {
  if (bytes.length !== 10) throw new MalformedMessage(field, 'ICCID must be 10 bytes');
  let s = '';
  for (const b of bytes) s += (b & 0x0f).toString(16) + (b >> 4).toString(16);
  const m = /^(\d{18,20})(f*)$/.exec(s);
  if (!m || m[1]!.length + m[2]!.length !== 20)
    throw new MalformedMessage(field, 'ICCID is not swapped BCD padded with F');
  return m[1]!;
}
