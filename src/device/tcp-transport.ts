/**
 * The device side of `handover chip serve`: APDUs over TCP, 2-byte length-prefixed frames.
 * A connection that fails (the chip server restarted, an answer timed out) is replaced by the
 * next transmit, so an agent goes on once its chip is back.
 */
import type { Socket } from 'node:net';
import { connectFramed, FrameReader, frame } from '../chip/tcp-server.ts';
import { HandoverError } from '../protocol/errors.ts';
import type { Transmit } from './apdu-client.ts';

export interface TcpCardLink {
  readonly transmit: Transmit;
  close(): void;
}

interface Waiting {
  readonly resolve: (b: Uint8Array) => void;
  readonly reject: (e: Error) => void;
}

/** One TCP connection to the chip: at most one APDU waiting for its answer. */
class CardConnection {
  readonly #socket: Socket;
  readonly #reader = new FrameReader();
  #waiting: Waiting | undefined;
  #dead = false;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const payload of this.#reader.push(chunk)) {
        const w = this.#waiting;
        this.#waiting = undefined;
        w?.resolve(payload);
      }
    });
    socket.on('error', (e) =>
      this.fail(new HandoverError('ChipUnreachable', `chip connection failed: ${e.message}`)),
    );
    socket.on('close', () =>
      this.fail(new HandoverError('ChipUnreachable', 'the chip closed the connection')),
    );
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** Fails the APDU waiting, if any, and drops the connection for good. */
  fail(e: Error): void {
    this.#dead = true;
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.reject(e);
    this.#socket.destroy();
  }

  transmit(apdu: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      if (this.#waiting) {
        reject(new HandoverError('ChipBusy', 'one APDU at a time on a card link'));
        return;
      }
      // An answer that does not come leaves the connection in an unknown place: drop it.
      const timer = setTimeout(
        () => this.fail(new HandoverError('ChipTimeout', `no answer from the chip in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiting = {
        resolve: (b) => {
          clearTimeout(timer);
          resolve(b);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#socket.write(frame(apdu));
    });
  }
}

/** Connects to host:port; each transmit waits for one response frame, reconnecting first if needed. */
export async function connectTcpCard(host: string, port: number, timeoutMs = 10_000): Promise<TcpCardLink> {
  const open = async (): Promise<CardConnection> =>
    new CardConnection(await connectFramed(host, port, 'the chip'));
  let conn = await open();
  let reopening: Promise<CardConnection> | undefined;
  let closed = false;
  const transmit: Transmit = async (apdu) => {
    if (conn.dead && !closed) {
      reopening ??= open().finally(() => {
        reopening = undefined;
      });
      conn = await reopening;
    }
    return conn.transmit(apdu, timeoutMs);
  };
  return {
    transmit,
    close: () => {
      closed = true;
      conn.fail(new HandoverError('ChipUnreachable', 'the chip link was closed'));
    },
  };
}
