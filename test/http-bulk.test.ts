/**
 * Bulk transfers over the operator API (issue 4 item 1): a job releases several chips from alpha
 * to beta with bounded concurrency, the chips driven in-process over the device API as a device
 * agent would; the report counts the outcomes and names the failures. Pause, resume and cancel;
 * a job goes on after its SM restarts. On the memory store, SQLite and PostgreSQL (DATABASE_URL).
 */
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { createHttpTestChip, type HttpTestChip } from './support/http-chip.ts';
import {
  ALPHA,
  BETA,
  backendSkip,
  createHttpWorld,
  eventually,
  type HttpWorld,
  idem,
  type SmClient,
  type StoreBackend,
  smClient,
  testOn,
} from './support/http-world.ts';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

interface Counts {
  pending: number;
  started: number;
  completed: number;
  failed: number;
  skipped: number;
}
interface Status {
  job: { id: string; state: string; concurrency: number };
  counts: Counts;
  report: {
    total: number;
    finished: boolean;
    counts: Counts;
    failures: { eid: string; code: string; message: string }[];
  };
}

for (const backend of ['memory', 'sqlite', 'postgres'] as const satisfies readonly StoreBackend[]) {
  describe(`bulk transfers (${backend})`, () => {
    const test = testOn(backend);
    let world: HttpWorld;
    let serial = 7000;
    before(async () => {
      if (backendSkip(backend) !== undefined) return;
      world = await createHttpWorld({
        backend,
        sms: [
          { smId: ALPHA, operators: [{ id: 'mno-a' }] },
          { smId: BETA, operators: [{ id: 'mno-b' }] },
        ],
      });
    });
    after(() => world?.close());

    const alpha = (): SmClient => smClient(world, ALPHA, { operator: 'mno-a' });
    const beta = (): SmClient => smClient(world, BETA, { operator: 'mno-b' });

    /** Chips registered at alpha, each with an order at beta (with that code) waiting for the release. */
    async function chips(n: number, activationCode?: string): Promise<HttpTestChip[]> {
      const made: HttpTestChip[] = [];
      for (let i = 0; i < n; i++) {
        const chip = createHttpTestChip(world.pki, world.eid(serial++), ALPHA);
        const r = await alpha().call('/v1/chips', { headers: idem(), body: await chip.registration() });
        assert.equal(r.status, 201, r.text);
        const o = await beta().call('/v1/port-ins', {
          headers: idem(),
          body: { eid: chip.eid, currentSmId: ALPHA, ask: false, ...(activationCode && { activationCode }) },
        });
        assert.equal(o.status, 201, o.text);
        made.push(chip);
      }
      return made;
    }

    /** Carries a chip's permission, if alpha has one for it, through the handover at beta. */
    async function drive(chip: HttpTestChip): Promise<boolean> {
      const polled = await smClient(world, ALPHA).call(`/device/v1/chips/${chip.eid}/messages`);
      const messages = (polled.json as { messages?: string[] }).messages ?? [];
      if (messages.length === 0) return false;
      const request = await chip.send(bytes(messages[0]!));
      const answered = await smClient(world, BETA).call('/device/v1/transfer-requests', {
        body: { message: b64(request) },
      });
      assert.equal(answered.status, 200, answered.text);
      const result = await chip.send(bytes((answered.json as { message: string }).message));
      const done = await smClient(world, BETA).call('/device/v1/handover-results', {
        body: { message: b64(result) },
      });
      assert.equal(done.status, 200, done.text);
      return true;
    }

    const status = async (id: string): Promise<Status> => {
      const r = await alpha().call(`/v1/bulk-transfers/${id}`);
      assert.equal(r.status, 200, r.text);
      return r.json as Status;
    };

    async function create(body: Record<string, unknown>): Promise<Status> {
      const r = await alpha().call('/v1/bulk-transfers', { headers: idem(), body });
      assert.equal(r.status, 201, r.text);
      return r.json as Status;
    }

    /** Drives every chip until the job is finished; checks the concurrency bound on the way. */
    async function runToEnd(id: string, all: HttpTestChip[], concurrency: number): Promise<Status> {
      const done = new Set<string>();
      return eventually(
        async () => {
          const s = await status(id);
          assert.ok(s.counts.started <= concurrency, `started ${s.counts.started} > ${concurrency}`);
          if (s.job.state === 'completed') return s;
          for (const chip of all) if (!done.has(chip.eid) && (await drive(chip))) done.add(chip.eid);
          return undefined;
        },
        20_000,
        'the bulk job to complete',
      );
    }

    test('a bulk release runs every chip with bounded concurrency and ends with a report', async () => {
      const all = await chips(5);
      const stranger = world.eid(serial++); // valid, but not managed at alpha
      const created = await create({
        kind: 'release',
        eids: [...all.map((c) => c.eid), stranger],
        newSmId: BETA,
        concurrency: 2,
        ratePerSecond: 50,
      });
      assert.equal(created.job.state, 'running');
      assert.equal(created.report.total, 6);
      const end = await runToEnd(created.job.id, all, 2);
      assert.deepEqual(end.counts, { pending: 0, started: 0, completed: 5, failed: 1, skipped: 0 });
      assert.equal(end.report.finished, true);
      assert.deepEqual(
        end.report.failures.map((f) => [f.eid, f.code]),
        [[stranger, 'ChipNotManaged']],
      );
      for (const chip of all) assert.equal(chip.state().assignment.smId, BETA);

      const completed = await alpha().call(`/v1/bulk-transfers/${created.job.id}/items?state=completed`);
      assert.equal(completed.status, 200, completed.text);
      const items = (completed.json as { items: { eid: string; transferId?: string }[] }).items;
      assert.deepEqual(
        items.map((i) => i.eid),
        all.map((c) => c.eid),
      );
      assert.ok(items.every((i) => i.transferId !== undefined));
      // Query text is checked as the rest: no empty state, no fractional position.
      for (const q of ['state=', 'after=1.5', 'limit=0x10']) {
        const bad = await alpha().call(`/v1/bulk-transfers/${created.job.id}/items?${q}`);
        assert.equal(bad.status, 400, `${q}: ${bad.text}`);
        assert.equal((bad.json as { error: { code: string } }).error.code, 'InvalidInput');
      }

      // Finished: nothing more to pause.
      const late = await alpha().call(`/v1/bulk-transfers/${created.job.id}/pause`, {
        headers: idem(),
        body: {},
      });
      assert.equal(late.status, 409, late.text);
    });

    test('a bulk release with an activation code: each permission carries it, the orders match it', async () => {
      const all = await chips(3, 'FLEET-CODE-7');
      const created = await create({
        kind: 'release',
        eids: all.map((c) => c.eid),
        newSmId: BETA,
        concurrency: 3,
        ratePerSecond: 50,
        activationCode: 'FLEET-CODE-7',
      });
      assert.equal((created.job as { activationCode?: boolean }).activationCode, true);
      assert.ok(!JSON.stringify(created).includes('FLEET-CODE-7'), 'the code is never echoed');
      const end = await runToEnd(created.job.id, all, 3);
      assert.deepEqual(end.counts, { pending: 0, started: 0, completed: 3, failed: 0, skipped: 0 });
      for (const chip of all) assert.equal(chip.state().assignment.smId, BETA);
      const bad = await alpha().call('/v1/bulk-transfers', {
        headers: idem(),
        body: { kind: 'release', eids: [all[0]!.eid], newSmId: BETA, activationCode: 'x'.repeat(257) },
      });
      assert.equal(bad.status, 400, bad.text);
    });

    test('pause holds new starts, resume goes on, cancel skips what is pending', async () => {
      const all = await chips(4);
      const created = await create({
        kind: 'release',
        eids: all.map((c) => c.eid),
        newSmId: BETA,
        concurrency: 10,
        ratePerSecond: 1,
      });
      const id = created.job.id;
      const pauseKey = idem();
      const paused = await alpha().call(`/v1/bulk-transfers/${id}/pause`, { headers: pauseKey, body: {} });
      assert.equal(paused.status, 200, paused.text);
      assert.equal((paused.json as Status).job.state, 'paused');
      // The same key again replays the answer.
      const replay = await alpha().call(`/v1/bulk-transfers/${id}/pause`, { headers: pauseKey, body: {} });
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(replay.text, paused.text);

      const held = (await status(id)).counts;
      await new Promise((r) => setTimeout(r, 1300));
      assert.deepEqual((await status(id)).counts, held, 'a paused job starts nothing');

      const resumed = await alpha().call(`/v1/bulk-transfers/${id}/resume`, { headers: idem(), body: {} });
      assert.equal((resumed.json as Status).job.state, 'running');
      await eventually(async () => ((await status(id)).counts.started > held.started ? true : undefined));

      const cancelled = await alpha().call(`/v1/bulk-transfers/${id}/cancel`, { headers: idem(), body: {} });
      assert.equal(cancelled.status, 200, cancelled.text);
      const c = cancelled.json as Status;
      assert.equal(c.job.state, 'cancelled');
      assert.equal(c.counts.pending, 0);
      assert.ok(c.counts.skipped >= 1, cancelled.text);
      assert.equal(c.counts.started + c.counts.skipped + c.counts.failed + c.counts.completed, 4);

      const again = await alpha().call(`/v1/bulk-transfers/${id}/resume`, { headers: idem(), body: {} });
      assert.equal(again.status, 409, again.text);
      assert.equal((again.json as { error: { code: string } }).error.code, 'InvalidState');

      // Started transfers still run to their end and are counted.
      for (const chip of all) await drive(chip);
      const end = await eventually(async () => {
        const s = await status(id);
        return s.report.finished ? s : undefined;
      });
      assert.equal(end.counts.completed, c.counts.started);
    });

    test('a job goes on after its SM restarts', async () => {
      const all = await chips(4);
      const created = await create({
        kind: 'release',
        eids: all.map((c) => c.eid),
        newSmId: BETA,
        concurrency: 1,
        ratePerSecond: 20,
      });
      const id = created.job.id;
      // The first chip moves, then alpha stops with the rest of the job still to do.
      await eventually(async () => ((await drive(all[0]!)) ? true : undefined));
      await eventually(async () => ((await status(id)).counts.completed === 1 ? true : undefined));
      await world.restart(ALPHA);
      const before = await status(id);
      assert.equal(before.job.state, 'running');
      assert.ok(before.counts.pending >= 2, JSON.stringify(before.counts));
      const end = await runToEnd(id, all, 1);
      assert.deepEqual(end.counts, { pending: 0, started: 0, completed: 4, failed: 0, skipped: 0 });
    });

    test('a bulk port-in at the new SM asks the current SM for each chip and completes', async () => {
      const all: HttpTestChip[] = [];
      for (let i = 0; i < 2; i++) {
        const chip = createHttpTestChip(world.pki, world.eid(serial++), ALPHA);
        const r = await alpha().call('/v1/chips', { headers: idem(), body: await chip.registration() });
        assert.equal(r.status, 201, r.text);
        all.push(chip);
      }
      const r = await beta().call('/v1/bulk-transfers', {
        headers: idem(),
        body: { kind: 'portIn', eids: all.map((c) => c.eid), currentSmId: ALPHA, concurrency: 2 },
      });
      assert.equal(r.status, 201, r.text);
      const id = (r.json as Status).job.id;
      const done = new Set<string>();
      const end = await eventually(
        async () => {
          const s = (await beta().call(`/v1/bulk-transfers/${id}`)).json as Status;
          if (s.job.state === 'completed') return s;
          for (const chip of all) if (!done.has(chip.eid) && (await drive(chip))) done.add(chip.eid);
          return undefined;
        },
        20_000,
        'the bulk port-in to complete',
      );
      assert.deepEqual(end.counts, { pending: 0, started: 0, completed: 2, failed: 0, skipped: 0 });
      // The job is beta's operator's: alpha's does not see it.
      assert.equal((await alpha().call(`/v1/bulk-transfers/${id}`)).status, 404);
    });

    test('a large list (10,000 EIDs, over the default body limit) is taken, then cancelled', async () => {
      const eids = Array.from({ length: 10_000 }, (_, i) => world.eid(100_000 + i));
      const created = await create({ kind: 'release', eids, newSmId: BETA, ratePerSecond: 1 });
      assert.equal(created.report.total, 10_000);
      const r = await alpha().call(`/v1/bulk-transfers/${created.job.id}/cancel`, {
        headers: idem(),
        body: {},
      });
      assert.equal(r.status, 200, r.text);
      const c = (r.json as Status).counts;
      assert.equal(c.pending, 0);
      assert.equal(c.skipped + c.failed + c.started, 10_000);
    });

    test('refusals: unknown job, invalid EIDs, missing SM', async () => {
      const unknown = await alpha().call('/v1/bulk-transfers/bulk_nope');
      assert.equal(unknown.status, 404, unknown.text);
      assert.equal((unknown.json as { error: { code: string } }).error.code, 'UnknownBulkJob');
      const other = await smClient(world, BETA, { operator: 'mno-b' }).call('/v1/bulk-transfers/bulk_nope');
      assert.equal(other.status, 404);
      const bad = await alpha().call('/v1/bulk-transfers', {
        headers: idem(),
        body: { kind: 'release', eids: [world.eid(1), '123', world.eid(1)], newSmId: BETA },
      });
      assert.equal(bad.status, 400, bad.text);
      const details = (bad.json as { error: { details: { invalid: { index: number }[] } } }).error.details;
      assert.deepEqual(
        details.invalid.map((p) => p.index),
        [1, 2],
      );
      const noSm = await alpha().call('/v1/bulk-transfers', {
        headers: idem(),
        body: { kind: 'portIn', eids: [world.eid(1)], newSmId: BETA },
      });
      assert.equal(noSm.status, 400, noSm.text);
    });
  });
}
