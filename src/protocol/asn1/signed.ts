/**
 * The `SEQUENCE { data …Data, signature [APPLICATION 55] }` shape shared by every signed
 * message. The decoded value keeps `dataRaw`, the `…Data` element exactly as received:
 * signatures are verified over those bytes, never over a re-encoding (PROTOCOL.md §2).
 */
import { expectTag, readSingle, SequenceReader, type Tlv } from '../der/reader.ts';
import type { Tag } from '../der/tag.ts';
import { constructed } from '../der/writer.ts';
import { readSignature, signatureField } from './fields.ts';

export interface Signed<T> {
  readonly data: T;
  /** The DER of the `…Data` element exactly as received (or as encoded for sending). */
  readonly dataRaw: Uint8Array;
  readonly signature: Uint8Array;
  /** The DER of the whole signed structure. */
  readonly raw: Uint8Array;
}

export interface SignedCodec<T> {
  readonly typeName: string;
  readonly tag: Tag;
  decodeData(t: Tlv): T;
}

/** Reads `data` and `signature`, returning the reader for any fields that follow. */
export function readSigned<T>(
  seq: Tlv,
  typeName: string,
  dataCodec: SignedCodec<T>,
  signatureName: string,
): { signed: Signed<T>; rest: SequenceReader } {
  const r = new SequenceReader(seq, typeName);
  const dataTlv = r.take(dataCodec.tag, 'data');
  const data = dataCodec.decodeData(dataTlv);
  const signature = readSignature(r, signatureName);
  return {
    signed: { data, dataRaw: Uint8Array.from(dataTlv.raw), signature, raw: Uint8Array.from(seq.raw) },
    rest: r,
  };
}

export function decodeTop(bytes: Uint8Array, outer: Tag, typeName: string): Tlv {
  return expectTag(readSingle(bytes, typeName), outer, typeName);
}

export function encodeSigned(
  outer: Tag,
  dataRaw: Uint8Array,
  signature: Uint8Array,
  ...rest: Uint8Array[]
): Uint8Array {
  return constructed(outer, dataRaw, signatureField(signature), ...rest);
}
