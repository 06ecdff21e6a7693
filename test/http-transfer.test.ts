/**
 * A complete port-in between two SMs over HTTPS (issue "SM services", items 2-5, 7), on P-256
 * and on brainpoolP256r1: the new MNO orders at the new SM, the TransferAsk and the Completed go
 * SM to SM over mutual TLS from the outbox loop, and the test carries the chip's bytes over the
 * device API as a device agent would, the chip itself driven in-process over APDUs. P-256 runs
 * on SQLite and PostgreSQL, brainpoolP256r1 on the memory store.
 */
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { decodeMessage } from '../src/protocol/asn1/decode-any.ts';
import { decodeTransferPermissionMessage } from '../src/protocol/asn1/permission.ts';
import type { Curve } from '../src/protocol/crypto/curves.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import {
  ALPHA,
  BETA,
  backendSkip,
  createHttpWorld,
  eventually,
  type HttpWorld,
  idem,
  type StoreBackend,
  smClient,
  testOn,
} from './support/http-world.ts';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

interface Transfer {
  id: string;
  state: string;
  direction: string;
  permissionId?: string;
  peerSmId: string;
}

/** P-256 on both SQL stores; brainpool (TLS 1.2, another curve end to end) on the memory store. */
const VARIANTS: readonly { curve: Curve; backend: StoreBackend }[] = [
  { curve: 'p256', backend: 'sqlite' },
  { curve: 'p256', backend: 'postgres' },
  { curve: 'brainpoolP256r1', backend: 'memory' },
];

for (const { curve, backend } of VARIANTS) {
  describe(`a port-in between two HTTPS SMs on ${curve} (${backend})`, () => {
    const test = testOn(backend);
    let world: HttpWorld;
    before(async () => {
      if (backendSkip(backend) !== undefined) return;
      world = await createHttpWorld({
        curve,
        backend,
        sms: [
          { smId: ALPHA, operators: [{ id: 'mno-a' }] },
          { smId: BETA, operators: [{ id: 'mno-b' }] },
        ],
      });
    });
    after(() => world?.close());

    test('completes: ask and completion over mTLS, chip bytes over the device API', async () => {
      const alpha = smClient(world, ALPHA, { operator: 'mno-a' });
      const beta = smClient(world, BETA, { operator: 'mno-b' });
      const alphaDevice = smClient(world, ALPHA);
      const betaDevice = smClient(world, BETA);
      const chip = createHttpTestChip(world.pki, world.eid(1), ALPHA);

      // The current MNO registers the chip, its chain read from the chip itself.
      const registered = await alpha.call('/v1/chips', { headers: idem(), body: await chip.registration() });
      assert.equal(registered.status, 201, registered.text);
      assert.equal((registered.json as { curve: string }).curve, curve);

      // The new MNO orders the port-in; the ask goes to alpha from beta's outbox, over mTLS.
      const order = await beta.call('/v1/port-ins', {
        headers: idem(),
        body: { eid: chip.eid, currentSmId: ALPHA, activationCode: 'AC-1' },
      });
      assert.equal(order.status, 201, order.text);
      const incoming = (order.json as { transfer: Transfer }).transfer;
      assert.equal(incoming.state, 'ordered');
      await eventually(
        async () => {
          const t = (await beta.call(`/v1/transfers/${incoming.id}`)).json as Transfer;
          return t.state === 'permitted' ? t : undefined;
        },
        5000,
        'the ask to be accepted',
      );

      // The device polls the current SM and hands the permission to the chip.
      const polled = await alphaDevice.call(`/device/v1/chips/${chip.eid}/messages`);
      assert.equal(polled.status, 200, polled.text);
      const messages = (polled.json as { messages: string[] }).messages;
      assert.equal(messages.length, 1);
      const permission = bytes(messages[0]!);
      const pm = decodeTransferPermissionMessage(permission);
      assert.equal(pm.permission.data.newSmAddress, world.get(BETA).url);
      const request = await chip.send(permission);
      assert.equal(decodeMessage(request).type, 'TransferRequest');

      // The transfer request goes to the new SM named in the permission; its command to the chip.
      const answered = await betaDevice.call('/device/v1/transfer-requests', {
        body: { message: b64(request) },
      });
      assert.equal(answered.status, 200, answered.text);
      const command = bytes((answered.json as { message: string }).message);
      assert.equal(decodeMessage(command).type, 'HandoverCommand');
      const result = await chip.send(command);
      assert.equal(decodeMessage(result).type, 'HandoverResult');
      assert.equal(chip.state().assignment.smId, BETA);

      const done = await betaDevice.call('/device/v1/handover-results', { body: { message: b64(result) } });
      assert.equal(done.status, 200, done.text);
      assert.deepEqual(done.json, { transferId: incoming.id, state: 'completed' });

      // The Completed reaches the current SM over mTLS: it releases the chip.
      const outgoing = await eventually(
        async () => {
          const list = (await alpha.call(`/v1/transfers?eid=${chip.eid}`)).json as { transfers: Transfer[] };
          const t = list.transfers[0];
          return t?.state === 'completed' ? t : undefined;
        },
        5000,
        'the current SM to complete',
      );
      assert.equal(outgoing.direction, 'outgoing');
      assert.equal(outgoing.permissionId, Buffer.from(pm.permission.data.permissionId).toString('hex'));
      const gone = await alpha.call(`/v1/chips/${chip.eid}`);
      assert.equal(gone.status, 404);
      assert.equal((gone.json as { error: { code: string } }).error.code, 'ChipNotManaged');
      const adopted = await beta.call(`/v1/chips/${chip.eid}`);
      assert.equal(adopted.status, 200);
      assert.equal((adopted.json as { status: string; keysetVersion: number }).status, 'managed');

      // The new SM reads the current SM's side over the peer API (TLS 1.2 with brainpool).
      const status = await smClient(world, ALPHA, { peer: BETA }).call(`/peer/v1/transfers/${outgoing.id}`);
      assert.equal(status.status, 200, status.text);
      assert.deepEqual(
        { ...(status.json as Record<string, unknown>), updatedAt: undefined },
        {
          transferId: outgoing.id,
          role: 'currentSm',
          eid: chip.eid,
          state: 'completed',
          permissionId: outgoing.permissionId,
          peerTransferId: incoming.id,
          updatedAt: undefined,
        },
      );
      assert.equal(status.protocol, curve === 'brainpoolP256r1' ? 'TLSv1.2' : 'TLSv1.3');

      // The permission again, after the end: the chip refuses it (signed), the old SM records it.
      const refusal = await chip.send(permission);
      assert.equal(decodeMessage(refusal).type, 'ChipResult');
      const recorded = await alphaDevice.call('/device/v1/chip-results', { body: { message: b64(refusal) } });
      assert.equal(recorded.status, 200, recorded.text);
      assert.equal((recorded.json as { effect: string }).effect, 'unchanged');

      // The audit trail of both sides names the steps.
      const audit = (await alpha.call(`/v1/audit?eid=${chip.eid}`)).json as { entries: { action: string }[] };
      assert.ok(audit.entries.some((e) => e.action === 'chipRegistered'));
      assert.ok(audit.entries.length >= 3);
    });
  });
}
