/**
 * Strict DER reader: definite minimal lengths, minimal tag numbers, no trailing bytes,
 * primitive encodings for primitive types. Every failure is a MalformedMessage naming the field.
 */
import { MalformedMessage } from '../errors.ts';
import { sameTag, type Tag, type TagClass, tagName } from './tag.ts';

export interface Tlv extends Tag {
  /** The whole element: identifier, length and contents, exactly as received. */
  readonly raw: Uint8Array;
  /** The contents octets. */
  readonly value: Uint8Array;
}

const MAX_LENGTH = 1 << 24;

/** Reads one TLV starting at `offset`; returns it and the offset after it. */
export function readTlv(buf: Uint8Array, offset: number, field: string): { tlv: Tlv; next: number } {
  let pos = offset;
  if (pos >= buf.length) throw new MalformedMessage(field, 'missing element (no bytes left)');
  const first = buf[pos++]!;
  const cls = (first >> 6) as TagClass;
  const constructed = (first & 0x20) !== 0;
  let num = first & 0x1f;
  if (num === 0x1f) {
    num = 0;
    let b: number;
    let count = 0;
    do {
      if (pos >= buf.length) throw new MalformedMessage(field, 'truncated tag');
      b = buf[pos++]!;
      if (count === 0 && b === 0x80) throw new MalformedMessage(field, 'non-minimal tag number');
      if (++count > 3) throw new MalformedMessage(field, 'tag number too large');
      num = (num << 7) | (b & 0x7f);
    } while (b & 0x80);
    if (num < 31) throw new MalformedMessage(field, 'high-tag form used for a tag number below 31');
  }
  if (pos >= buf.length) throw new MalformedMessage(field, 'truncated length');
  const lb = buf[pos++]!;
  let length: number;
  if (lb < 0x80) {
    length = lb;
  } else if (lb === 0x80) {
    throw new MalformedMessage(field, 'indefinite length is not DER');
  } else {
    const n = lb & 0x7f;
    if (n > 3) throw new MalformedMessage(field, 'length too large');
    if (pos + n > buf.length) throw new MalformedMessage(field, 'truncated length');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
    if (buf[pos - n] === 0) throw new MalformedMessage(field, 'non-minimal length (leading zero)');
    if (length < 0x80) throw new MalformedMessage(field, 'non-minimal length (long form below 128)');
  }
  if (length > MAX_LENGTH) throw new MalformedMessage(field, 'length too large');
  if (pos + length > buf.length) throw new MalformedMessage(field, 'content runs past the end of the input');
  const tlv: Tlv = {
    cls,
    constructed,
    num,
    raw: buf.subarray(offset, pos + length),
    value: buf.subarray(pos, pos + length),
  };
  return { tlv, next: pos + length };
}

/** Decodes exactly one element filling all of `buf`. */
export function readSingle(buf: Uint8Array, field: string): Tlv {
  const { tlv, next } = readTlv(buf, 0, field);
  if (next !== buf.length) throw new MalformedMessage(field, `${buf.length - next} trailing byte(s)`);
  return tlv;
}

/** Splits the contents of a constructed element into its children. */
export function children(parent: Tlv, field: string): Tlv[] {
  if (!parent.constructed) throw new MalformedMessage(field, 'expected a constructed encoding');
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < parent.value.length) {
    const { tlv, next } = readTlv(parent.value, pos, field);
    out.push(tlv);
    pos = next;
  }
  return out;
}

export function expectTag(tlv: Tlv, want: Tag, field: string): Tlv {
  if (!sameTag(tlv, want)) {
    throw new MalformedMessage(field, `wrong tag ${tagName(tlv)}, expected ${tagName(want)}`);
  }
  return tlv;
}

/**
 * Walks the children of a SEQUENCE in order: mandatory fields with `take`, OPTIONAL ones
 * with `maybe`, then `end` rejects anything left over (unknown or misplaced fields).
 */
export class SequenceReader {
  private readonly items: Tlv[];
  private index = 0;
  constructor(
    seq: Tlv,
    readonly typeName: string,
  ) {
    this.items = children(seq, typeName);
  }
  take(t: Tag, name: string): Tlv {
    const field = `${this.typeName}.${name}`;
    const item = this.items[this.index];
    if (!item) throw new MalformedMessage(field, 'missing mandatory field');
    expectTag(item, t, field);
    this.index++;
    return item;
  }
  maybe(t: Tag, _name: string): Tlv | undefined {
    const item = this.items[this.index];
    if (item && sameTag(item, t)) {
      this.index++;
      return item;
    }
    return undefined;
  }
  field(name: string): string {
    return `${this.typeName}.${name}`;
  }
  end(): void {
    const extra = this.items[this.index];
    if (extra) throw new MalformedMessage(this.typeName, `unexpected field with tag ${tagName(extra)}`);
  }
}

// ---- primitive values ----

export function readInteger(tlv: Tlv, field: string, min: number, max: number): number {
  const v = tlv.value;
  if (tlv.constructed) throw new MalformedMessage(field, 'INTEGER must be primitive');
  if (v.length === 0) throw new MalformedMessage(field, 'empty INTEGER');
  if (v.length > 1 && ((v[0] === 0 && (v[1]! & 0x80) === 0) || (v[0] === 0xff && (v[1]! & 0x80) !== 0))) {
    throw new MalformedMessage(field, 'non-minimal INTEGER');
  }
  if (v.length > 6) throw new MalformedMessage(field, `INTEGER out of range ${min}..${max}`);
  let n = 0;
  for (const b of v) n = n * 256 + b;
  if (v[0]! & 0x80) n -= 2 ** (8 * v.length);
  if (n < min || n > max) throw new MalformedMessage(field, `INTEGER ${n} out of range ${min}..${max}`);
  return n;
}

export function readOctets(tlv: Tlv, field: string, minSize: number, maxSize = minSize): Uint8Array {
  if (tlv.constructed) throw new MalformedMessage(field, 'OCTET STRING must be primitive');
  const n = tlv.value.length;
  if (n < minSize || n > maxSize) {
    const want = minSize === maxSize ? `${minSize}` : `${minSize}..${maxSize}`;
    throw new MalformedMessage(field, `size ${n}, expected ${want} bytes`);
  }
  return Uint8Array.from(tlv.value);
}

// ignoreBOM: a leading U+FEFF is kept, not silently dropped, so the string is exactly what the bytes say.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function readUtf8(tlv: Tlv, field: string, minSize: number, maxSize: number): string {
  const bytes = readOctets(tlv, field, minSize, maxSize);
  let s: string;
  try {
    s = utf8.decode(bytes);
  } catch {
    throw new MalformedMessage(field, 'not valid UTF-8');
  }
  return s;
}

export function readBoolean(tlv: Tlv, field: string): boolean {
  if (tlv.constructed || tlv.value.length !== 1)
    throw new MalformedMessage(field, 'BOOLEAN must be one byte');
  const b = tlv.value[0];
  if (b === 0x00) return false;
  if (b === 0xff) return true;
  throw new MalformedMessage(field, 'DER BOOLEAN must be 00 or FF');
}

const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d*[1-9]))?Z$/;

/**
 * DER GeneralizedTime (X.690 §11.7): YYYYMMDDHHMMSS, then, only with `fractionalSeconds`, a
 * fraction (a '.', digits, no trailing zero), then Z. Certificates take whole seconds only
 * (RFC 5280 §4.1.2.5.2); a protocol message may carry a fraction (PROTOCOL.md §5 says only
 * GeneralizedTime), kept to the millisecond (further digits are dropped, never rounded up).
 */
export function readGeneralizedTime(
  tlv: Tlv,
  field: string,
  o: { readonly fractionalSeconds?: boolean } = {},
): Date {
  const text = readAscii(tlv, field);
  const m = GENERALIZED_TIME.exec(text);
  const fraction = m?.[7];
  if (!m || (fraction !== undefined && !o.fractionalSeconds)) {
    const form = o.fractionalSeconds ? 'YYYYMMDDHHMMSS[.fff]Z' : 'YYYYMMDDHHMMSSZ';
    throw new MalformedMessage(field, `"${text}" is not a DER GeneralizedTime (${form})`);
  }
  const date = parseTimeParts(m, field, text);
  if (fraction !== undefined) date.setUTCMilliseconds(Number(fraction.slice(0, 3).padEnd(3, '0')));
  return date;
}

const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

/** DER UTCTime as X.509 uses it: YYMMDDHHMMSSZ, years 50..99 are 19xx. */
export function readUtcTime(tlv: Tlv, field: string): Date {
  const text = readAscii(tlv, field);
  const m = UTC_TIME.exec(text);
  if (!m) throw new MalformedMessage(field, `"${text}" is not a DER UTCTime`);
  const yy = Number(m[1]);
  const parts = [...m] as string[];
  parts[1] = String(yy >= 50 ? 1900 + yy : 2000 + yy);
  return parseTimeParts(parts, field, text);
}

function readAscii(tlv: Tlv, field: string): string {
  if (tlv.constructed) throw new MalformedMessage(field, 'time must be primitive');
  for (const b of tlv.value) if (b < 0x20 || b > 0x7e) throw new MalformedMessage(field, 'non-ASCII time');
  return Buffer.from(tlv.value).toString('latin1');
}

function parseTimeParts(m: ArrayLike<string | undefined>, field: string, text: string): Date {
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i])) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // setUTCFullYear, not Date.UTC, which maps the years 0..99 to 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  if (
    date.getUTCFullYear() !== y ||
    date.getUTCMonth() !== mo - 1 ||
    date.getUTCDate() !== d ||
    date.getUTCHours() !== h ||
    date.getUTCMinutes() !== mi ||
    date.getUTCSeconds() !== s
  ) {
    throw new MalformedMessage(field, `"${text}" is not a valid date and time`);
  }
  return date;
}

/** OBJECT IDENTIFIER with arcs of any size (X.667 UUID arcs under 2.25 are 128-bit). */
export function readOid(tlv: Tlv, field: string): string {
  if (tlv.constructed || tlv.value.length === 0) throw new MalformedMessage(field, 'bad OBJECT IDENTIFIER');
  const arcs: bigint[] = [];
  let n = 0n;
  let started = false;
  for (const b of tlv.value) {
    if (!started && b === 0x80) throw new MalformedMessage(field, 'non-minimal OID arc');
    started = true;
    n = (n << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(n);
      n = 0n;
      started = false;
    }
  }
  if (started) throw new MalformedMessage(field, 'truncated OID');
  const head = arcs.shift()!;
  const a = head < 40n ? 0n : head < 80n ? 1n : 2n;
  return [a, head - a * 40n, ...arcs].join('.');
}
