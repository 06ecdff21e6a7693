/** ANSI X9.63 KDF with SHA-256 (PROTOCOL.md §2): H(Z || counter32 || SharedInfo) blocks. */
import { createHash } from 'node:crypto';

export function x963Kdf(sharedSecret: Uint8Array, sharedInfo: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const counter = new Uint8Array(4);
  const view = new DataView(counter.buffer);
  for (let i = 1, pos = 0; pos < length; i++, pos += 32) {
    view.setUint32(0, i);
    const block = createHash('sha256').update(sharedSecret).update(counter).update(sharedInfo).digest();
    out.set(block.subarray(0, Math.min(32, length - pos)), pos);
  }
  return out;
}
