/** The device side of `handover chip serve`: APDUs over TCP, 2-byte length-prefixed frames. */
import { connect, type Socket } from 'node:net';
import { HandoverError } from '../protocol/errors.ts';
import type { Transmit } from './apdu-client.ts';

function frame(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(2 + payload.length);
  out.writeUInt16BE(payload.length, 0);
  out.set(payload, 2);
  return out;
}

export interface TcpCardLink {
  readonly transmit: Transmit;
  close(): void;
}

/** Connects to host:port; each transmit waits for one response frame. */
export async function connectTcpCard(host: string, port: number, timeoutMs = 10_000): Promise<TcpCardLink> {
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host, port }, () => resolve(s));
    s.once('error', (e) =>
      reject(new HandoverError('ChipUnreachable', `cannot reach the chip at ${host}:${port}: ${e.message}`)),
    );
  });
  let buf = Buffer.alloc(0);
  let waiting: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  const fail = (e: Error) => {
    waiting?.reject(e);
    waiting = undefined;
  };
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const n = buf.readUInt16BE(0);
      const payload = new Uint8Array(buf.subarray(2, 2 + n));
      buf = buf.subarray(2 + n);
      const w = waiting;
      waiting = undefined;
      w?.resolve(payload);
    }
  });
  socket.on('error', (e) =>
    fail(new HandoverError('ChipUnreachable', `chip connection failed: ${e.message}`)),
  );
  socket.on('close', () => fail(new HandoverError('ChipUnreachable', 'the chip closed the connection')));
  const transmit: Transmit = (apdu) =>
    new Promise<Uint8Array>((resolve, reject) => {
      if (waiting) {
        reject(new HandoverError('ChipBusy', 'one APDU at a time on a card link'));
        return;
      }
      const timer = setTimeout(
        () => fail(new HandoverError('ChipTimeout', `no answer from the chip in ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiting = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      socket.write(frame(apdu));
    });
  return { transmit, close: () => socket.destroy() };
}
