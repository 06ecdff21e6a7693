/** Registers every command group on the program. One line per group file. */
import type { Command } from 'commander';
import { registerDecodeCommand } from './decode-command.ts';
import { registerPkiCommands } from './pki-command.ts';

export function registerCommands(program: Command): void {
  registerPkiCommands(program);
  registerDecodeCommand(program);
}
