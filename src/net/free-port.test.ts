import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { canListen, ephemeralLow, freePort, LOWEST_PORT } from './free-port.ts';

test('freePort gives a port below the ephemeral range that a server can then bind', async () => {
  const port = await freePort();
  assert.ok(port >= LOWEST_PORT && port < ephemeralLow(), `port ${port}`);
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => ok());
  });
  try {
    // Taken now: canListen says so instead of throwing.
    assert.equal(await canListen(port), undefined);
  } finally {
    await new Promise<void>((ok) => server.close(() => ok()));
  }
  assert.equal(await canListen(port), port);
});
