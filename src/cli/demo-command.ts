/** `handover demo`: a complete transfer in one process (see src/demo/run-demo.ts). */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { runProcessDemo } from '../demo/process-demo.ts';
import { runDemo } from '../demo/run-demo.ts';
import { parseCurve } from '../protocol/crypto/curves.ts';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run a complete port-in with an activation code: a dev PKI, two SM servers (mutual TLS, SQLite), a chip served over TCP and a device agent, as separate processes; prints each step and the final state, then stops them',
    )
    .option('--curve <curve>', 'p256 or brainpoolP256r1', 'p256')
    .option(
      '--dir <dir>',
      'working folder for the PKI, configs, SQLite files and chip state (emptied first)',
      '.demo',
    )
    .option('--in-process', 'run everything in this process, with in-memory SM stores')
    .action(async (opts: { curve: string; dir: string; inProcess?: boolean }) => {
      const dir = resolve(opts.dir);
      rmSync(dir, { recursive: true, force: true });
      const started = Date.now();
      const run = opts.inProcess ? runDemo : runProcessDemo;
      await run({
        dir,
        curve: parseCurve(opts.curve),
        activationCode: 'DEMO-ACTIVATION-CODE',
        print: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(`\nDone in ${Date.now() - started} ms. Files are in ${dir}.\n`);
    });
}
