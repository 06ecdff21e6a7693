/** Registers every command group on the program. One line per group file. */
import type { Command } from 'commander';
import { registerAuditCommands } from './audit-command.ts';
import { registerChipCommands } from './chip-command.ts';
import { registerChipFarmCommand } from './chip-farm-command.ts';
import { registerChipServeCommand } from './chip-serve-command.ts';
import { registerChipsCommands } from './chips-command.ts';
import { registerDecodeCommand } from './decode-command.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerDeviceCommands } from './device-command.ts';
import { registerPkiCommands } from './pki-command.ts';
import { registerSmCommands } from './sm-command.ts';
import { registerTransferCommands } from './transfer-command.ts';

export function registerCommands(program: Command): void {
  registerChipCommands(program);
  const chip = program.commands.find((c) => c.name() === 'chip');
  if (chip) registerChipServeCommand(chip);
  if (chip) registerChipFarmCommand(chip);
  registerPkiCommands(program);
  registerDecodeCommand(program);
  registerDemoCommand(program);
  registerSmCommands(program);
  registerDeviceCommands(program);
  registerChipsCommands(program);
  registerTransferCommands(program);
  registerAuditCommands(program);
}
