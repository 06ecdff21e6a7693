/** DER writer: builds TLVs from already-encoded contents; always minimal, always definite. */
import { type Tag, tagBytes, U } from './tag.ts';

export function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export function tlv(t: Tag, value: Uint8Array): Uint8Array {
  return concat(tagBytes(t), encodeLength(value.length), value);
}

/** A constructed element (SEQUENCE or an IMPLICIT-tagged SEQUENCE) from encoded children; undefined ones are omitted. */
export function constructed(t: Tag, ...items: readonly (Uint8Array | undefined)[]): Uint8Array {
  return tlv(t, concat(...items.filter((i): i is Uint8Array => i !== undefined)));
}

export function integerBytes(value: number | bigint): Uint8Array {
  let v = BigInt(value);
  const bytes: number[] = [];
  const done = () => (v === 0n && (bytes[0]! & 0x80) === 0) || (v === -1n && (bytes[0]! & 0x80) !== 0);
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (!done());
  return Uint8Array.from(bytes);
}

/** Unsigned big-endian bytes (e.g. a certificate serial or an ECDSA r) as a positive INTEGER's contents. */
export function unsignedIntegerBytes(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return trimmed[0]! & 0x80 ? concat(Uint8Array.of(0), trimmed) : Uint8Array.from(trimmed);
}

export const integer = (t: Tag, value: number | bigint): Uint8Array => tlv(t, integerBytes(value));
export const octets = (t: Tag, value: Uint8Array): Uint8Array => tlv(t, value);
export const utf8 = (t: Tag, value: string): Uint8Array => tlv(t, new TextEncoder().encode(value));
export const boolean = (t: Tag, value: boolean): Uint8Array => tlv(t, Uint8Array.of(value ? 0xff : 0));

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * DER GeneralizedTime: YYYYMMDDHHMMSSZ, milliseconds dropped; with `fractionalSeconds`, the
 * milliseconds (when not 0) as a fraction without trailing zeros, YYYYMMDDHHMMSS.fffZ (X.690 §11.7).
 */
export function generalizedTime(
  t: Tag,
  d: Date,
  o: { readonly fractionalSeconds?: boolean } = {},
): Uint8Array {
  const ms = d.getUTCMilliseconds();
  const fraction = o.fractionalSeconds && ms !== 0 ? `.${pad(ms, 3).replace(/0+$/, '')}` : '';
  const s = `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}${fraction}Z`;
  return tlv(t, Buffer.from(s, 'latin1'));
}

/** X.509 Time: UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5). */
export function x509Time(d: Date): Uint8Array {
  const y = d.getUTCFullYear();
  if (y >= 1950 && y < 2050) {
    const s = `${pad(y % 100, 2)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}Z`;
    return tlv(U.utcTime, Buffer.from(s, 'latin1'));
  }
  return generalizedTime(U.generalizedTime, d);
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const [a = 0n, b = 0n, ...rest] = arcs;
  const out: number[] = [];
  for (const arc of [a * 40n + b, ...rest]) {
    const groups: number[] = [Number(arc & 0x7fn)];
    let v = arc >> 7n;
    while (v > 0n) {
      groups.unshift(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(...groups);
  }
  return tlv(U.oid, Uint8Array.from(out));
}

export const sequence = (...items: readonly (Uint8Array | undefined)[]): Uint8Array =>
  constructed(U.sequence, ...items);
export const set = (...items: readonly (Uint8Array | undefined)[]): Uint8Array =>
  constructed(U.set, ...items);
export const bitString = (value: Uint8Array): Uint8Array => tlv(U.bitString, concat(Uint8Array.of(0), value));
