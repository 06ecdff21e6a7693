import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { Conn } from './conn.ts';
import { prepared } from './prepared.ts';
import { tempSqlite } from './testing.ts';

describe('prepared', () => {
  it('binds each call by parameter name, builds once per key list, and keeps the query constants', async () => {
    const temp = tempSqlite();
    const store = await temp.open();
    try {
      let builds = 0;
      const byEid = prepared((db, p: { eid: string; state: string }) => {
        builds++;
        return db
          .selectFrom('orders')
          .select(['eid', 'state'])
          .where('state', '=', p.state)
          .where('eid', '=', p.eid)
          .where('operator_id', 'in', ['op', 'op2'])
          .limit(5);
      });
      const counts = await store.db.transaction().execute(async (trx) => {
        const c = new Conn(trx, 'sqlite');
        await sql`INSERT INTO orders (id, operator_id, eid, current_sm_id, ask, state, transfer_id, created_at, expires_at)
          VALUES ('o1', 'op', 'e1', 'sm', 1, 'open', 't1', 't', 't'),
                 ('o2', 'op', 'e2', 'sm', 1, 'closed', 't2', 't', 't'),
                 ('o3', 'op3', 'e1', 'sm', 1, 'open', 't3', 't', 't')`.execute(trx);
        const open = await byEid<{ eid: string }>(c, { eid: 'e1', state: 'open' });
        const wrongState = await byEid(c, { eid: 'e2', state: 'open' });
        // Another key order is another plan, bound by name all the same.
        const reordered = await byEid<{ eid: string }>(c, { state: 'closed', eid: 'e2' });
        return { open: open.rows, wrongState: wrongState.rows, reordered: reordered.rows };
      });
      // o3 has the same EID and state, but its operator is not among the query's constants.
      assert.deepEqual(counts.open, [{ eid: 'e1', state: 'open' }]);
      assert.deepEqual(counts.wrongState, []);
      assert.deepEqual(counts.reordered, [{ eid: 'e2', state: 'closed' }]);
      assert.equal(builds, 2);
    } finally {
      await store.close();
      temp.remove();
    }
  });

  it('refuses a builder that does not use a parameter as a bound value', async () => {
    const temp = tempSqlite();
    const store = await temp.open();
    try {
      const unused = prepared((db, _p: { eid: string }) => db.selectFrom('orders').select('eid'));
      await assert.rejects(
        store.db.connection().execute((db) => unused(new Conn(db, 'sqlite'), { eid: 'e1' })),
        /parameter eid is not a bound value/,
      );
    } finally {
      await store.close();
      temp.remove();
    }
  });
});
