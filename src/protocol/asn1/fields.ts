/** Field types shared by the messages of PROTOCOL.md §5, each decoded strictly once. */

import { expectTag, readOctets, readSingle, readUtf8, type SequenceReader, type Tlv } from '../der/reader.ts';
import { ctx, SIGNATURE_TAG, type Tag, U } from '../der/tag.ts';
import { octets, tlv, utf8 } from '../der/writer.ts';
import { eidFromBcd, eidToBcd } from '../eid.ts';
import { MalformedMessage } from '../errors.ts';

export const PERMISSION_ID_SIZE = 16;
export const CHALLENGE_SIZE = 16;
export const SIGNATURE_SIZE = 64;
export const OT_PUBLIC_KEY_SIZE = 65;
export const RECEIPT_SIZE = 16;

/** Eid ::= OCTET STRING (SIZE(16)), BCD; decoded to its 32 digits. */
export const eidField = {
  decode: (t: Tlv, field: string): string => eidFromBcd(readOctets(t, field, 16), field),
  encode: (tag: Tag, eid: string): Uint8Array => octets(tag, eidToBcd(eid)),
};

/**
 * Characters that are not printable: controls (C0, DEL, C1), format characters (zero-width
 * space, BOM, bidirectional marks…), surrogates, and the line and paragraph separators.
 */
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/** PROTOCOL.md §2 "printable", one rule for messages, certificates and configuration. */
export function isPrintable(s: string): boolean {
  return !NOT_PRINTABLE.test(s);
}

/** SmId ::= UTF8String (SIZE(1..128)), printable (PROTOCOL.md §2). */
export const smIdField = {
  decode: (t: Tlv, field: string): string => printable(readUtf8(t, field, 1, 128), field),
  encode: (tag: Tag, smId: string): Uint8Array => utf8(tag, smId),
};

export function printable(s: string, field: string): string {
  if (!isPrintable(s)) throw new MalformedMessage(field, 'contains characters that are not printable');
  return s;
}

export function fixedOctets(t: Tlv, field: string, size: number): Uint8Array {
  return readOctets(t, field, size);
}

/** Signature ::= OCTET STRING (SIZE(64)) under [APPLICATION 55]. */
export function readSignature(r: SequenceReader, name: string): Uint8Array {
  return readOctets(r.take(SIGNATURE_TAG, name), r.field(name), SIGNATURE_SIZE);
}
export const signatureField = (sig: Uint8Array): Uint8Array => tlv(SIGNATURE_TAG, sig);

/**
 * `[n] EXPLICIT Certificate`: the X.509 SEQUENCE kept as raw bytes, checked here only for
 * being one well-formed SEQUENCE; the PKI layer parses and validates it.
 */
export function readCertificate(r: SequenceReader, n: number, name: string): Uint8Array {
  const wrapper = r.take(ctx(n, true), name);
  const inner = readSingle(wrapper.value, r.field(name));
  expectTag(inner, U.sequence, r.field(name));
  return Uint8Array.from(inner.raw);
}
export const certificateField = (n: number, der: Uint8Array): Uint8Array => tlv(ctx(n, true), der);
