import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { spawnHandover } from './child.ts';

describe('spawnHandover', () => {
  it('a wait that begins after the child has exited is refused at once (DemoChildExited), not left to time out', async () => {
    // An unknown command: the CLI says so and exits with an error.
    const child = spawnHandover('cli', ['no-such-command'], process.env);
    await once(child.process, 'exit');
    const outcome = await Promise.race([
      child
        .waitFor(() => true, 10_000)
        .then(
          () => 'resolved',
          (e: { code?: string }) => e.code,
        ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 2_000)),
    ]);
    assert.equal(outcome, 'DemoChildExited');
  });
});
