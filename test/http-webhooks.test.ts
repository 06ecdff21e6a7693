/**
 * Operator webhooks (issue "SM services", PROTOCOL.md §6.5, §9): two HTTPS SMs whose operators
 * have webhooks pointing at local HTTP receivers on 127.0.0.1. A port-in produces the expected
 * events at both operators, each signed with that operator's secret; a receiver answering 500
 * twice gets the notification again (outbox backoff) until it takes it; an operator without a
 * webhook has its notifications settled as WebhookNotConfigured, not left pending; no secret is
 * ever logged.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeEid } from '../src/protocol/eid.ts';
import { HandoverError } from '../src/protocol/errors.ts';
import { certificateToPem } from '../src/protocol/pki/certificate.ts';
import { createDevPki, type DevPki, smFileBase } from '../src/protocol/pki/dev-pki.ts';
import type { OperatorNotification } from '../src/sm/peer-api.ts';
import { type SmServerHandle, startSmServer } from '../src/sm/server.ts';
import { parseSmConfig, type SmServerConfig, tokenSha256 } from '../src/sm/server-config.ts';
import { MemoryStore } from '../src/sm/store/memory.ts';
import type { OperatorOutboxItem } from '../src/sm/store/types.ts';
import {
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  verifyWebhookSignature,
  WebhookNotifier,
  webhookBody,
  webhookSignature,
} from '../src/sm/webhooks.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import {
  type CallResult,
  eventually,
  FAST_SCRYPT,
  freePort,
  httpsCall,
  idem,
  tempDir,
} from './support/http-world.ts';
import { type ReleaseSetup, registeredChip, releasedAndPolled } from './support/sm-flows.ts';
import { handoverResult, transferRequest } from './support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, NEW } from './support/sm-world.ts';

const ALPHA = 'sm-alpha.example';
const BETA = 'sm-beta.example';
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly status: number;
  /** The SMs' clock when it arrived. */
  readonly at: number;
}

/** A webhook receiver: records every request; `failures` per path answer 500 first. */
async function startReceiver(failures: Map<string, number>, clock: () => Date) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const left = failures.get(path) ?? 0;
      const status = left > 0 ? 500 : 204;
      if (left > 0) failures.set(path, left - 1);
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ path, headers: req.headers, body, status, at: clock().getTime() });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

interface Sm {
  readonly smId: string;
  readonly handle: SmServerHandle;
  readonly store: MemoryStore;
  readonly config: SmServerConfig;
  readonly tokens: Map<string, string>;
}

interface OperatorSpec {
  readonly id: string;
  readonly webhook?: { readonly url: string; readonly secretFile?: string };
}

describe('operator webhooks over HTTPS SMs', () => {
  const tmp = tempDir('handover-webhooks-');
  const logs: string[] = [];
  // The SMs' clock; the test moves it on to a retry's due time (the outbox backoff is 1 s, 2 s, …).
  let skewMs = 0;
  const clock = () => new Date(Date.now() + skewMs);
  const failures = new Map<string, number>();
  const secretA = randomBytes(32).toString('hex');
  const secretB = randomBytes(32).toString('hex');
  let pki: DevPki;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const sms = new Map<string, Sm>();
  let ports: Map<string, number>;

  const call = (
    smId: string,
    path: string,
    o: { operator?: string; body?: unknown; method?: string } = {},
  ) => {
    const sm = sms.get(smId)!;
    const token = o.operator === undefined ? undefined : sm.tokens.get(o.operator);
    return httpsCall(`${sm.handle.url}${path}`, {
      ...(o.method && { method: o.method }),
      ...(o.body !== undefined && { body: o.body }),
      headers: {
        ...(token !== undefined && { authorization: `Bearer ${token}` }),
        ...(o.body !== undefined || o.method !== undefined ? idem() : {}),
      },
      expectedSmId: smId,
      caPem: certificateToPem(pki.ci.certificate),
      trustedCis: [pki.ci.certificate],
    });
  };
  const ok = (r: CallResult, status = 200) => {
    assert.equal(r.status, status, r.text);
    return r.json;
  };

  function configOf(smId: string, operators: readonly OperatorSpec[], tokens: Map<string, string>) {
    return parseSmConfig(
      {
        smId,
        keyFile: `pki/${smFileBase(smId)}.key`,
        certFile: `pki/${smFileBase(smId)}.pem`,
        ciFiles: ['pki/ci.pem'],
        listen: { host: '127.0.0.1', port: ports.get(smId)! },
        dataDir: `data/${smId}`,
        peers: [ALPHA, BETA]
          .filter((p) => p !== smId)
          .map((p) => ({
            smId: p,
            baseUrl: `https://127.0.0.1:${ports.get(p)}`,
            certFile: `pki/${smFileBase(p)}.pem`,
          })),
        operators: operators.map((op) => ({
          id: op.id,
          tokenSha256: tokenSha256(tokens.get(op.id)!),
          approvalRequired: false,
          ...(op.webhook && { webhook: op.webhook }),
        })),
      },
      tmp.dir,
      `${smId}.json`,
    );
  }

  async function start(smId: string, operators: readonly OperatorSpec[]): Promise<void> {
    const tokens = new Map(operators.map((op) => [op.id, randomBytes(24).toString('base64url')]));
    const config = configOf(smId, operators, tokens);
    const store = new MemoryStore();
    const handle = await startSmServer(config, {
      store,
      clock,
      logger: { level: 'debug', stream: { write: (line: string) => void logs.push(line) } },
      unlockScrypt: FAST_SCRYPT,
      intervals: { outboxMs: 30, expireMs: 60_000 },
    });
    sms.set(smId, { smId, handle, store, config, tokens });
  }

  const operatorItems = (smId: string): OperatorOutboxItem[] =>
    [...sms.get(smId)!.store.dump().outbox.values()].filter(
      (i): i is OperatorOutboxItem => i.channel === 'operator',
    );

  before(async () => {
    pki = createDevPki({ curve: 'p256', dir: join(tmp.dir, 'pki'), smIds: [ALPHA, BETA] });
    ports = new Map([
      [ALPHA, await freePort()],
      [BETA, await freePort()],
    ]);
    receiver = await startReceiver(failures, clock);
    writeFileSync(join(tmp.dir, 'mno-a.secret'), `${secretA}\n`);
    writeFileSync(join(tmp.dir, 'mno-b.secret'), secretB);
    await start(ALPHA, [
      { id: 'mno-a', webhook: { url: `${receiver.url}/a`, secretFile: 'mno-a.secret' } },
      { id: 'mno-quiet' },
    ]);
    await start(BETA, [
      { id: 'mno-b', webhook: { url: `${receiver.url}/b/hook?x=1`, secretFile: 'mno-b.secret' } },
    ]);
  });

  after(async () => {
    await Promise.all([...sms.values()].map((s) => s.handle.close()));
    await receiver?.close();
    tmp.remove();
  });

  test('a port-in: signed events at both operators; 500 twice is retried, then delivered', async () => {
    failures.set('/b/hook?x=1', 2);
    const eid = makeEid(`${pki.manifest.eidPrefix}${'1'.padStart(30 - pki.manifest.eidPrefix.length, '0')}`);
    const chip = createHttpTestChip(pki, eid, ALPHA);
    ok(await call(ALPHA, '/v1/chips', { operator: 'mno-a', body: await chip.registration() }), 201);
    const order = ok(
      await call(BETA, '/v1/port-ins', { operator: 'mno-b', body: { eid, currentSmId: ALPHA } }),
      201,
    ) as { transfer: { id: string } };
    await eventually(
      async () => {
        const t = ok(await call(BETA, `/v1/transfers/${order.transfer.id}`, { operator: 'mno-b' })) as {
          state: string;
        };
        return t.state === 'permitted' || undefined;
      },
      5000,
      'the ask to be accepted',
    );
    const polled = ok(await call(ALPHA, `/device/v1/chips/${eid}/messages`)) as { messages: string[] };
    const request = await chip.send(bytes(polled.messages[0]!));
    const answered = ok(
      await call(BETA, '/device/v1/transfer-requests', { body: { message: b64(request) } }),
    ) as { message: string };
    const result = await chip.send(bytes(answered.message));
    ok(await call(BETA, '/device/v1/handover-results', { body: { message: b64(result) } }));

    // Both operators are told: alpha's when the permission is issued and when the chip is released.
    const delivered = (path: string, event: string) =>
      receiver.received.find(
        (r) => r.path === path && r.status === 204 && JSON.parse(r.body).event === event,
      );
    await eventually(
      async () => {
        // A notification waiting for its retry: move the clock to its due time.
        for (const i of [...operatorItems(ALPHA), ...operatorItems(BETA)]) {
          const wait = i.nextAttemptAt.getTime() - clock().getTime();
          if (i.state === 'pending' && wait > 0) skewMs += wait;
        }
        return (
          (delivered('/a', 'permissionIssued') &&
            delivered('/a', 'transferCompleted') &&
            delivered('/b/hook?x=1', 'transferCompleted')) ||
          undefined
        );
      },
      8000,
      'the notifications',
    );
    const events = (path: string) =>
      receiver.received
        .filter((r) => r.path === path && r.status === 204)
        .map(
          (r) =>
            JSON.parse(r.body) as {
              event: string;
              eid: string;
              transferId?: string;
              state?: string;
              at: string;
            },
        );
    const alphaTransfer = (
      ok(await call(ALPHA, `/v1/transfers?eid=${eid}`, { operator: 'mno-a' })) as {
        transfers: { id: string }[];
      }
    ).transfers[0]!.id;
    assert.deepEqual(
      events('/a').map(({ at: _at, ...e }) => e),
      [
        { event: 'permissionIssued', eid, transferId: alphaTransfer, state: 'permitted' },
        { event: 'transferCompleted', eid, transferId: alphaTransfer, state: 'completed' },
      ],
    );
    assert.deepEqual(
      events('/b/hook?x=1').map(({ at: _at, ...e }) => e),
      [{ event: 'transferCompleted', eid, transferId: order.transfer.id, state: 'completed' }],
    );
    for (const e of [...events('/a'), ...events('/b/hook?x=1')]) {
      assert.match(e.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }

    // Every request carries the headers; the signature verifies with the operator's own secret only.
    for (const r of receiver.received) {
      const secret = r.path === '/a' ? secretA : secretB;
      const other = r.path === '/a' ? secretB : secretA;
      const expected = `sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`;
      assert.equal(r.headers[SIGNATURE_HEADER], expected);
      assert.ok(verifyWebhookSignature(secret, r.body, r.headers[SIGNATURE_HEADER] as string));
      assert.ok(!verifyWebhookSignature(other, r.body, r.headers[SIGNATURE_HEADER] as string));
      assert.equal(r.headers['content-type'], 'application/json');
      assert.match(String(r.headers[DELIVERY_HEADER]), /^dlv_[0-9a-f]{32}$/);
      assert.equal(r.headers['x-handover-event'], JSON.parse(r.body).event);
    }

    // The failing receiver got the same delivery three times: 500, 500, then 204.
    const atB = receiver.received.filter((r) => r.path === '/b/hook?x=1');
    assert.deepEqual(
      atB.map((r) => r.status),
      [500, 500, 204],
    );
    assert.equal(
      new Set(atB.map((r) => r.headers[DELIVERY_HEADER])).size,
      1,
      'one delivery id across retries',
    );
    assert.equal(new Set(atB.map((r) => r.body)).size, 1, 'the same body across retries');
    // Retried with backoff, not at once: 1 s after the first failure, 2 s after the second.
    assert.ok(atB[1]!.at - atB[0]!.at >= 1000, `first retry after ${atB[1]!.at - atB[0]!.at} ms`);
    assert.ok(atB[2]!.at - atB[1]!.at >= 2000, `second retry after ${atB[2]!.at - atB[1]!.at} ms`);
    const [item] = operatorItems(BETA);
    assert.equal(item?.state, 'delivered');
    assert.equal(item?.attempts, 3);
    assert.ok(item?.deliveredAt);
    assert.equal(item?.lastError, undefined);
    for (const i of operatorItems(ALPHA)) assert.equal(i.state, 'delivered');

    // No secret (webhook secrets, bearer tokens) in any log line; the failures were logged as counts.
    const allLogs = logs.join('');
    assert.ok(allLogs.length > 0);
    for (const secret of [
      secretA,
      secretB,
      ...sms.get(ALPHA)!.tokens.values(),
      ...sms.get(BETA)!.tokens.values(),
    ]) {
      assert.ok(!allLogs.includes(secret), 'a secret is in the log');
    }
  });

  test('an operator without a webhook: notifications are settled as WebhookNotConfigured', async () => {
    const eid = makeEid(`${pki.manifest.eidPrefix}${'2'.padStart(30 - pki.manifest.eidPrefix.length, '0')}`);
    const chip = createHttpTestChip(pki, eid, ALPHA);
    ok(await call(ALPHA, '/v1/chips', { operator: 'mno-quiet', body: await chip.registration() }), 201);
    const before = receiver.received.length;
    ok(await call(ALPHA, '/v1/releases', { operator: 'mno-quiet', body: { eid, newSmId: BETA } }), 201);
    const item = await eventually(
      async () => operatorItems(ALPHA).find((i) => i.operatorId === 'mno-quiet' && i.state !== 'pending'),
      5000,
      'the notification to be settled',
    );
    assert.equal(item.state, 'refused');
    assert.equal(item.notification.event, 'permissionIssued');
    assert.equal(item.lastError?.code, 'WebhookNotConfigured');
    assert.equal(item.attempts, 1);
    assert.equal(receiver.received.length, before, 'nothing was sent');
  });

  test('the notifier: bodies, signatures, failures (unit)', async () => {
    const n = { event: 'transferCompleted' as const, eid: '8900', transferId: 't1', at: new Date(0) };
    const body = webhookBody(n);
    assert.equal(
      body,
      '{"event":"transferCompleted","eid":"8900","transferId":"t1","at":"1970-01-01T00:00:00.000Z"}',
    );
    // What a SQL store gives back (at as a string) makes the same bytes.
    assert.equal(webhookBody({ ...n, at: '1970-01-01T00:00:00.000Z' as unknown as Date }), body);
    assert.equal(
      webhookSignature('k'.repeat(16), body),
      `sha256=${createHmac('sha256', 'k'.repeat(16)).update(body).digest('hex')}`,
    );
    assert.ok(!verifyWebhookSignature('k'.repeat(16), body, undefined));
    assert.ok(!verifyWebhookSignature('k'.repeat(16), body, 'sha256=00'));

    // No connection: a WebhookFailed naming the origin, never the path or query.
    const port = await freePort();
    const notifier = new WebhookNotifier(
      new Map([['op', { operatorId: 'op', url: new URL(`http://127.0.0.1:${port}/secret-path?token=x`) }]]),
      { timeoutMs: 2000 },
    );
    await assert.rejects(notifier.notify('op', n), (e: unknown) => {
      assert.ok(e instanceof HandoverError);
      assert.equal(e.code, 'WebhookFailed');
      assert.ok(e.message.includes(`http://127.0.0.1:${port}`));
      assert.ok(!e.message.includes('secret-path') && !e.message.includes('token=x'));
      return true;
    });
    await assert.rejects(notifier.notify('other', n), { code: 'WebhookNotConfigured' });
    // A receiver that never answers: the timeout.
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const slow = new WebhookNotifier(
      new Map([
        [
          'op',
          { operatorId: 'op', url: new URL(`http://localhost:${(silent.address() as AddressInfo).port}/`) },
        ],
      ]),
      { timeoutMs: 200 },
    );
    await assert.rejects(slow.notify('op', n), /no answer in 200 ms/);
    slow.close();
    notifier.close();
    silent.closeAllConnections();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  test('configuration: https or loopback http only, no credentials; a short secret stops the start', async () => {
    const tokens = new Map([['mno-a', 'token-a']]);
    const refused = (url: string, field = 'operators/0/webhook/url') =>
      assert.throws(
        () => configOf(ALPHA, [{ id: 'mno-a', webhook: { url } }], tokens),
        (e: unknown) => e instanceof HandoverError && e.code === 'ConfigInvalid' && e.details.field === field,
      );
    refused('http://mno-a.example/hook');
    refused('http://10.0.0.1/hook');
    refused('ftp://127.0.0.1/hook');
    refused('https://user:pw@mno-a.example/hook');
    refused('not a url');
    for (const url of [
      'https://mno-a.example/hook',
      'http://127.0.0.1:9/h',
      'http://localhost/h',
      'http://[::1]:9/',
    ]) {
      const c = configOf(ALPHA, [{ id: 'mno-a', webhook: { url } }], tokens);
      assert.equal(c.operators[0]?.webhook?.url, url);
    }
    assert.throws(
      () =>
        parseSmConfig(
          {
            smId: ALPHA,
            keyFile: 'k',
            certFile: 'c',
            ciFiles: ['ci'],
            listen: { host: '127.0.0.1', port: 0 },
            dataDir: 'd',
            peers: [],
            operators: [
              {
                id: 'mno-a',
                tokenSha256: tokenSha256('t'),
                approvalRequired: false,
                webhook: { url: 'https://x.example', secret: 'inline' },
              },
            ],
          },
          tmp.dir,
        ),
      (e: unknown) => e instanceof HandoverError && e.details.field === 'operators/0/webhook/secret',
    );

    writeFileSync(join(tmp.dir, 'short.secret'), 'short\n');
    const config = {
      ...configOf(
        ALPHA,
        [{ id: 'mno-a', webhook: { url: 'https://mno-a.example/', secretFile: 'short.secret' } }],
        tokens,
      ),
      listen: { host: '127.0.0.1', port: 0 },
    };
    await assert.rejects(startSmServer(config, { store: new MemoryStore(), logger: false }), (e: unknown) => {
      assert.ok(e instanceof HandoverError);
      assert.equal(e.code, 'ConfigInvalid');
      assert.equal(e.details.field, 'operators/0/webhook/secretFile');
      assert.ok(!e.message.includes('short\n'));
      return true;
    });
  });
});

describe('the outbox drain with a notifier (in process)', () => {
  test('peer messages go first; a failing operator costs one attempt per drain', async () => {
    const world = createSmWorld();
    const chips = [await registeredChip(world, 1), await registeredChip(world, 2)];
    const setups: ReleaseSetup[] = [];
    for (const chip of chips) setups.push(await releasedAndPolled(world, chip));
    const cur = world.get(CURRENT);
    // Two permissionIssued notifications for mno-a wait at the current SM; its webhook is down.
    const calls: OperatorNotification[] = [];
    const down = {
      notify: async (_operatorId: string, n: OperatorNotification) => {
        calls.push(n);
        throw new Error('webhook down');
      },
    };
    assert.deepEqual(await cur.sm.drainOutbox(world.transport, down), {
      delivered: 0,
      refused: 0,
      retried: 1,
    });
    assert.equal(calls.length, 1, 'the second notification waits for the next drain');
    const items = () =>
      [...cur.store.dump().outbox.values()].filter((i): i is OperatorOutboxItem => i.channel === 'operator');
    assert.deepEqual(
      items()
        .map((i) => i.attempts)
        .sort(),
      [0, 1],
    );
    assert.deepEqual(await cur.sm.drainOutbox(world.transport, down), {
      delivered: 0,
      refused: 0,
      retried: 1,
    });
    assert.deepEqual(
      items()
        .map((i) => i.attempts)
        .sort(),
      [1, 1],
    );

    // At the new SM the Completed (peer) and transferCompleted (operator) are queued together:
    // the peer message is sent first, so the current SM has completed when the operator hears.
    const chip = chips[0]!;
    const pending = transferRequest(chip, setups[0]!.permissionMessage);
    const neu = world.get(NEW);
    const result = handoverResult(chip, pending, await neu.sm.postTransferRequest(pending.request));
    await neu.sm.postHandoverResult(result);
    const seen: string[] = [];
    const recorder = {
      notify: async (operatorId: string, n: OperatorNotification) => {
        const there = await cur.sm.getTransfer(MNO_A, setups[0]!.transferId);
        seen.push(`${operatorId}:${n.event}:current ${there.state}`);
      },
    };
    await neu.sm.drainOutbox(world.transport, recorder);
    assert.ok(seen.includes('mno-b:transferCompleted:current completed'), seen.join(', '));
  });
});
