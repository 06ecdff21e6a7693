/**
 * The farm link survives the farm: a connection that fails is replaced by the next request on
 * its slot, with a pause after a failed attempt (a stand-in farm that answers 90 00 to anything).
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../net/free-port.ts';
import { FrameReader, frame } from '../tcp-server.ts';
import { connectFarm, RECONNECT_BACKOFF_MS } from './farm-link.ts';

const EID = '89049032123451234512345678901235';
const OK = Uint8Array.of(0x90, 0x00);

async function standInFarm(port: number): Promise<{ server: Server; stop: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      for (const _ of reader.push(chunk)) socket.write(frame(OK));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    server,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('a farm that restarts is reached again without a new link; a farm that is down fails fast', async () => {
  const port = await freePort();
  let farm = await standInFarm(port);
  const link = await connectFarm('127.0.0.1', port, { connections: 2 });
  try {
    assert.deepEqual(await link.transmit(EID, Uint8Array.of(0, 0xa4, 4, 0)), OK);
    await farm.stop();
    await sleep(50);
    // The old connection is gone and the farm is down: refused, not hung.
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => assert.fail('not refused'),
        (e: unknown) => e,
      );
    const first = await refusal(link.transmit(EID, Uint8Array.of(0)));
    assert.equal((first as { code?: string }).code, 'ChipUnreachable');
    // Within the pause after a failed attempt: the same refusal again, without a new attempt.
    assert.equal(await refusal(link.transmit(EID, Uint8Array.of(0))), first);
    farm = await standInFarm(port);
    await sleep(RECONNECT_BACKOFF_MS + 50);
    // Back: many requests at once share one new connection per slot.
    const answers = await Promise.all(Array.from({ length: 20 }, () => link.transmit(EID, Uint8Array.of(0))));
    assert.ok(answers.every((a) => a[0] === 0x90 && a[1] === 0x00));
    assert.equal(link.inFlight, 0);
  } finally {
    link.close();
    await farm.stop();
  }
  // A closed link stays closed.
  await assert.rejects(link.transmit(EID, Uint8Array.of(0)), { code: 'ChipUnreachable' });
});
