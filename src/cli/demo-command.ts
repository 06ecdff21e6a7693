/** `handover demo`: a complete transfer in one process (see src/demo/run-demo.ts). */
import type { Command } from 'commander';
import { runProcessDemo } from '../demo/process-demo.ts';
import { runDemo } from '../demo/run-demo.ts';
import { curveArg } from './args.ts';
import { prepareDemoDir } from './demo-dir.ts';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'run a complete port-in with an activation code: a dev PKI, two SM servers (mutual TLS, SQLite), a chip served over TCP and a device agent, as separate processes; prints each step and the final state, then stops them',
    )
    .option('--curve <curve>', 'p256 or brainpoolP256r1', 'p256')
    .option(
      '--dir <dir>',
      'working folder for the PKI, configs, SQLite files and chip state; emptied at each run, so it must be new, empty or made by an earlier demo run',
      '.demo',
    )
    .option('--in-process', 'run everything in this process, with in-memory SM stores')
    .action(async (opts: { curve: string; dir: string; inProcess?: boolean }) => {
      const curve = curveArg(opts.curve);
      const dir = prepareDemoDir(opts.dir);
      const started = Date.now();
      const run = opts.inProcess ? runDemo : runProcessDemo;
      await run({
        dir,
        curve,
        activationCode: 'DEMO-ACTIVATION-CODE',
        print: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(`\nDone in ${Date.now() - started} ms. Files are in ${dir}.\n`);
    });
}
