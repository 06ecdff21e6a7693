/**
 * `handover sm start --config FILE`: runs one SM (operator, peer and device APIs over HTTPS;
 * src/sm/server.ts). Prints one JSON line {smId, url} on stdout once listening; logs go to
 * stderr (level: the config's logLevel, or HANDOVER_LOG_LEVEL). Stops cleanly on SIGTERM/SIGINT.
 * `handover sm token`: a new random operator token and the tokenSha256 to put into the config.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { closeOnSignals, logLevelFor, startSmServer } from '../sm/server.ts';
import { readSmConfig, tokenSha256 } from '../sm/server-config.ts';

export function registerSmCommands(program: Command): void {
  const sm = program
    .command('sm')
    .description('run a subscription manager (PROTOCOL.md §9 interfaces over HTTPS)');

  sm.command('start')
    .description(
      'start an SM from a JSON config (see examples/sm-alpha.json); prints {"smId","url"} when listening',
    )
    .requiredOption('--config <file>', 'the SM configuration file')
    .action(async (opts: { config: string }) => {
      const config = readSmConfig(opts.config);
      const handle = await startSmServer(config, {
        logger: { level: logLevelFor(config), stream: process.stderr },
      });
      process.stdout.write(`${JSON.stringify({ smId: handle.smId, url: handle.url })}\n`);
      await closeOnSignals(handle, (signal) => handle.app.log.info({ signal }, 'shutting down'));
    });

  sm.command('token')
    .description(
      'make a new operator bearer token; prints {"token","tokenSha256"} (only the hash goes into the config)',
    )
    .action(() => {
      const token = randomBytes(32).toString('base64url');
      process.stdout.write(`${JSON.stringify({ token, tokenSha256: tokenSha256(token) })}\n`);
    });
}
