/**
 * A chip reachable over TCP (`handover chip serve`), like a networked card reader: each frame is a
 * 2-byte big-endian length followed by one command APDU; the answer is framed the same way. One
 * connection = one card session (STORE DATA chaining and GET RESPONSE state live per connection).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { HandoverError } from '../protocol/errors.ts';
import { ChipCard } from './apdu.ts';
import type { CommandProcessor } from './processor.ts';

export const MAX_APDU = 261;

/**
 * The client side: a connected socket to host:port, or ChipUnreachable naming `what` (the
 * chip, the chip farm). Once connected, errors are the caller's to handle.
 */
export function connectFramed(host: string, port: number, what: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) =>
      reject(new HandoverError('ChipUnreachable', `cannot reach ${what} at ${host}:${port}: ${e.message}`)),
    );
  });
}

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(2 + payload.length);
  out.writeUInt16BE(payload.length, 0);
  out.set(payload, 2);
  return out;
}

/** Splits a byte stream into length-prefixed frames. */
export class FrameReader {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Uint8Array[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const frames: Uint8Array[] = [];
    while (this.#buf.length >= 2) {
      const n = this.#buf.readUInt16BE(0);
      if (this.#buf.length < 2 + n) break;
      frames.push(new Uint8Array(this.#buf.subarray(2, 2 + n)));
      this.#buf = this.#buf.subarray(2 + n);
    }
    return frames;
  }
}

export function serveChip(processor: CommandProcessor, onError?: (e: unknown) => void): Server {
  return createServer((socket: Socket) => {
    const card = new ChipCard(processor, onError ? { onError } : {});
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      for (const apdu of reader.push(chunk)) {
        if (apdu.length > MAX_APDU) {
          socket.write(frame(Uint8Array.of(0x67, 0x00)));
          continue;
        }
        socket.write(frame(card.transmit(apdu)));
      }
    });
    socket.on('error', () => socket.destroy());
  });
}
