/** Registers every command group on the program. One line per group file. */
import type { Command } from 'commander';
import { registerChipCommands } from './chip-command.ts';
import { registerDecodeCommand } from './decode-command.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerPkiCommands } from './pki-command.ts';

export function registerCommands(program: Command): void {
  registerChipCommands(program);
  registerPkiCommands(program);
  registerDecodeCommand(program);
  registerDemoCommand(program);
}
