/**
 * The peer API over mutual TLS and the HttpPeerTransport (issue "SM services", items 2-4, 7):
 * who may call (a configured peer whose SM certificate validates under our CI), what a caller may
 * see (only transfers it is part of), malformed messages, and how the transport reports outcomes
 * to the outbox (a typed 4xx is final, anything else is retried). The peer API runs on SQLite and
 * on PostgreSQL (skipped without DATABASE_URL); the transport, which has no store of its own, on
 * the memory store.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { HandoverError } from '../src/protocol/errors.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';
import { serverTlsOptions } from '../src/sm/http/tls.ts';
import { HttpPeerTransport } from '../src/sm/http-peer-transport.ts';
import type { PeerOutboxItem } from '../src/sm/store/types.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import {
  ALPHA,
  BETA,
  backendSkip,
  type CallResult,
  createHttpWorld,
  eventually,
  freePort,
  GAMMA,
  type HttpWorld,
  idem,
  SQL_BACKENDS,
  smClient,
  tempDir,
  testOn,
  tlsIdentityOf,
} from './support/http-world.ts';

const DOWN = 'sm-down.example';

interface ErrorJson {
  error: { code: string; message: string; details: Record<string, unknown> };
}
const codeOf = (r: CallResult): string | undefined => (r.json as ErrorJson | undefined)?.error?.code;

function refused(r: CallResult, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(codeOf(r), code, r.text);
}

for (const backend of SQL_BACKENDS) {
  describe(`peer API over mutual TLS (${backend})`, () => {
    const it = testOn(backend);
    let world: HttpWorld;
    let otherCi: ReturnType<typeof tempDir>;
    let serial = 200;
    const registerAtAlpha = async () => {
      const chip = createHttpTestChip(world.pki, world.eid(serial++), ALPHA);
      const r = await smClient(world, ALPHA, { operator: 'mno-a' }).call('/v1/chips', {
        headers: idem(),
        body: await chip.registration(),
      });
      assert.equal(r.status, 201, r.text);
      return chip;
    };
    const alphaDump = () => world.get(ALPHA).dump();

    before(async () => {
      if (backendSkip(backend) !== undefined) return;
      world = await createHttpWorld({
        backend,
        sms: [
          { smId: ALPHA, operators: [{ id: 'mno-a' }], peers: [BETA] },
          { smId: BETA, operators: [{ id: 'mno-b' }], peers: [ALPHA, GAMMA, DOWN] },
          { smId: GAMMA, operators: [{ id: 'mno-c' }], peers: [BETA] },
        ],
        extraSmIds: [DOWN],
      });
      otherCi = tempDir('handover-other-ci-');
    });
    after(async () => {
      await world?.close();
      otherCi?.remove();
    });

    it('no client certificate: 401 ClientCertificateRequired, before the body is even read', async () => {
      const before = await alphaDump();
      const anonymous = smClient(world, ALPHA);
      refused(
        await anonymous.call('/peer/v1/messages', { body: '{not json' }),
        401,
        'ClientCertificateRequired',
      );
      refused(await anonymous.call('/peer/v1/transfers/tr_x'), 401, 'ClientCertificateRequired');
      // An operator token is no substitute.
      refused(
        await smClient(world, ALPHA, { operator: 'mno-a' }).call('/peer/v1/messages', {
          body: { type: 'AskOutcome', askId: 'x', eid: world.eid(1), outcome: 'rejected' },
        }),
        401,
        'ClientCertificateRequired',
      );
      assert.deepEqual(await alphaDump(), before);
    });

    it('a certificate of another CI: 403 PeerNotAuthorised, before any handler runs', async () => {
      const chip = await registerAtAlpha();
      const foreign = createDevPki({ curve: 'p256', dir: otherCi.dir, smIds: [BETA] });
      const before = await alphaDump();
      const r = await smClient(world, ALPHA).call('/peer/v1/messages', {
        clientIdentity: tlsIdentityOf(foreign, BETA),
        body: { type: 'TransferAsk', askId: 'ask-1', eid: chip.eid },
      });
      refused(r, 403, 'PeerNotAuthorised');
      assert.ok(
        ['unknownIssuer', 'badSignature'].includes(String((r.json as ErrorJson).error.details.reason)),
        r.text,
      );
      refused(
        await smClient(world, ALPHA).call('/peer/v1/messages', {
          clientIdentity: tlsIdentityOf(foreign, BETA),
          body: '{',
        }),
        403,
        'PeerNotAuthorised',
      );
      assert.deepEqual(await alphaDump(), before);
    });

    it('an SM certificate of our CI that is not a configured peer: 403 PeerNotAuthorised', async () => {
      const chip = await registerAtAlpha();
      const before = await alphaDump();
      const r = await smClient(world, ALPHA, { peer: GAMMA }).call('/peer/v1/messages', {
        body: { type: 'TransferAsk', askId: 'ask-2', eid: chip.eid },
      });
      refused(r, 403, 'PeerNotAuthorised');
      assert.equal((r.json as ErrorJson).error.details.smId, GAMMA);
      assert.deepEqual(await alphaDump(), before);
    });

    it('a TransferAsk from a peer is accepted once; the same ask again gets the same answer', async () => {
      const chip = await registerAtAlpha();
      const asBeta = smClient(world, ALPHA, { peer: BETA });
      const ask = { type: 'TransferAsk', askId: 'beta-ask-1', eid: chip.eid };
      const first = await asBeta.call('/peer/v1/messages', { body: ask });
      assert.equal(first.status, 200, first.text);
      const reply = first.json as { type: string; transferId: string; state: string };
      assert.equal(reply.type, 'TransferAskAccepted');
      assert.equal(reply.state, 'permitted');
      const after = await alphaDump();
      const second = await asBeta.call('/peer/v1/messages', { body: ask });
      assert.deepEqual(second.json, first.json);
      assert.deepEqual(await alphaDump(), after);

      const status = await asBeta.call(`/peer/v1/transfers/${reply.transferId}`);
      assert.equal(status.status, 200, status.text);
      const s = status.json as Record<string, unknown>;
      assert.equal(s.role, 'currentSm');
      assert.equal(s.state, 'permitted');
      assert.equal(s.peerTransferId, 'beta-ask-1');
      assert.equal(s.operatorId, undefined, 'operator ids are not shown to peers');
    });

    it('an SM calling about a chip or transfer it has nothing to do with is refused', async () => {
      const asBeta = smClient(world, ALPHA, { peer: BETA });
      const before = await alphaDump();
      refused(
        await asBeta.call('/peer/v1/messages', {
          body: { type: 'TransferAsk', askId: 'a-3', eid: world.eid(9001) },
        }),
        404,
        'ChipNotManaged',
      );
      refused(
        await asBeta.call('/peer/v1/messages', {
          body: { type: 'AskOutcome', askId: 'tr_unknown', eid: world.eid(9001), outcome: 'rejected' },
        }),
        404,
        'UnknownTransfer',
      );
      refused(await asBeta.call('/peer/v1/transfers/tr_unknown'), 404, 'UnknownTransfer');
      assert.deepEqual(await alphaDump(), before);

      // Beta's port-in from alpha: alpha may read it, gamma (a peer of beta too) may neither read nor end it.
      const order = await smClient(world, BETA, { operator: 'mno-b' }).call('/v1/port-ins', {
        headers: idem(),
        body: { eid: world.eid(9002), currentSmId: ALPHA, ask: false },
      });
      const incoming = (order.json as { transfer: { id: string } }).transfer;
      const fromAlpha = await smClient(world, BETA, { peer: ALPHA }).call(
        `/peer/v1/transfers/${incoming.id}`,
      );
      assert.equal(fromAlpha.status, 200, fromAlpha.text);
      assert.equal((fromAlpha.json as { role: string }).role, 'newSm');
      const betaBefore = await world.get(BETA).dump();
      const asGamma = smClient(world, BETA, { peer: GAMMA });
      refused(await asGamma.call(`/peer/v1/transfers/${incoming.id}`), 404, 'UnknownTransfer');
      refused(
        await asGamma.call('/peer/v1/messages', {
          body: { type: 'AskOutcome', askId: incoming.id, eid: world.eid(9002), outcome: 'rejected' },
        }),
        403,
        'NotAuthorised',
      );
      assert.deepEqual(await world.get(BETA).dump(), betaBefore);
    });

    it('malformed peer messages: 400 with a stable code and no state change', async () => {
      const asBeta = smClient(world, ALPHA, { peer: BETA });
      const cases: [unknown, number, string][] = [
        ['{"type":', 400, 'MalformedJson'],
        [{ type: 'Completed', handoverResult: 'not*base64' }, 400, 'MalformedBase64'],
        [
          { type: 'Completed', handoverResult: Buffer.from('garbage').toString('base64') },
          400,
          'MalformedMessage',
        ],
        [{ type: 'Gossip', about: 'x' }, 400, 'InvalidInput'],
        [{ type: 'TransferAsk', askId: 'a', eid: world.eid(1), extra: 1 }, 400, 'InvalidInput'],
        [{ type: 'Completed', handoverResult: 'A'.repeat(300 * 1024) }, 413, 'PayloadTooLarge'],
      ];
      for (const [body, status, code] of cases) {
        const before = await alphaDump();
        refused(await asBeta.call('/peer/v1/messages', { body }), status, code);
        assert.deepEqual(await alphaDump(), before);
      }
    });

    it('the outbox: a typed refusal ends a port-in; an unreachable peer is retried', async () => {
      const b = smClient(world, BETA, { operator: 'mno-b' });
      const refusedOrder = await b.call('/v1/port-ins', {
        headers: idem(),
        body: { eid: world.eid(9101), currentSmId: ALPHA },
      });
      const tr = (refusedOrder.json as { transfer: { id: string } }).transfer;
      const failed = await eventually(async () => {
        const t = (await b.call(`/v1/transfers/${tr.id}`)).json as { state: string; endReason?: string };
        return t.state === 'failed' ? t : undefined;
      });
      assert.equal(failed.endReason, 'ChipNotManaged');

      const downOrder = await b.call('/v1/port-ins', {
        headers: idem(),
        body: { eid: world.eid(9102), currentSmId: DOWN },
      });
      const down = (downOrder.json as { transfer: { id: string } }).transfer;
      const item = await eventually(async () => {
        const items = (await world.get(BETA).outbox()).filter(
          (i): i is PeerOutboxItem => i.channel === 'peer' && i.transferId === down.id,
        );
        return items[0] && items[0].attempts > 0 ? items[0] : undefined;
      });
      assert.equal(item.state, 'pending');
      assert.equal(item.lastError?.code, 'DeliveryFailed');
      assert.equal(((await b.call(`/v1/transfers/${down.id}`)).json as { state: string }).state, 'ordered');
    });
  });
}

describe('HttpPeerTransport', () => {
  let world: HttpWorld;
  let transport: HttpPeerTransport;
  const stubs: Server[] = [];

  /** An HTTPS server with a valid SM certificate that answers every request with `answer`. */
  async function stub(
    smId: string,
    answer: (res: import('node:http').ServerResponse) => void,
  ): Promise<string> {
    const server = createServer(serverTlsOptions(world.identity(smId)), (_req, res) => answer(res));
    stubs.push(server);
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    return `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  }

  before(async () => {
    world = await createHttpWorld({
      sms: [
        { smId: ALPHA, operators: [{ id: 'mno-a' }], peers: [BETA] },
        { smId: BETA, operators: [{ id: 'mno-b' }], peers: [ALPHA] },
      ],
      extraSmIds: [GAMMA],
    });
    transport = new HttpPeerTransport({
      smId: BETA,
      identity: world.identity(BETA),
      trustedCis: [world.pki.ci.certificate],
      timeoutMs: 500,
    });
  });
  after(async () => {
    transport.close();
    for (const s of stubs) {
      s.closeAllConnections();
      s.close();
    }
    await world.close();
  });

  const alpha = () => ({ smId: ALPHA, address: world.get(ALPHA).url });

  test('delivers a message and returns the typed reply', async () => {
    const chip = createHttpTestChip(world.pki, world.eid(300), ALPHA);
    await smClient(world, ALPHA, { operator: 'mno-a' }).call('/v1/chips', {
      headers: idem(),
      body: await chip.registration(),
    });
    const reply = await transport.send(BETA, alpha(), { type: 'TransferAsk', askId: 'tp-1', eid: chip.eid });
    assert.equal(reply.type, 'TransferAskAccepted');
  });

  test("a peer's typed 4xx is a HandoverError with the peer's code (final)", async () => {
    await assert.rejects(
      transport.send(BETA, alpha(), { type: 'TransferAsk', askId: 'tp-2', eid: world.eid(301) }),
      (e: unknown) => {
        assert.ok(e instanceof HandoverError);
        assert.equal(e.code, 'ChipNotManaged');
        assert.equal(e.details.httpStatus, 404);
        assert.equal(e.details.peerSmId, ALPHA);
        return true;
      },
    );
    await assert.rejects(
      transport.send(ALPHA, alpha(), { type: 'Completed', handoverResult: new Uint8Array(1) }),
      {
        code: 'NotAuthorised',
      },
    );
  });

  const plainError = (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.ok(!(e instanceof HandoverError), `a retryable failure, not ${String(e)}`);
    return true;
  };

  test('network failures, the wrong server, 5xx, timeouts and unreadable replies are plain Errors (retried)', async () => {
    const ask = { type: 'AskOutcome', askId: 'x', eid: world.eid(1), outcome: 'expired' } as const;
    const closed = `https://127.0.0.1:${await freePort()}`;
    await assert.rejects(transport.send(BETA, { smId: ALPHA, address: closed }, ask), plainError);
    // Alpha's server is not GAMMA: the certificate's CN decides, not the address.
    await assert.rejects(
      transport.send(BETA, { smId: GAMMA, address: world.get(ALPHA).url }, ask),
      plainError,
    );

    const failing = await stub(GAMMA, (res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"InternalError","message":"x","details":{}}}');
    });
    await assert.rejects(transport.send(BETA, { smId: GAMMA, address: failing }, ask), plainError);

    const garbage = await stub(GAMMA, (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"type":"Whatever"}');
    });
    await assert.rejects(transport.send(BETA, { smId: GAMMA, address: garbage }, ask), plainError);

    const untyped = await stub(GAMMA, (res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>not here</h1>');
    });
    await assert.rejects(transport.send(BETA, { smId: GAMMA, address: untyped }, ask), plainError);

    const silent = await stub(GAMMA, () => {});
    const started = Date.now();
    await assert.rejects(transport.send(BETA, { smId: GAMMA, address: silent }, ask), plainError);
    assert.ok(Date.now() - started < 5000);
  });
});
