/**
 * The IdempotencyStore contract (http/idempotency.ts) on memory, SQLite and PostgreSQL, and what
 * only the SQL one gives: keys that survive a reopen (a restart) and one winner when two stores
 * on one database race for a key.
 */
import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { sql } from 'kysely';
import { type IdempotencyStore, IN_PROGRESS_TTL_MS, MemoryIdempotencyStore } from '../../http/idempotency.ts';
import { MemoryStore } from '../memory.ts';
import { SqlIdempotencyStore, sqlIdempotencyStore } from './idempotency.ts';
import type { SqlStore } from './store.ts';
import { PG_SKIP, tempSchema, tempSqlite, testDatabaseUrl } from './testing.ts';

const T0 = new Date('2026-03-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const FP1 = 'a'.repeat(64);
const FP2 = 'b'.repeat(64);
const TTL = 3_600_000;

interface Backend {
  readonly name: string;
  readonly skip?: string;
  /** A fresh store of keys; `reopen` (SQL only) gives a new one on the same database. */
  open(): Promise<{
    keys: IdempotencyStore;
    reopen?: () => Promise<IdempotencyStore>;
    dispose(): Promise<void>;
  }>;
}

const memory: Backend = {
  name: 'memory',
  async open() {
    return { keys: new MemoryIdempotencyStore({ ttlMs: TTL }), dispose: async () => {} };
  },
};

function sqlBackend(name: string, skip: string | undefined, open: () => Promise<SqlDb>): Backend {
  return {
    name,
    ...(skip !== undefined && { skip }),
    async open() {
      const db = await open();
      let store = await db.open();
      return {
        keys: new SqlIdempotencyStore(store, { ttlMs: TTL }),
        async reopen() {
          await store.close();
          store = await db.open();
          return new SqlIdempotencyStore(store, { ttlMs: TTL });
        },
        dispose: () => db.dispose(store),
      };
    },
  };
}

interface SqlDb {
  open(): Promise<SqlStore>;
  dispose(last: SqlStore): Promise<void>;
}

const sqliteDb = async (): Promise<SqlDb> => {
  const file = tempSqlite();
  return {
    open: () => file.open(),
    async dispose(last) {
      await last.close();
      file.remove();
    },
  };
};

const postgresDb = async (): Promise<SqlDb> => {
  const url = testDatabaseUrl();
  if (url === undefined) throw new Error(PG_SKIP);
  const schema = tempSchema(url);
  return {
    open: () => schema.open({ poolSize: 3 }),
    async dispose(last) {
      await schema.drop(last as Awaited<ReturnType<typeof schema.open>>);
    },
  };
};

const BACKENDS: readonly Backend[] = [
  memory,
  sqlBackend('SQLite', undefined, sqliteDb),
  sqlBackend('PostgreSQL', testDatabaseUrl() === undefined ? PG_SKIP : undefined, postgresDb),
];

const record = (key: string, over: { fingerprint?: string; operatorId?: string; at?: Date } = {}) => ({
  operatorId: over.operatorId ?? 'op-a',
  key,
  fingerprint: over.fingerprint ?? FP1,
  statusCode: 201,
  body: '{"id":"x","note":"exactly as sent"}',
  createdAt: over.at ?? at(10),
});

for (const backend of BACKENDS) {
  describe(`idempotency keys: ${backend.name}`, () => {
    const it = (
      title: string,
      body: (s: Awaited<ReturnType<Backend['open']>>, t: TestContext) => Promise<void>,
    ) =>
      test(title, async (t) => {
        if (backend.skip !== undefined) {
          t.skip(backend.skip);
          return;
        }
        const s = await backend.open();
        try {
          await body(s, t);
        } finally {
          await s.dispose();
        }
      });

    it('a new key is reserved; its response is kept and given back', async ({ keys }) => {
      assert.deepEqual(await keys.begin('op-a', 'k1', FP1, T0), { kind: 'new' });
      assert.deepEqual(await keys.begin('op-a', 'k1', FP1, at(1)), { kind: 'inProgress', fingerprint: FP1 });
      assert.deepEqual(await keys.begin('op-a', 'k1', FP2, at(1)), { kind: 'inProgress', fingerprint: FP1 });
      await keys.complete(record('k1'));
      for (const fp of [FP1, FP2]) {
        assert.deepEqual(await keys.begin('op-a', 'k1', fp, at(20)), { kind: 'done', record: record('k1') });
      }
    });

    it('keys belong to their operator', async ({ keys }) => {
      assert.equal((await keys.begin('op-a', 'k', FP1, T0)).kind, 'new');
      assert.equal((await keys.begin('op-b', 'k', FP2, T0)).kind, 'new');
      await keys.complete(record('k', { operatorId: 'op-b', fingerprint: FP2 }));
      assert.equal((await keys.begin('op-a', 'k', FP1, at(20))).kind, 'inProgress');
      const b = await keys.begin('op-b', 'k', FP2, at(20));
      assert.equal(b.kind === 'done' && b.record.fingerprint, FP2);
    });

    it('release frees a reservation, never a kept response', async ({ keys }) => {
      await keys.begin('op-a', 'r', FP1, T0);
      await keys.release('op-a', 'r');
      assert.equal((await keys.begin('op-a', 'r', FP2, at(1))).kind, 'new');
      await keys.complete(record('r', { fingerprint: FP2 }));
      await keys.release('op-a', 'r');
      assert.equal((await keys.begin('op-a', 'r', FP2, at(20))).kind, 'done');
    });

    it('a reservation of a request that died, and a response past its time, count as absent', async ({
      keys,
    }) => {
      await keys.begin('op-a', 'dead', FP1, T0);
      assert.equal((await keys.begin('op-a', 'dead', FP2, at(IN_PROGRESS_TTL_MS - 1))).kind, 'inProgress');
      assert.deepEqual(await keys.begin('op-a', 'dead', FP2, at(IN_PROGRESS_TTL_MS + 1)), { kind: 'new' });

      await keys.begin('op-a', 'old', FP1, T0);
      await keys.complete(record('old'));
      assert.equal((await keys.begin('op-a', 'old', FP1, at(10 + TTL))).kind, 'done');
      assert.deepEqual(await keys.begin('op-a', 'old', FP2, at(10 + TTL + 1)), { kind: 'new' });
    });
  });
}

const sqlOnly = BACKENDS.filter((b) => b.name !== 'memory');
for (const backend of sqlOnly) {
  describe(`idempotency keys in the SQL store: ${backend.name}`, () => {
    test('kept responses and reservations survive a reopen (a restart)', async (t) => {
      if (backend.skip !== undefined) {
        t.skip(backend.skip);
        return;
      }
      const s = await backend.open();
      try {
        await s.keys.begin('op-a', 'done', FP1, T0);
        await s.keys.complete(record('done'));
        await s.keys.begin('op-a', 'running', FP2, T0);
        const again = await s.reopen!();
        assert.deepEqual(await again.begin('op-a', 'done', FP2, at(20)), {
          kind: 'done',
          record: record('done'),
        });
        assert.deepEqual(await again.begin('op-a', 'running', FP2, at(20)), {
          kind: 'inProgress',
          fingerprint: FP2,
        });
      } finally {
        await s.dispose();
      }
    });
  });
}

async function twoStores(
  t: TestContext,
  kind: 'SQLite' | 'PostgreSQL',
  body: (a: SqlStore, b: SqlStore) => Promise<void>,
): Promise<void> {
  if (kind === 'PostgreSQL' && testDatabaseUrl() === undefined) {
    t.skip(PG_SKIP);
    return;
  }
  const db = kind === 'SQLite' ? await sqliteDb() : await postgresDb();
  const a = await db.open();
  const b = await db.open();
  try {
    await body(a, b);
  } finally {
    await b.close();
    await db.dispose(a);
  }
}

for (const kind of ['SQLite', 'PostgreSQL'] as const) {
  test(`idempotency keys, ${kind}: of two stores racing for one key exactly one reserves it`, async (t) => {
    await twoStores(t, kind, async (a, b) => {
      const ka = sqlIdempotencyStore(a)!;
      const kb = sqlIdempotencyStore(b)!;
      for (let i = 0; i < 10; i++) {
        const results = await Promise.all([
          ka.begin('op-a', `race-${i}`, FP1, T0),
          kb.begin('op-a', `race-${i}`, FP1, T0),
          ka.begin('op-a', `race-${i}`, FP1, T0),
        ]);
        assert.equal(results.filter((r) => r.kind === 'new').length, 1, JSON.stringify(results));
      }
    });
  });

  test(`idempotency keys, ${kind}: expired rows are swept`, async (t) => {
    await twoStores(t, kind, async (a) => {
      const keys = new SqlIdempotencyStore(a, { ttlMs: TTL });
      await keys.begin('op-a', 'gone', FP1, T0);
      await keys.complete(record('gone'));
      await keys.begin('op-a', 'kept', FP1, at(TTL));
      const later = new SqlIdempotencyStore(a, { ttlMs: TTL });
      await later.begin('op-a', 'trigger', FP1, at(TTL + 20));
      const rows = await sql<{ key: string }>`SELECT key FROM idempotency_keys ORDER BY key`.execute(a.db);
      assert.deepEqual(
        rows.rows.map((r) => r.key),
        ['kept', 'trigger'],
      );
    });
  });
}

test('sqlIdempotencyStore: only for SQL stores', () => {
  assert.equal(sqlIdempotencyStore(new MemoryStore()), undefined);
});
