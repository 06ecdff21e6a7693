/** Registers every command group on the program. One line per group file. */
import type { Command } from 'commander';
import { registerPkiCommands } from './pki-command.ts';

export function registerCommands(program: Command): void {
  registerPkiCommands(program);
}
