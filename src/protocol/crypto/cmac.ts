/** AES-CMAC (RFC 4493) over AES-ECB from node:crypto; constant-time comparison for verification. */
import { createCipheriv, timingSafeEqual } from 'node:crypto';
import { CryptoError } from '../errors.ts';

const BLOCK = 16;

function shiftLeft(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) out[i] = ((block[i]! << 1) | ((block[i + 1] ?? 0) >> 7)) & 0xff;
  if (block[0]! & 0x80) out[BLOCK - 1]! ^= 0x87;
  return out;
}

/** Full 16-byte AES-CMAC tag; key of 16, 24 or 32 bytes. */
export function aesCmac(key: Uint8Array, message: Uint8Array): Uint8Array {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new CryptoError('InvalidKey', 'AES-CMAC key must be 16, 24 or 32 bytes');
  }
  const cipher = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  cipher.setAutoPadding(false);
  const enc = (b: Uint8Array) => new Uint8Array(cipher.update(b));
  const l = enc(new Uint8Array(BLOCK));
  const k1 = shiftLeft(l);
  const k2 = shiftLeft(k1);
  const n = Math.max(1, Math.ceil(message.length / BLOCK));
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const last = new Uint8Array(BLOCK);
  last.set(message.subarray((n - 1) * BLOCK));
  if (!complete) last[message.length - (n - 1) * BLOCK] = 0x80;
  const sub = complete ? k1 : k2;
  for (let i = 0; i < BLOCK; i++) last[i]! ^= sub[i]!;
  let x: Uint8Array = new Uint8Array(BLOCK);
  const y = new Uint8Array(BLOCK);
  for (let j = 0; j < n - 1; j++) {
    for (let i = 0; i < BLOCK; i++) y[i] = x[i]! ^ message[j * BLOCK + i]!;
    x = enc(y);
  }
  for (let i = 0; i < BLOCK; i++) y[i] = x[i]! ^ last[i]!;
  return enc(y);
}

/** Constant-time check of a (possibly truncated) tag; a tag of another length is invalid. */
export function aesCmacVerify(
  key: Uint8Array,
  message: Uint8Array,
  tag: Uint8Array,
  tagLength = 16,
): boolean {
  if (tag.length !== tagLength || tagLength < 1 || tagLength > BLOCK) return false;
  const expected = aesCmac(key, message).subarray(0, tagLength);
  return timingSafeEqual(expected, tag);
}
