/** The bulk runner's pure decision (plan.ts), by property: limits hold over any run of steps. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { BulkJobState } from '../store/types.ts';
import { isFinished, itemsToStart, RATE_WINDOW_MS } from './plan.ts';

const jobArb = fc.record({
  concurrency: fc.integer({ min: 1, max: 20 }),
  ratePerSecond: fc.integer({ min: 1, max: 20 }),
});

/** One simulated step: time advances, some in-flight items end, the plan starts some. */
const stepArb = fc.record({
  advanceMs: fc.integer({ min: 0, max: 700 }),
  endCount: fc.nat({ max: 10 }),
});

test('a running job never exceeds its concurrency, nor its rate over any one-second window', () => {
  fc.assert(
    fc.property(
      jobArb,
      fc.integer({ min: 0, max: 200 }),
      fc.array(stepArb, { maxLength: 60 }),
      (job, total, steps) => {
        let now = 0;
        let pending = total;
        let inFlight = 0;
        const starts: number[] = [];
        for (const step of steps) {
          now += step.advanceMs;
          inFlight -= Math.min(inFlight, step.endCount);
          const startedInWindow = starts.filter((t) => t > now - RATE_WINDOW_MS).length;
          const n = itemsToStart({ ...job, state: 'running' }, { pending, inFlight, startedInWindow });
          assert.ok(Number.isInteger(n) && n >= 0 && n <= pending);
          for (let i = 0; i < n; i++) starts.push(now);
          pending -= n;
          inFlight += n;
          assert.ok(inFlight <= job.concurrency, `in flight ${inFlight} > ${job.concurrency}`);
        }
        // Every window of one second holds at most ratePerSecond starts.
        for (const t of starts) {
          const inWindow = starts.filter((s) => s >= t && s < t + RATE_WINDOW_MS).length;
          assert.ok(
            inWindow <= job.ratePerSecond,
            `${inWindow} starts within a second > ${job.ratePerSecond}`,
          );
        }
      },
    ),
  );
});

test('a paused, cancelled or completed job starts nothing', () => {
  const stopped: BulkJobState[] = ['paused', 'cancelled', 'completed'];
  fc.assert(
    fc.property(
      jobArb,
      fc.constantFrom(...stopped),
      fc.nat({ max: 1000 }),
      fc.nat({ max: 30 }),
      fc.nat({ max: 30 }),
      (job, state, pending, inFlight, startedInWindow) => {
        assert.equal(itemsToStart({ ...job, state }, { pending, inFlight, startedInWindow }), 0);
      },
    ),
  );
});

test('a running job with room starts something, until nothing is pending', () => {
  fc.assert(
    fc.property(jobArb, fc.integer({ min: 1, max: 1000 }), (job, pending) => {
      const n = itemsToStart({ ...job, state: 'running' }, { pending, inFlight: 0, startedInWindow: 0 });
      assert.equal(n, Math.min(pending, job.concurrency, job.ratePerSecond));
    }),
  );
  assert.equal(isFinished({ pending: 0, inFlight: 0 }), true);
  assert.equal(isFinished({ pending: 0, inFlight: 1 }), false);
});
