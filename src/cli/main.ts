#!/usr/bin/env node
/**
 * The `handover` command. Each command group lives in its own file and registers itself here.
 * Exit codes: 0 success, 1 a negative result or a failed operation (system failures such as a
 * file in the way or a port in use included), 2 usage errors, 70 an internal error (a bug).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { HandoverError } from '../protocol/errors.ts';
import { registerCommands } from './commands.ts';
import { startCryptoCountsFile } from './crypto-counts-file.ts';
import { exitWhenFlushed } from './exit.ts';
import { systemErrorOf } from './system-error.ts';

/** The version in package.json (read once, at start). */
function packageVersion(): string {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version?: string }).version ?? 'unknown';
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('handover')
    .description('Move an eUICC between subscription managers (Handover protocol v1)')
    .version(packageVersion(), '-V, --version', 'the version of handover')
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
    const typed = e instanceof HandoverError ? e : systemErrorOf(e);
    if (typed) {
      process.stderr.write(`${JSON.stringify({ error: typed.toJSON() })}\n`);
      return typed.code === 'UsageError' ? 2 : 1;
    }
    throw e;
  }
}

/** Runs the command line and exits with its code; 70 (and the stack) for an internal error only. */
export function runCli(argv: readonly string[]): void {
  startCryptoCountsFile();
  main(argv).then(exitWhenFlushed, (e: unknown) => {
    process.stderr.write(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    exitWhenFlushed(70);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) runCli(process.argv.slice(2));
