/**
 * A free TCP port for a server this process is about to start in another process (test worlds,
 * the demo, the bench): the port is probed and closed again, and the server binds it later.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Whether something can listen on `host`:`port` now; the port bound (it is closed again at once). */
export async function canListen(port: number, host = '127.0.0.1'): Promise<number | undefined> {
  const server = createServer();
  const bound = await new Promise<boolean>((ok) => {
    server.once('error', () => ok(false));
    server.listen(port, host, () => ok(true));
  });
  if (!bound) return undefined;
  const actual = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return actual;
}

/** The first port of the kernel's ephemeral range (Linux; 32768 where it cannot be read). */
export function ephemeralLow(): number {
  try {
    const low = Number.parseInt(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'), 10);
    return Number.isInteger(low) ? low : 32_768;
  } catch {
    return 32_768;
  }
}

export const LOWEST_PORT = 10_000;

/**
 * A free TCP port on `host`, closed again before the caller's server binds it. Picked at random
 * below the kernel's ephemeral range: a port from that range (port 0) was once taken in CI, between
 * the pick and the bind, by an outgoing connection of a test running beside (EADDRINUSE). Below it,
 * only another explicit bind can take it. Port 0 is the last resort.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const high = ephemeralLow();
  for (let attempt = 0; high > LOWEST_PORT && attempt < 100; attempt++) {
    const port = await canListen(LOWEST_PORT + Math.floor(Math.random() * (high - LOWEST_PORT)), host);
    if (port !== undefined) return port;
  }
  const port = await canListen(0, host);
  if (port === undefined) throw new Error(`no free TCP port on ${host}`);
  return port;
}
