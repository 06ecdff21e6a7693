/** Helpers for the SQL stores' group-commit tests (sqlite.test.ts, postgres.test.ts). */
import assert from 'node:assert/strict';
import { findAuditBreak } from '../../audit-chain.ts';
import { T0 } from '../contract.ts';
import type { AuditEntry, StoreTx } from '../types.ts';

interface TransactionRunner {
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
}

export const append = (tx: StoreTx, action: string): Promise<AuditEntry> =>
  tx.appendAudit({ at: T0, actor: 'system', action, details: {} });

/** Queues `fns` in one turn of the event loop: one group, one database transaction. */
export function oneGroup<T>(
  store: TransactionRunner,
  fns: ((tx: StoreTx) => Promise<T>)[],
): Promise<PromiseSettledResult<T>[]> {
  return Promise.allSettled(fns.map((fn) => store.transaction(fn)));
}

/** The audit log is one unbroken chain of exactly `actions`, seq 1 onwards. */
export async function assertChain(
  store: TransactionRunner,
  actions: readonly string[],
): Promise<AuditEntry[]> {
  const entries = await store.transaction((tx) => tx.listAudit());
  assert.equal(findAuditBreak(entries), undefined);
  assert.deepEqual(
    entries.map((e) => [e.seq, e.action]),
    actions.map((a, i) => [i + 1, a]),
  );
  return entries;
}

/**
 * One group of four store transactions: the first and the third append and then fail, the
 * second and the fourth append and commit. Asserts that the two kept appends got seq 1 and 2.
 */
export async function groupWithRollbacks(store: TransactionRunner): Promise<void> {
  const failed = new Error('failed after appending');
  const results = await oneGroup(store, [
    // The first of the group fails: the next one reads the head itself.
    async (tx) => {
      await append(tx, 'lost1');
      throw failed;
    },
    (tx) => append(tx, 'kept1'),
    async (tx) => {
      await append(tx, 'lost2');
      await append(tx, 'lost3');
      throw failed;
    },
    (tx) => append(tx, 'kept2'),
  ]);
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value.seq : r.reason)),
    [failed, 1, failed, 2],
  );
}
