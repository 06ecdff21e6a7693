/** Registers every command group on the program. One line per group file. */
import type { Command } from 'commander';

export function registerCommands(_program: Command): void {}
