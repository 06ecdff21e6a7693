/**
 * The device side of the farm's addressed frames (farm-server.ts): `transmit(eid, apdu)` over
 * one or more TCP connections, many requests in flight per connection (answers come back in
 * order). All APDUs of one chip go through the same connection, since card sessions live per
 * (connection, EID); the caller must not interleave two commands to the same chip.
 *
 * A connection that fails (the farm restarted, a request timed out) fails the requests in flight
 * on it, and the next request on its slot opens a new one: a farm that comes back is used again
 * without restarting the agent. After a failed attempt to connect, requests fail at once
 * (ChipUnreachable) for RECONNECT_BACKOFF_MS before the next attempt.
 */
import type { Socket } from 'node:net';
import { HandoverError } from '../../protocol/errors.ts';
import { connectFramed, FrameReader, frame } from '../tcp-server.ts';
import { farmRequest } from './farm-server.ts';

export interface FarmLink {
  transmit(eid: string, apdu: Uint8Array): Promise<Uint8Array>;
  /** Requests sent and not answered yet, over all connections. */
  readonly inFlight: number;
  close(): void;
}

export interface FarmLinkOptions {
  /** TCP connections to open (default 1); a chip always uses the same one. */
  readonly connections?: number;
  /** A request unanswered for this long fails its connection (default 30 s). */
  readonly timeoutMs?: number;
}

/** After a failed attempt to (re)connect, how long requests fail at once before the next attempt. */
export const RECONNECT_BACKOFF_MS = 1000;

interface Waiter {
  readonly resolve: (b: Uint8Array) => void;
  readonly reject: (e: Error) => void;
  readonly sentAt: number;
}

class Lane {
  readonly #socket: Socket;
  readonly #waiting: (Waiter | undefined)[] = [];
  #head = 0;
  #failure: Error | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(socket: Socket, timeoutMs: number, where: string) {
    this.#socket = socket;
    socket.setNoDelay(true);
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      for (const payload of reader.push(chunk)) {
        const w = this.#waiting[this.#head];
        if (!w) {
          this.#fail(new HandoverError('ChipFarmProtocol', `the farm at ${where} sent an unasked answer`));
          return;
        }
        this.#waiting[this.#head++] = undefined;
        if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
          this.#waiting.splice(0, this.#head);
          this.#head = 0;
        }
        w.resolve(payload);
      }
    });
    socket.on('error', (e) =>
      this.#fail(new HandoverError('ChipUnreachable', `farm connection to ${where} failed: ${e.message}`)),
    );
    socket.on('close', () =>
      this.#fail(new HandoverError('ChipUnreachable', `the farm at ${where} closed the connection`)),
    );
    this.#timer = setInterval(
      () => {
        const oldest = this.#waiting[this.#head];
        if (oldest && Date.now() - oldest.sentAt > timeoutMs) {
          this.#fail(
            new HandoverError('ChipTimeout', `no answer from the farm at ${where} in ${timeoutMs} ms`),
          );
        }
      },
      Math.max(10, Math.min(1000, timeoutMs / 4)),
    );
    this.#timer.unref();
  }

  get inFlight(): number {
    return this.#waiting.length - this.#head;
  }

  /** The connection failed or was closed: no request goes through it any more. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  transmit(eid: string, apdu: Uint8Array): Promise<Uint8Array> {
    if (this.#failure) return Promise.reject(this.#failure);
    const payload = frame(farmRequest(eid, apdu));
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#waiting.push({ resolve, reject, sentAt: Date.now() });
      // Requests made in one turn (the answers of one read free many chips at once) leave in one
      // write: corked here, uncorked once the current ticks and promise jobs have run.
      if (this.#socket.writableCorked === 0) {
        this.#socket.cork();
        process.nextTick(() => this.#socket.uncork());
      }
      this.#socket.write(payload);
    });
  }

  #fail(e: Error): void {
    this.#failure ??= e;
    clearInterval(this.#timer);
    const waiting = this.#waiting.slice(this.#head);
    this.#waiting.length = 0;
    this.#head = 0;
    for (const w of waiting) w?.reject(this.#failure);
    this.#socket.destroy();
  }

  close(): void {
    this.#fail(new HandoverError('ChipUnreachable', 'the farm link was closed'));
  }
}

/** A chip's lane: the same for all its APDUs. */
function laneIndex(eid: string, lanes: number): number {
  let h = 0;
  for (let i = 0; i < eid.length; i++) h = (h * 31 + eid.charCodeAt(i)) >>> 0;
  return h % lanes;
}

/**
 * One connection slot: its current lane, and a new one opened by the first request after the
 * lane failed (one attempt at a time, none within RECONNECT_BACKOFF_MS of a failed one).
 */
class Slot {
  #lane: Lane;
  #connecting: Promise<Lane> | undefined;
  #refusedUntil = 0;
  #lastError: Error | undefined;
  #closed = false;

  constructor(
    lane: Lane,
    private readonly open: () => Promise<Lane>,
  ) {
    this.#lane = lane;
  }

  get inFlight(): number {
    return this.#lane.inFlight;
  }

  transmit(eid: string, apdu: Uint8Array): Promise<Uint8Array> {
    if (!this.#lane.failed || this.#closed) return this.#lane.transmit(eid, apdu);
    return this.#reconnect().then((lane) => lane.transmit(eid, apdu));
  }

  #reconnect(): Promise<Lane> {
    if (this.#connecting) return this.#connecting;
    if (Date.now() < this.#refusedUntil && this.#lastError) return Promise.reject(this.#lastError);
    this.#connecting = this.open().then(
      (lane) => {
        this.#connecting = undefined;
        if (this.#closed) lane.close();
        else this.#lane = lane;
        return lane;
      },
      (e: Error) => {
        this.#connecting = undefined;
        this.#lastError = e;
        this.#refusedUntil = Date.now() + RECONNECT_BACKOFF_MS;
        throw e;
      },
    );
    return this.#connecting;
  }

  close(): void {
    this.#closed = true;
    this.#lane.close();
  }
}

export async function connectFarm(host: string, port: number, o: FarmLinkOptions = {}): Promise<FarmLink> {
  const n = o.connections ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new RangeError('connections is a positive integer');
  const where = `${host}:${port}`;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const open = async (): Promise<Lane> =>
    new Lane(await connectFramed(host, port, 'the chip farm'), timeoutMs, where);
  const opened = await Promise.allSettled(Array.from({ length: n }, open));
  const lanes = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    for (const l of lanes) l.close();
    throw failed.reason;
  }
  const slots = lanes.map((lane) => new Slot(lane, open));
  return {
    transmit: (eid, apdu) => slots[laneIndex(eid, slots.length)]!.transmit(eid, apdu),
    get inFlight() {
      return slots.reduce((sum, l) => sum + l.inFlight, 0);
    },
    close: () => {
      for (const l of slots) l.close();
    },
  };
}
