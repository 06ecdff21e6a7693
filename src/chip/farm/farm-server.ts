/**
 * Every chip of a farm over one TCP port (`handover chip farm`). Frames are those of
 * `chip serve` (2-byte big-endian length, then the payload) with an addressing layer: a request's
 * payload is the chip's EID (16 bytes BCD) followed by one command APDU; the answer's payload is
 * the APDU response (data ‖ SW1 SW2), and answers come back in request order, so a client may
 * keep many requests in flight on one connection (for different chips).
 *
 * Card sessions (STORE DATA chaining, GET RESPONSE) live per (connection, EID), in a bounded map
 * per connection: a session evicted mid-command answers like a card that was reset.
 *
 * Group commit: the frames that arrive together (from every connection) are processed in one
 * SQLite transaction, and their answers leave only after it commits: one fsync for many chips,
 * and still no answer before its state is durable. If the commit fails, no answer of that batch
 * is released and its connections are closed (like cards losing power: the device retries).
 *
 * Status words of the addressing layer: 6700 a frame too short for an EID or longer than an
 * APDU; 6A88 (referenced data not found) an EID that is not BCD or not in the farm.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ChipCard } from '../apdu.ts';
import { type ChipEnvironment, defaultChipEnvironment } from '../command-context.ts';
import { ChipProcessor, type CommandProcessor } from '../processor.ts';
import { FrameReader, frame, MAX_APDU } from '../tcp-server.ts';
import { LruMap } from './lru.ts';
import type { ChipFarm } from './sqlite-farm-store.ts';

export const EID_BYTES = 16;
export const SW_EID_NOT_FOUND = 0x6a88;
const SW_WRONG_LENGTH = 0x6700;

export interface FarmServerOptions {
  /** Card sessions kept per connection (default 4096). */
  readonly sessionsPerConnection?: number;
  /** Most frames in one transaction (default 1024). */
  readonly maxBatch?: number;
  readonly env?: ChipEnvironment;
  /** Internal failures: a command the card answered 6F00, or a commit that failed. */
  readonly onError?: (error: unknown, eid: string | undefined) => void;
}

export interface FarmServerStats {
  frames: number;
  batches: number;
  connections: number;
  failedCommits: number;
}

export interface FarmServer {
  readonly server: Server;
  readonly stats: Readonly<FarmServerStats>;
  /** Stops listening and drops every connection (their unanswered frames are not processed). */
  close(): Promise<void>;
}

interface Connection {
  readonly socket: Socket;
  readonly cards: LruMap<string, ChipCard>;
}

interface Pending {
  readonly conn: Connection;
  readonly payload: Uint8Array;
}

const sw = (word: number): Uint8Array => Uint8Array.of(word >> 8, word & 0xff);
const BCD_EID = /^\d{32}$/;

/** The request payload for one APDU to one chip. */
export function farmRequest(eid: string, apdu: Uint8Array): Uint8Array {
  if (!BCD_EID.test(eid)) throw new RangeError(`an EID is 32 digits, got "${eid}"`);
  const out = new Uint8Array(EID_BYTES + apdu.length);
  out.set(Buffer.from(eid, 'hex'), 0);
  out.set(apdu, EID_BYTES);
  return out;
}

export function serveFarm(farm: ChipFarm, o: FarmServerOptions = {}): FarmServer {
  const env = o.env ?? defaultChipEnvironment;
  const sessions = o.sessionsPerConnection ?? 4096;
  const maxBatch = o.maxBatch ?? 1024;
  const stats: FarmServerStats = { frames: 0, batches: 0, connections: 0, failedCommits: 0 };
  let queue: Pending[] = [];
  const sockets = new Set<Socket>();
  let scheduled = false;

  // A fresh processor per command: the row is the only copy of the state (no cache to go stale
  // when two connections talk to one chip, or when a batch is rolled back).
  const processorFor = (eid: string): CommandProcessor => ({
    process: (command) => new ChipProcessor(farm.store(eid), env).process(command),
  });

  const answer = (conn: Connection, payload: Uint8Array): Uint8Array => {
    if (payload.length < EID_BYTES + 4 || payload.length > EID_BYTES + MAX_APDU) return sw(SW_WRONG_LENGTH);
    const eid = Buffer.from(payload.buffer, payload.byteOffset, EID_BYTES).toString('hex');
    let card = conn.cards.get(eid);
    if (!card) {
      if (!BCD_EID.test(eid) || !farm.has(eid)) return sw(SW_EID_NOT_FOUND);
      card = new ChipCard(processorFor(eid), { onError: (e) => o.onError?.(e, eid) });
      conn.cards.set(eid, card);
    }
    return card.transmit(payload.subarray(EID_BYTES));
  };

  const flush = (): void => {
    scheduled = false;
    const batch = queue.length > maxBatch ? queue.splice(0, maxBatch) : queue;
    if (batch === queue) queue = [];
    if (queue.length > 0) schedule();
    const live = batch.filter((p) => !p.conn.socket.destroyed);
    if (live.length === 0) return;
    let answers: Uint8Array[];
    try {
      answers = farm.transaction(() => live.map((p) => answer(p.conn, p.payload)));
    } catch (e) {
      stats.failedCommits++;
      o.onError?.(e, undefined);
      for (const p of live) p.conn.socket.destroy();
      return;
    }
    stats.batches++;
    // One write per connection per batch.
    const out = new Map<Connection, Buffer[]>();
    for (const [i, p] of live.entries()) {
      const list = out.get(p.conn) ?? [];
      if (list.length === 0) out.set(p.conn, list);
      list.push(frame(answers[i]!));
    }
    for (const [conn, frames] of out) {
      if (conn.socket.destroyed) continue;
      if (!conn.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames))) {
        // The client does not read its answers: stop reading its requests until it does.
        conn.socket.pause();
        conn.socket.once('drain', () => conn.socket.resume());
      }
    }
  };

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  };

  const server = createServer((socket: Socket) => {
    stats.connections++;
    socket.setNoDelay(true);
    const conn: Connection = { socket, cards: new LruMap(sessions) };
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      const frames = reader.push(chunk);
      stats.frames += frames.length;
      for (const payload of frames) queue.push({ conn, payload });
      if (frames.length > 0) schedule();
    });
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      conn.cards.clear();
    });
    socket.on('error', () => socket.destroy());
  });
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  return { server, stats, close };
}
