/**
 * The device API over HTTPS (issue "SM services", item 2): no credentials, signed payloads, bad
 * bytes refused with stable codes and no state change, and the cancellation path of §6.6 driven
 * by the expiry loop: an expired, delivered permission is withdrawn with a signed CancelPermission
 * and the chip's signed answer ends the transfer. On SQLite and on PostgreSQL (skipped without
 * DATABASE_URL).
 */
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
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

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const codeOf = (r: CallResult): string | undefined =>
  (r.json as { error?: { code?: string } } | undefined)?.error?.code;

for (const backend of SQL_BACKENDS) {
  describe(`device API over HTTPS (${backend})`, () => {
    const it = testOn(backend);
    let world: HttpWorld;
    // Ahead of real time, so that chip certificates issued during the tests are already valid.
    let now = new Date(Date.now() + 60_000);
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
        expireMs: 50,
      });
      device = smClient(world, ALPHA);
      operator = smClient(world, ALPHA, { operator: 'mno-a' });
    });
    after(() => world?.close());

    it('polling: no credentials; an unknown chip has no messages; a malformed EID is refused', async () => {
      const r = await device.call(`/device/v1/chips/${world.eid(5000)}/messages`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { messages: [] });
      const bad = await device.call('/device/v1/chips/123/messages');
      assert.equal(bad.status, 400);
      assert.equal(codeOf(bad), 'InvalidInput');
      const checksum = await device.call(`/device/v1/chips/${'1'.repeat(32)}/messages`);
      assert.equal(checksum.status, 400);
      assert.equal(codeOf(checksum), 'InvalidInput');
    });

    it('bad bytes on every post are refused with a stable code and change nothing', async () => {
      const garbage = b64(new TextEncoder().encode('not DER at all'));
      for (const path of [
        '/device/v1/transfer-requests',
        '/device/v1/handover-results',
        '/device/v1/chip-results',
      ]) {
        for (const [body, status, code] of [
          [{ message: 'no*base64' }, 400, 'MalformedBase64'],
          [{ message: garbage }, 400, 'MalformedMessage'],
          [{ message: '' }, 400, 'InvalidInput'],
          [{}, 400, 'InvalidInput'],
          ['[1,2', 400, 'MalformedJson'],
        ] as const) {
          const before = await world.get(BETA).dump();
          const r = await smClient(world, BETA).call(path, { body });
          assert.equal(r.status, status, `${path} ${JSON.stringify(body)}: ${r.text}`);
          assert.equal(codeOf(r), code, `${path}: ${r.text}`);
          assert.deepEqual(await world.get(BETA).dump(), before);
        }
      }
    });

    it('a transfer request for a permission the new SM never heard of is refused', async () => {
      const chip = createHttpTestChip(world.pki, world.eid(5001), ALPHA);
      await operator.call('/v1/chips', { headers: idem(), body: await chip.registration() });
      // Released to beta with no order at beta: the request matches nothing there.
      await operator.call('/v1/releases', {
        headers: idem(),
        body: { eid: chip.eid, newSmId: BETA, activationCode: 'AC' },
      });
      const polled = (await device.call(`/device/v1/chips/${chip.eid}/messages`)).json as {
        messages: string[];
      };
      const request = await chip.send(bytes(polled.messages[0]!));
      const before = await world.get(BETA).dump();
      const r = await smClient(world, BETA).call('/device/v1/transfer-requests', {
        body: { message: b64(request) },
      });
      assert.equal(r.status, 422, r.text);
      assert.equal(codeOf(r), 'NoMatchingOrder');
      assert.deepEqual(await world.get(BETA).dump(), before);
    });

    it('an expired, delivered permission is cancelled; the chip-signed answer ends the transfer', async () => {
      const chip = createHttpTestChip(world.pki, world.eid(5002), ALPHA);
      await operator.call('/v1/chips', { headers: idem(), body: await chip.registration() });
      const released = await operator.call('/v1/releases', {
        headers: idem(),
        body: { eid: chip.eid, newSmId: BETA },
      });
      const transfer = released.json as { id: string };
      const first = (await device.call(`/device/v1/chips/${chip.eid}/messages`)).json as {
        messages: string[];
      };
      assert.equal(decodeMessage(await chip.send(bytes(first.messages[0]!))).type, 'TransferRequest');

      now = new Date(now.getTime() + 25 * 3_600_000);
      const cancel = await eventually(async () => {
        const r = (await device.call(`/device/v1/chips/${chip.eid}/messages`)).json as { messages: string[] };
        return r.messages.map(bytes).find((m) => decodeMessage(m).type === 'CancelPermission');
      });
      const answer = await chip.send(cancel);
      assert.equal(decodeMessage(answer).type, 'ChipResult');
      const r = await device.call('/device/v1/chip-results', {
        body: { message: b64(answer) },
        // Device calls need no credentials; any that come along are ignored.
        headers: { authorization: 'Bearer whatever' },
      });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {
        effect: 'cancelled',
        outcome: 'ok',
        transferId: transfer.id,
        state: 'cancelled',
      });
      const t = (await operator.call(`/v1/transfers/${transfer.id}`)).json as { state: string };
      assert.equal(t.state, 'cancelled');
      // The same answer again: no second effect.
      const again = await device.call('/device/v1/chip-results', { body: { message: b64(answer) } });
      assert.equal((again.json as { effect: string }).effect, 'unchanged');
    });
  });
}
