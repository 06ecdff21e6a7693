/**
 * The Device API's batch poll (issue "Fleet scale", item 2): POST /device/v1/poll takes up to
 * 1000 EIDs and answers only those with messages; EIDs are checked like the other device routes
 * (a bad one refuses the whole call and changes nothing); a batch poll marks a permission
 * delivered like the single poll does. Also the device agent's HTTP `pollMany`. On SQLite and on
 * PostgreSQL (skipped without DATABASE_URL). Then `handover device run --batch` as a process,
 * serving a chip farm through a whole port-in (SQLite).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { serveFarm } from '../src/chip/farm/farm-server.ts';
import { createFarm } from '../src/chip/farm/sqlite-farm-store.ts';
import { spawnHandover } from '../src/demo/child.ts';
import { httpSmEndpoints } from '../src/device/http-endpoints.ts';
import { decodeMessage } from '../src/protocol/asn1/decode-any.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import {
  ALPHA,
  BETA,
  backendSkip,
  type CallResult,
  createHttpWorld,
  eventually,
  type HttpWorld,
  idem,
  type SmClient,
  SQL_BACKENDS,
  smClient,
  testOn,
} from './support/http-world.ts';

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const codeOf = (r: CallResult): string | undefined =>
  (r.json as { error?: { code?: string } } | undefined)?.error?.code;

for (const backend of SQL_BACKENDS) {
  describe(`device API batch poll over HTTPS (${backend})`, () => {
    const it = testOn(backend);
    let world: HttpWorld;
    const now = new Date(Date.now() + 60_000);
    let device: SmClient;
    let operator: SmClient;

    before(async () => {
      if (backendSkip(backend) !== undefined) return;
      world = await createHttpWorld({
        backend,
        sms: [
          { smId: ALPHA, operators: [{ id: 'mno-a' }] },
          { smId: BETA, operators: [{ id: 'mno-b' }] },
        ],
        clock: () => now,
      });
      device = smClient(world, ALPHA);
      operator = smClient(world, ALPHA, { operator: 'mno-a' });
    });
    after(() => world?.close());

    it('refuses bad bodies with stable codes and changes nothing', async () => {
      const good = world.eid(6000);
      for (const [body, code] of [
        [{}, 'InvalidInput'],
        [{ eids: [] }, 'InvalidInput'],
        [{ eids: ['123'] }, 'InvalidInput'],
        [{ eids: [good, '1'.repeat(32)] }, 'InvalidInput'],
        [{ eids: Array.from({ length: 1001 }, () => good) }, 'InvalidInput'],
        [{ eids: [good], extra: 1 }, 'InvalidInput'],
        ['[1,2', 'MalformedJson'],
      ] as const) {
        const before = await world.get(ALPHA).dump();
        const r = await device.call('/device/v1/poll', { body });
        assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
        assert.equal(codeOf(r), code, r.text);
        assert.deepEqual(await world.get(ALPHA).dump(), before);
      }
    });

    it('answers only the chips with messages, and marks a permission delivered', async () => {
      const chip = createHttpTestChip(world.pki, world.eid(6001), ALPHA);
      const quiet = createHttpTestChip(world.pki, world.eid(6002), ALPHA);
      for (const c of [chip, quiet]) {
        const r = await operator.call('/v1/chips', { headers: idem(), body: await c.registration() });
        assert.equal(r.status, 201, r.text);
      }
      const released = await operator.call('/v1/releases', {
        headers: idem(),
        body: { eid: chip.eid, newSmId: BETA },
      });
      const transfer = released.json as { id: string; state: string };
      assert.equal(transfer.state, 'permitted');

      const r = await device.call('/device/v1/poll', {
        body: { eids: [chip.eid, quiet.eid, world.eid(6003)] },
      });
      assert.equal(r.status, 200, r.text);
      const messages = (r.json as { messages: Record<string, string[]> }).messages;
      assert.deepEqual(Object.keys(messages), [chip.eid]);
      assert.equal(messages[chip.eid]!.length, 1);
      assert.equal(decodeMessage(bytes(messages[chip.eid]![0]!)).type, 'TransferPermissionMessage');
      const t = (await operator.call(`/v1/transfers/${transfer.id}`)).json as { state: string };
      assert.equal(t.state, 'delivered');

      // The same through the device agent's HTTP endpoints (the same message, still on offer).
      const sms = httpSmEndpoints([world.identity(ALPHA).caPem]);
      assert.ok(sms.pollMany);
      const polled = await sms.pollMany(world.urlOf(ALPHA), [quiet.eid, chip.eid]);
      assert.deepEqual([...polled.keys()], [chip.eid]);
      assert.deepEqual(polled.get(chip.eid), [bytes(messages[chip.eid]![0]!)]);
    });
  });
}

describe('`handover device run --batch` (chip farm, SQLite)', () => {
  test('moves every chip of a farm from alpha to beta and keeps the new homes', async (t) => {
    const world = await createHttpWorld({
      backend: 'sqlite',
      sms: [
        { smId: ALPHA, operators: [{ id: 'mno-a' }] },
        { smId: BETA, operators: [{ id: 'mno-b' }] },
      ],
      outboxMs: 20,
    });
    t.after(() => world.close());
    const dir = mkdtempSync(join(tmpdir(), 'handover-batch-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));

    const farm = await createFarm({
      pki: world.pki,
      count: 3,
      smId: ALPHA,
      path: join(dir, 'farm.sqlite'),
      synchronous: 'normal',
    });
    const chips = [...farm.identities()];
    const served = serveFarm(farm);
    await new Promise<void>((r) => served.server.listen(0, '127.0.0.1', r));
    t.after(async () => {
      await served.close();
      farm.close();
    });
    const { port } = served.server.address() as AddressInfo;

    const alpha = smClient(world, ALPHA, { operator: 'mno-a' });
    const beta = smClient(world, BETA, { operator: 'mno-b' });
    const orders: string[] = [];
    for (const c of chips) {
      const r = await alpha.call('/v1/chips', {
        headers: idem(),
        body: { chipCertificate: c.chipCertificate, eumCertificate: c.eumCertificate },
      });
      assert.equal(r.status, 201, r.text);
      const o = await beta.call('/v1/port-ins', {
        headers: idem(),
        body: { eid: c.eid, currentSmId: ALPHA, ask: true },
      });
      assert.equal(o.status, 201, o.text);
      orders.push((o.json as { transfer: { id: string } }).transfer.id);
    }
    // The asks travel through beta's outbox; the agent stops at its first idle sweep.
    for (const id of orders) {
      await eventually(async () => {
        const s = ((await beta.call(`/v1/transfers/${id}`)).json as { state: string }).state;
        return s === 'permitted' ? s : undefined;
      });
    }

    const eids = join(dir, 'eids.csv');
    writeFileSync(eids, `eid,note\n${chips.map((c) => `${c.eid},x`).join('\n')}\n`);
    const ca = join(dir, 'ci.pem');
    writeFileSync(ca, world.identity(ALPHA).caPem);
    const homes = join(dir, 'homes.jsonl');
    const out: Record<string, unknown>[] = [];
    const agent = spawnHandover(
      'agent',
      [
        'device',
        'run',
        '--batch',
        '--farm',
        `127.0.0.1:${port}`,
        '--eids',
        eids,
        '--sm',
        world.urlOf(ALPHA),
        '--ca',
        ca,
        '--homes',
        homes,
        '--concurrency',
        '2',
        '--interval',
        '20',
        '--until-idle',
      ],
      process.env,
      (v) => out.push(v),
    );
    t.after(() => agent.stop());
    const done = await agent.waitFor<{ handovers: number; failed: number }>((v) => v.done === true, 30_000);
    assert.equal(done.handovers, 3, JSON.stringify(out));
    assert.equal(done.failed, 0);
    for (const id of orders) {
      const s = ((await beta.call(`/v1/transfers/${id}`)).json as { state: string }).state;
      assert.equal(s, 'completed');
    }
    // Per chip: the HandoverCommand kept before it went to the chip, then the new home with
    // nothing held, in that order.
    const kept = readFileSync(homes, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { eid: string; sm: string; held: { address: string } | null });
    for (const chip of chips) {
      const lines = kept.filter((h) => h.eid === chip.eid);
      assert.deepEqual(
        lines.map((h) => [h.sm, h.held?.address ?? null]),
        [
          [world.urlOf(ALPHA), world.urlOf(BETA)],
          [world.urlOf(BETA), null],
        ],
      );
    }
  });
});
