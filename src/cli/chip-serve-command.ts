/** `handover chip serve`: a chip reachable over TCP for device agents (see src/chip/tcp-server.ts). */
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { FileStateStore } from '../chip/file-store.ts';
import { ChipProcessor } from '../chip/processor.ts';
import { serveChip } from '../chip/tcp-server.ts';
import { InvalidInput } from '../protocol/errors.ts';

export function registerChipServeCommand(chip: Command): void {
  chip
    .command('serve')
    .description('serve the chip whose state is in FILE over TCP (2-byte length-prefixed APDUs)')
    .requiredOption('--state <file>', 'chip state file')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 = any free port)', '0')
    .action(async (o: { state: string; host: string; port: string }) => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        throw new InvalidInput('UsageError', '--port must be 0..65535');
      const store = new FileStateStore(o.state);
      store.load(); // fail now, with a clear error, if the state file is missing or invalid
      const server = serveChip(new ChipProcessor(store));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, o.host, resolve);
      });
      const addr = server.address() as AddressInfo;
      process.stdout.write(
        `${JSON.stringify({ listening: `${addr.address}:${addr.port}`, state: o.state })}\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => server.close(() => resolve());
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
