import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { StoreTx } from '../types.ts';
import { GroupQueue, type Waiting } from './group-queue.ts';

/** No store behind the functions here: they never touch `tx`. */
const NO_TX = {} as StoreTx;

/** A runner that runs each item's function in order and settles it, recording the groups. */
function recordingRunner(groups: number[][]) {
  return async (group: Waiting[]) => {
    const ids: number[] = [];
    for (const item of group) {
      try {
        const value = await item.fn(NO_TX);
        ids.push(value as number);
        item.resolve(value);
      } catch (e) {
        item.reject(e);
      }
    }
    groups.push(ids);
  };
}

describe('GroupQueue', () => {
  test('transactions queued in one turn of the event loop share one group, in order', async () => {
    const groups: number[][] = [];
    const q = new GroupQueue(64, recordingRunner(groups));
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => q.add(async () => n)));
    assert.deepEqual(results, [1, 2, 3, 4, 5]);
    assert.deepEqual(groups, [[1, 2, 3, 4, 5]]);
  });

  test('a group holds at most maxGroup transactions; the rest run in the next groups', async () => {
    const groups: number[][] = [];
    const q = new GroupQueue(2, recordingRunner(groups));
    await Promise.all([1, 2, 3, 4, 5].map((n) => q.add(async () => n)));
    assert.deepEqual(groups, [[1, 2], [3, 4], [5]]);
  });

  test('a transaction added while a group runs goes in a later group, not lost', async () => {
    const groups: number[][] = [];
    const q = new GroupQueue(64, recordingRunner(groups));
    let late: Promise<number> | undefined;
    const first = q.add(async () => {
      late = q.add(async () => 2);
      return 1;
    });
    assert.equal(await first, 1);
    assert.equal(await late, 2);
    assert.deepEqual(groups, [[1], [2]]);
  });

  test('requeued transactions run first in the next group', async () => {
    const seen: number[][] = [];
    let requeued = false;
    const q: GroupQueue = new GroupQueue(64, async (group) => {
      if (!requeued) {
        requeued = true;
        q.requeue(group.slice(1));
        const head = group[0];
        if (head) head.resolve(await head.fn(NO_TX));
        seen.push([1]);
        return;
      }
      const ids: number[] = [];
      for (const item of group) {
        const value = (await item.fn(NO_TX)) as number;
        ids.push(value);
        item.resolve(value);
      }
      seen.push(ids);
    });
    const all = [1, 2, 3].map((n) => q.add(async () => n));
    assert.deepEqual(await Promise.all(all), [1, 2, 3]);
    assert.deepEqual(seen, [[1], [2, 3]]);
  });

  test('a runner that throws rejects its group and everything still waiting; the queue goes on', async () => {
    let calls = 0;
    const q = new GroupQueue(1, async (group) => {
      calls++;
      if (calls === 1) throw new Error('database gone');
      for (const item of group) item.resolve(await item.fn(NO_TX));
    });
    const a = q.add(async () => 1);
    const b = q.add(async () => 2);
    await assert.rejects(a, /database gone/);
    await assert.rejects(b, /database gone/);
    assert.equal(calls, 1);
    assert.equal(await q.add(async () => 3), 3);
  });

  test('idle() settles only once nothing is queued or running', async () => {
    const groups: number[][] = [];
    const q = new GroupQueue(1, recordingRunner(groups));
    const adds = [1, 2, 3].map((n) => q.add(async () => n));
    await q.idle();
    assert.deepEqual(groups, [[1], [2], [3]]);
    await Promise.all(adds);
  });

  test('property: every transaction settles once, with its own outcome, in the order added', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 8 }),
        async (fails, maxGroup) => {
          const order: number[] = [];
          const q = new GroupQueue(maxGroup, async (group) => {
            for (const item of group) {
              try {
                item.resolve(await item.fn(NO_TX));
              } catch (e) {
                item.reject(e);
              }
            }
          });
          const outcomes = await Promise.allSettled(
            fails.map((fail, i) =>
              q.add(async () => {
                order.push(i);
                if (fail) throw new Error(`tx ${i}`);
                return i;
              }),
            ),
          );
          assert.deepEqual(
            order,
            fails.map((_, i) => i),
          );
          outcomes.forEach((o, i) => {
            if (fails[i]) assert.equal(o.status, 'rejected');
            else assert.deepEqual(o, { status: 'fulfilled', value: i });
          });
        },
      ),
    );
  });
});
