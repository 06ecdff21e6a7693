/**
 * `handover chip …`: a simulated chip's state file and the tools to debug it. `create` makes one
 * (chip-create.ts), `info` shows what it holds (no secrets), `apdu` sends raw APDUs to it
 * (chip-apdu.ts), `shell` is an interactive session with it (chip-shell.ts).
 */
import type { Command } from 'commander';
import { FileStateStore } from '../chip/file-store.ts';
import { summarizeChipState } from '../chip/state.ts';
import { chipApduCommand } from './chip-apdu.ts';
import { type ChipCreateOptions, createChipFromFiles } from './chip-create.ts';
import { runChipShell } from './chip-shell.ts';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function registerChipCommands(program: Command): void {
  const chip = program.command('chip').description('A simulated eUICC: its state file, identity and APDUs');

  chip
    .command('create')
    .description(
      'Create a chip state file. Identity: a chip certificate issued now for --eid by an EUM ' +
        "(--eum-cert/--eum-key, or the PKI folder's EUM), or an existing one (--chip-cert, --chip-key, " +
        '--eum-cert, e.g. the GSMA SGP.26 test eUICC). Assigned to SM --sm (certificate --sm-cert or from ' +
        "--pki); trusting --ci-cert (repeatable) and the PKI folder's CI for SM certificates",
    )
    .requiredOption('--state <file>', 'chip state file to write')
    .requiredOption('--sm <smId>', 'the SM the chip starts assigned to')
    .option('--pki <dir>', 'development PKI folder (ci.pem, eum.pem/.key, sm-<id>.pem, pki.json)')
    .option('--eid <eid>', '32-digit EID inside the EUM prefix (with a valid mod-97 check value)')
    .option(
      '--profile <iccid[:operator]>',
      'a profile on the chip; the first is enabled (repeatable)',
      collect,
      [],
    )
    .option(
      '--eum-cert <file>',
      'the EUM certificate (PEM or DER): the issuer of a new or the given chip certificate',
    )
    .option(
      '--eum-key <file>',
      'the EUM private key (PKCS#8 or SEC1 PEM), to issue a chip certificate for --eid',
    )
    .option('--chip-cert <file>', 'an existing chip certificate (PEM or DER)')
    .option('--chip-key <file>', 'its private key (PKCS#8 or SEC1 PEM)')
    .option('--ci-cert <file>', 'a CI certificate to trust for SM certificates (repeatable)', collect, [])
    .option('--sm-cert <file>', "the assigned SM's certificate (default: from --pki)")
    .option('--force', 'replace an existing state file')
    .action((o: ChipCreateOptions) => print(createChipFromFiles(o)));

  chip
    .command('info')
    .description(
      'Print what a chip state file holds as JSON: EID, assigned SM, counter, pending transfer, profiles (no secrets)',
    )
    .requiredOption('--state <file>', 'chip state file')
    .action((o: { state: string }) => print(summarizeChipState(new FileStateStore(o.state).load())));

  chip
    .command('apdu')
    .description(
      'Send raw command APDUs (hex) to the chip, as a card reader does; prints data and status word in ' +
        'hex per APDU (e.g. 9000, 61a0, 6a80). State changes persist in the file; STORE DATA chaining ' +
        'and GET RESPONSE work within one invocation only (each invocation is a new card session)',
    )
    .requiredOption('--state <file>', 'chip state file')
    .argument('<hex...>', 'command APDUs, e.g. 00A4040010A0000005591010FFFFFFFF8900000100')
    .action((hex: string[], o: { state: string }) => {
      process.exitCode = chipApduCommand(o.state, hex);
    });

  chip
    .command('shell')
    .description(
      'Interactive session with the chip (apdu, send, info, decode, select, help, exit); one card for ' +
        'the whole session, so chaining works across lines. Reads commands from stdin when it is not a terminal',
    )
    .requiredOption('--state <file>', 'chip state file')
    .action(async (o: { state: string }) => {
      process.exitCode = await runChipShell(o.state, {
        input: process.stdin,
        output: process.stdout,
        interactive: process.stdin.isTTY === true && process.stdout.isTTY === true,
      });
    });
}
