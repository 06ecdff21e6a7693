/**
 * DER blobs travel as base64 in JSON (PROTOCOL.md §9). Decoding is strict: the standard alphabet
 * with padding and nothing else (Node's own decoder skips bad characters silently), so a damaged
 * payload is refused where it enters instead of reaching a DER decoder as different bytes.
 */
import { ApiError } from './errors.ts';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of `text`; MalformedBase64 naming `field` otherwise. */
export function fromBase64(text: string, field: string): Uint8Array {
  if (!BASE64.test(text)) {
    throw new ApiError('MalformedBase64', `${field} is not base64 (standard alphabet, padded)`, { field });
  }
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  // Non-zero bits in the padding make two texts for one byte string: refuse them too.
  if (Buffer.from(bytes).toString('base64') !== text) {
    throw new ApiError('MalformedBase64', `${field} is not canonical base64`, { field });
  }
  return bytes;
}

export const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
