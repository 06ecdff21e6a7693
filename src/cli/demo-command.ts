/** `handover demo`: a complete transfer in one process (see src/demo/run-demo.ts). */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { runDemo } from '../demo/run-demo.ts';
import { parseCurve } from '../protocol/crypto/curves.ts';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run a complete port-in with an activation code in one process: dev PKI, two SMs, a chip, a device agent; prints each step and the final state',
    )
    .option('--curve <curve>', 'p256 or brainpoolP256r1', 'p256')
    .option('--dir <dir>', 'working folder for the PKI and the chip state (emptied first)', '.demo')
    .action(async (opts: { curve: string; dir: string }) => {
      const dir = resolve(opts.dir);
      rmSync(dir, { recursive: true, force: true });
      const started = Date.now();
      await runDemo({
        dir,
        curve: parseCurve(opts.curve),
        activationCode: 'DEMO-ACTIVATION-CODE',
        print: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(`\nDone in ${Date.now() - started} ms. Files are in ${dir}.\n`);
    });
}
