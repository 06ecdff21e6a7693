#!/usr/bin/env node
/**
 * The `handover` command. Each command group lives in its own file and registers itself here.
 * Exit codes: 0 success, 1 a negative result or a failed operation, 2 usage errors.
 */
import { Command, CommanderError } from 'commander';
import { HandoverError } from '../protocol/errors.ts';
import { registerCommands } from './commands.ts';
import { startCryptoCountsFile } from './crypto-counts-file.ts';

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('handover')
    .description('Move an eUICC between subscription managers (Handover protocol v1)')
    .exitOverride()
    .showHelpAfterError();
  registerCommands(program);
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0)
        return 0;
      return 2;
    }
    if (e instanceof HandoverError) {
      process.stderr.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
      return e.code === 'UsageError' ? 2 : 1;
    }
    throw e;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  startCryptoCountsFile();
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(70);
    },
  );
}
