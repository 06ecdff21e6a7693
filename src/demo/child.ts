/** Child processes of the multi-process demo: spawn the `handover` CLI, read its JSON lines, stop it. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { HandoverError } from '../protocol/errors.ts';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the first stdout JSON line that satisfies `match`. */
  waitFor<T>(match: (v: Record<string, unknown>) => boolean, timeoutMs: number): Promise<T>;
  stop(): Promise<void>;
  /** The last lines it wrote to stderr, for error reports. */
  stderrTail(): string;
}

export function spawnHandover(
  name: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  onLine?: (v: Record<string, unknown>) => void,
  /** Extra Node.js options before the script (e.g. --cpu-prof). */
  nodeArgs: readonly string[] = [],
): Child {
  const p = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', MAIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const waiters: {
    match: (v: Record<string, unknown>) => boolean;
    resolve: (v: Record<string, unknown>) => void;
  }[] = [];
  const tail: string[] = [];
  /** Every JSON line so far, so a waiter added late still sees a line that came early. */
  const seen: Record<string, unknown>[] = [];
  createInterface({ input: p.stderr! }).on('line', (l) => {
    tail.push(l);
    if (tail.length > 20) tail.shift();
  });
  createInterface({ input: p.stdout! }).on('line', (l) => {
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(l) as Record<string, unknown>;
    } catch {
      return;
    }
    onLine?.(v);
    seen.push(v);
    for (const w of [...waiters]) {
      if (w.match(v)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(v);
      }
    }
  });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  return {
    name,
    process: p,
    stderrTail: () => tail.join('\n'),
    waitFor<T>(match: (v: Record<string, unknown>) => boolean, timeoutMs: number): Promise<T> {
      const early = seen.find(match);
      if (early) return Promise.resolve(early as T);
      if (p.exitCode !== null || p.signalCode !== null) {
        // Exited before this wait began: its 'exit' event has been and gone.
        return Promise.reject(
          new HandoverError(
            'DemoChildExited',
            `${name} exited with ${p.signalCode ?? `code ${p.exitCode}`}:\n${tail.join('\n')}`,
          ),
        );
      }
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new HandoverError(
                'DemoTimeout',
                `${name} did not get ready in ${timeoutMs} ms:\n${tail.join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        p.once('exit', (code) => {
          clearTimeout(timer);
          reject(
            new HandoverError('DemoChildExited', `${name} exited with code ${code}:\n${tail.join('\n')}`),
          );
        });
        waiters.push({
          match,
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
        });
      });
    },
    async stop() {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
