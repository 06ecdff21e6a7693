/**
 * EID (PROTOCOL.md §2): 32 decimal digits, 16 bytes BCD with the first digit in the high
 * nibble; digits 31-32 make the whole number ≡ 1 (mod 97) (ISO 7064 mod 97-10).
 */
import { InvalidInput, MalformedMessage } from './errors.ts';

const EID_DIGITS = /^\d{32}$/;

/** Remainder of a decimal string mod 97, digit by digit (the number is too large for a double). */
function mod97(digits: string): number {
  let r = 0;
  for (const c of digits) r = (r * 10 + (c.charCodeAt(0) - 48)) % 97;
  return r;
}

/**
 * True for 32 digits whose whole number mod 97 equals 1, the rule PROTOCOL.md §2 states (and ISO
 * 7064's check). The computed check value is always 02..98 (eidCheckDigits); 00, 01 and 99 can
 * also give a remainder of 1 and are accepted too, as the rule says.
 */
export function eidChecksumValid(eid: string): boolean {
  return EID_DIGITS.test(eid) && mod97(eid) === 1;
}

/** Computes the two check digits for the first 30 digits of an EID. */
export function eidCheckDigits(first30: string): string {
  if (!/^\d{30}$/.test(first30)) throw new InvalidInput('InvalidEid', 'an EID body is 30 decimal digits');
  const check = 98 - mod97(`${first30}00`);
  return String(check).padStart(2, '0');
}

/** Completes 30 digits (or a shorter prefix padded with zeros, then a serial) into a valid EID. */
export function makeEid(first30: string): string {
  return first30 + eidCheckDigits(first30);
}

/** Validates an EID typed by a person or read from config: 32 digits with a valid check value. */
export function parseEid(text: string): string {
  if (!EID_DIGITS.test(text)) {
    throw new InvalidInput('InvalidEid', `EID must be 32 decimal digits, got "${text.slice(0, 40)}"`);
  }
  if (!eidChecksumValid(text)) throw new InvalidInput('InvalidEid', `EID ${text} fails the mod-97 check`);
  return text;
}

export function eidToBcd(eid: string): Uint8Array {
  if (!EID_DIGITS.test(eid)) throw new InvalidInput('InvalidEid', 'EID must be 32 decimal digits');
  return Uint8Array.from(Buffer.from(eid, 'hex'));
}

/** Decodes 16 BCD bytes; any nibble above 9 is malformed. The check value is not judged here. */
export function eidFromBcd(bytes: Uint8Array, field: string): string {
  if (bytes.length !== 16) throw new MalformedMessage(field, `EID must be 16 bytes, got ${bytes.length}`);
  const hex = Buffer.from(bytes).toString('hex');
  if (!EID_DIGITS.test(hex)) throw new MalformedMessage(field, 'EID is not BCD (a nibble above 9)');
  return hex;
}
