/**
 * The queue of store transactions that both SQL stores commit in groups (group commit): the
 * store's transactions take turns, and those waiting when a group starts share one database
 * transaction (each in its own SAVEPOINT, which the store runs). A group starts on the next
 * turn of the event loop after a transaction arrives (setImmediate), not at once: the requests
 * whose I/O is already ready then queue their transactions first and share the commit, instead
 * of each paying a commit (a disk sync on SQLite with synchronous = FULL, a WAL flush on
 * PostgreSQL). In the fleet benchmark (1,000 chips, counted with a temporary counter) SM B made
 * 5,166 SQLite commits for 7,094 store transactions before, 1,655 for 8,136 after (BENCHMARKS.md).
 */
import type { StoreTx } from '../types.ts';

/** A store transaction waiting for its turn. */
export interface Waiting {
  readonly fn: (tx: StoreTx) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Runs one group: settles every item it was given (resolve after the commit, reject on failure)
 * or puts some back with `requeue`. If it throws, every item of the group and every item still
 * waiting is rejected with that error (the database is gone).
 */
export type RunGroup = (group: Waiting[]) => Promise<void>;

export class GroupQueue {
  readonly #maxGroup: number;
  readonly #runGroup: RunGroup;
  readonly #waiting: Waiting[] = [];
  /** The runner while it runs: settles once nothing is waiting. */
  #running: Promise<void> | undefined;

  constructor(maxGroup: number, runGroup: RunGroup) {
    this.#maxGroup = Math.max(1, Math.floor(maxGroup));
    this.#runGroup = runGroup;
  }

  /** Queues `fn`; settles as the group that runs it settles it. */
  add<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.#running ??= this.#run();
    });
  }

  /** Puts `items` back at the head of the queue, in their order (they run in the next group). */
  requeue(items: readonly Waiting[]): void {
    this.#waiting.unshift(...items);
  }

  /** Settles once no transaction is queued or running. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #run(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    let group: Waiting[] = [];
    try {
      while (this.#waiting.length > 0) {
        group = this.#waiting.splice(0, this.#maxGroup);
        await this.#runGroup(group);
      }
    } catch (e) {
      // Rejecting an item its group already settled changes nothing.
      for (const item of [...group, ...this.#waiting.splice(0)]) item.reject(e);
    } finally {
      this.#running = undefined;
      // A transaction queued as the last group ended (after the loop's check) starts a new runner.
      if (this.#waiting.length > 0) this.#running = this.#run();
    }
  }
}
