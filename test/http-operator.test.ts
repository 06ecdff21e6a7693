/**
 * The operator API over real HTTPS (issue "SM services", item 2): every endpoint, bearer-token
 * authentication, operators kept apart, idempotency keys, and bad input refused with a stable code
 * and no state change (the store's content before and after). The suite runs on SQLite and on
 * PostgreSQL (skipped without DATABASE_URL); there the idempotency keys are in the database, and
 * a stored response outlives a restart of the SM.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { BULK_BODY_LIMIT } from '../src/sm/http/bulk-plugin.ts';
import { startSmServer } from '../src/sm/server.ts';
import type { SmStore } from '../src/sm/store/types.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import {
  ALPHA,
  BETA,
  backendSkip,
  type CallResult,
  createHttpWorld,
  eventually,
  FAST_SCRYPT,
  type HttpWorld,
  httpsCall,
  idem,
  type SmClient,
  SQL_BACKENDS,
  smClient,
  testOn,
} from './support/http-world.ts';

interface ErrorJson {
  error: { code: string; message: string; details: Record<string, unknown> };
}
interface Chip {
  eid: string;
  operatorId: string;
  status: string;
  counter: number;
  lock: { kind: string; failedAttempts?: number; until?: string; lockedOut?: boolean };
}
interface Transfer {
  id: string;
  state: string;
  direction: string;
  eid: string;
  peerSmId: string;
  counterValue?: number;
  endReason?: string;
}

const codeOf = (r: CallResult): string | undefined => (r.json as ErrorJson | undefined)?.error?.code;

function refused(r: CallResult, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.equal(codeOf(r), code, r.text);
  const e = (r.json as ErrorJson).error;
  assert.equal(typeof e.message, 'string');
  assert.equal(typeof e.details, 'object');
}

for (const backend of SQL_BACKENDS) {
  /** Sends `bytes` as they are over TLS and returns everything the server answers until it closes. */
  function rawExchange(url: string, caPem: string, bytes: string): Promise<string> {
    const { hostname, port } = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = tlsConnect(
        { host: hostname, port: Number(port), ca: caPem, checkServerIdentity: () => undefined },
        () => socket.write(bytes),
      );
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.on('error', reject);
    });
  }

  describe(`operator API over HTTPS (${backend})`, () => {
    const it = testOn(backend);
    let world: HttpWorld;
    let a: SmClient;
    let x: SmClient;
    let b: SmClient;
    let serial = 100;
    const nextChip = () => createHttpTestChip(world.pki, world.eid(serial++), ALPHA);
    const register = async (client: SmClient, chip = nextChip()) => {
      const r = await client.call('/v1/chips', { headers: idem(), body: await chip.registration() });
      assert.equal(r.status, 201, r.text);
      return chip;
    };
    const dump = () => world.get(ALPHA).dump();

    before(async () => {
      if (backendSkip(backend) !== undefined) return;
      world = await createHttpWorld({
        backend,
        sms: [
          {
            smId: ALPHA,
            operators: [
              { id: 'mno-a', approvalRequired: true },
              { id: 'mno-x', approvalRequired: false },
            ],
          },
          { smId: BETA, operators: [{ id: 'mno-b' }] },
        ],
      });
      a = smClient(world, ALPHA, { operator: 'mno-a' });
      x = smClient(world, ALPHA, { operator: 'mno-x' });
      b = smClient(world, BETA, { operator: 'mno-b' });
    });
    after(() => world?.close());

    it('a missing, malformed or wrong token is 401 Unauthenticated', async () => {
      const before = await dump();
      const anonymous = smClient(world, ALPHA);
      const none = await anonymous.call('/v1/chips');
      refused(none, 401, 'Unauthenticated');
      assert.equal(none.headers['www-authenticate'], 'Bearer');
      refused(
        await anonymous.call('/v1/chips', { headers: { authorization: 'Bearer wrong-token' } }),
        401,
        'Unauthenticated',
      );
      refused(
        await anonymous.call('/v1/chips', { headers: { authorization: 'Basic bW5vLWE6eA==' } }),
        401,
        'Unauthenticated',
      );
      const betaToken = world.get(BETA).tokens.get('mno-b')!;
      refused(
        await anonymous.call('/v1/chips', { headers: { authorization: `Bearer ${betaToken}` } }),
        401,
        'Unauthenticated',
      );
      // Authentication comes before anything else: a mutating call without a token changes nothing.
      refused(
        await anonymous.call('/v1/chips', {
          headers: idem(),
          body: { chipCertificate: 'AA==', eumCertificate: 'AA==' },
        }),
        401,
        'Unauthenticated',
      );
      assert.deepEqual(await dump(), before);
    });

    it('chips: register, list, read, set the lock policy', async () => {
      const chip = nextChip();
      const created = await a.call('/v1/chips', { headers: idem(), body: await chip.registration() });
      assert.equal(created.status, 201, created.text);
      const view = created.json as Chip;
      assert.equal(view.eid, chip.eid);
      assert.equal(view.operatorId, 'mno-a');
      assert.equal(view.status, 'managed');
      assert.equal(view.counter, 0);
      assert.deepEqual(view.lock, { kind: 'unlocked' });

      const list = (await a.call('/v1/chips')).json as { chips: Chip[] };
      assert.ok(list.chips.some((c) => c.eid === chip.eid));
      const one = await a.call(`/v1/chips/${chip.eid}`);
      assert.equal(one.status, 200);
      assert.equal((one.json as Chip).eid, chip.eid);

      const until = new Date(Date.now() + 3_600_000).toISOString();
      const locked = await a.call(`/v1/chips/${chip.eid}/lock`, {
        method: 'PUT',
        headers: idem(),
        body: { kind: 'lockedUntil', until },
      });
      assert.equal(locked.status, 200, locked.text);
      assert.deepEqual((locked.json as Chip).lock, { kind: 'lockedUntil', until });

      const coded = await a.call(`/v1/chips/${chip.eid}/lock`, {
        method: 'PUT',
        headers: idem(),
        body: { kind: 'lockedUntilCode', unlockCode: 'UNLOCK-1' },
      });
      assert.deepEqual((coded.json as Chip).lock, {
        kind: 'lockedUntilCode',
        failedAttempts: 0,
        lockedOut: false,
      });
      assert.ok(!coded.text.includes('UNLOCK-1'), 'the unlock code is never echoed');

      const before = await dump();
      refused(
        await a.call(`/v1/chips/${chip.eid}/lock`, {
          method: 'PUT',
          headers: idem(),
          body: { kind: 'lockedUntil' },
        }),
        400,
        'InvalidInput',
      );
      refused(
        await a.call(`/v1/chips/${chip.eid}/lock`, {
          method: 'PUT',
          headers: idem(),
          body: { kind: 'unlocked', unlockCode: 'x' },
        }),
        400,
        'InvalidInput',
      );
      refused(
        await a.call(`/v1/chips/${chip.eid}/lock`, {
          method: 'PUT',
          headers: idem(),
          body: { kind: 'frozen' },
        }),
        400,
        'InvalidInput',
      );
      assert.deepEqual(await dump(), before);

      const open = await a.call(`/v1/chips/${chip.eid}/lock`, {
        method: 'PUT',
        headers: idem(),
        body: { kind: 'unlocked' },
      });
      assert.deepEqual((open.json as Chip).lock, { kind: 'unlocked' });

      refused(await a.call(`/v1/chips/${world.eid(9999)}`), 404, 'ChipNotManaged');
      const again = await a.call('/v1/chips', { headers: idem(), body: await chip.registration() });
      refused(again, 409, 'ChipExists');
    });

    it("an operator cannot act on another operator's chip", async () => {
      const chip = await register(a);
      const before = await dump();
      refused(await x.call(`/v1/chips/${chip.eid}`), 403, 'NotAuthorised');
      refused(
        await x.call(`/v1/chips/${chip.eid}/lock`, {
          method: 'PUT',
          headers: idem(),
          body: { kind: 'unlocked' },
        }),
        403,
        'NotAuthorised',
      );
      refused(
        await x.call('/v1/releases', { headers: idem(), body: { eid: chip.eid, newSmId: BETA } }),
        403,
        'NotAuthorised',
      );
      const listed = (await x.call('/v1/chips')).json as { chips: Chip[] };
      assert.ok(!listed.chips.some((c) => c.eid === chip.eid));
      assert.deepEqual(await dump(), before);

      const release = await a.call('/v1/releases', {
        headers: idem(),
        body: { eid: chip.eid, newSmId: BETA },
      });
      assert.equal(release.status, 201, release.text);
      const t = release.json as Transfer;
      const before2 = await dump();
      refused(await x.call(`/v1/transfers/${t.id}`), 404, 'UnknownTransfer');
      const xs = (await x.call(`/v1/transfers?eid=${chip.eid}`)).json as { transfers: Transfer[] };
      assert.deepEqual(xs.transfers, []);
      const audit = (await x.call(`/v1/audit?eid=${chip.eid}`)).json as { entries: unknown[] };
      assert.deepEqual(audit.entries, []);
      assert.deepEqual(await dump(), before2);
    });

    it('releases: the permission is issued at once; locks and pending transfers refuse', async () => {
      const chip = await register(a);
      await a.call(`/v1/chips/${chip.eid}/lock`, {
        method: 'PUT',
        headers: idem(),
        body: { kind: 'lockedUntilCode', unlockCode: 'UNLOCK-2' },
      });
      refused(
        await a.call('/v1/releases', { headers: idem(), body: { eid: chip.eid, newSmId: BETA } }),
        409,
        'ChipLocked',
      );
      const wrong = await a.call('/v1/releases', {
        headers: idem(),
        body: { eid: chip.eid, newSmId: BETA, unlockCode: 'WRONG' },
      });
      refused(wrong, 422, 'UnlockCodeInvalid');
      assert.equal(((await a.call(`/v1/chips/${chip.eid}`)).json as Chip).lock.failedAttempts, 1);

      refused(
        await a.call('/v1/releases', {
          headers: idem(),
          body: { eid: chip.eid, newSmId: 'sm-nowhere.example' },
        }),
        422,
        'UnknownPeer',
      );
      type Counts = { total: number; counts: Record<string, number> };
      const countsBefore = (await a.call('/v1/transfers/counts?direction=outgoing')).json as Counts;
      const released = await a.call('/v1/releases', {
        headers: idem(),
        body: {
          eid: chip.eid,
          newSmId: BETA,
          unlockCode: 'UNLOCK-2',
          activationCode: 'AC-9',
          profileSwitch: {
            disableIccid: '8901000000000000001',
            enableIccid: '8901000000000000002',
            rollbackOnFailure: true,
          },
        },
      });
      assert.equal(released.status, 201, released.text);
      const t = released.json as Transfer;
      assert.equal(t.state, 'permitted');
      assert.equal(t.direction, 'outgoing');
      assert.equal(t.peerSmId, BETA);
      assert.equal(t.counterValue, 1);
      assert.ok(!released.text.includes('AC-9') && !released.text.includes('UNLOCK-2'));
      refused(
        await a.call('/v1/releases', {
          headers: idem(),
          body: { eid: chip.eid, newSmId: BETA, unlockCode: 'UNLOCK-2' },
        }),
        409,
        'TransferPending',
      );
      const countsAfter = (await a.call('/v1/transfers/counts?direction=outgoing')).json as Counts;
      assert.equal(countsAfter.total, countsBefore.total + 1);
      assert.equal(countsAfter.counts.permitted, (countsBefore.counts.permitted ?? 0) + 1);
      const incoming = (await a.call('/v1/transfers/counts?direction=incoming')).json as Counts;
      assert.equal(incoming.counts.permitted, undefined);
      const one = await a.call(`/v1/transfers/${t.id}`);
      assert.equal(one.status, 200);
      assert.equal((one.json as Transfer).id, t.id);
      const polled = await smClient(world, ALPHA).call(`/device/v1/chips/${chip.eid}/messages`);
      assert.equal((polled.json as { messages: string[] }).messages.length, 1);
    });

    it('approve and reject a new SM’s ask; the new SM learns the outcome over the peer API', async () => {
      const approved = await register(a);
      const rejected = await register(a);
      const order = async (eid: string) => {
        const r = await b.call('/v1/port-ins', { headers: idem(), body: { eid, currentSmId: ALPHA } });
        assert.equal(r.status, 201, r.text);
        return (r.json as { orderId: string; transfer: Transfer }).transfer;
      };
      const incomingOk = await order(approved.eid);
      const incomingNo = await order(rejected.eid);
      const waiting = async (eid: string) =>
        eventually(async () => {
          const r = (await a.call(`/v1/transfers?eid=${eid}&state=awaitingApproval`)).json as {
            transfers: Transfer[];
          };
          return r.transfers[0];
        });
      const tOk = await waiting(approved.eid);
      const tNo = await waiting(rejected.eid);
      assert.equal(tOk.direction, 'outgoing');

      const before = await dump();
      refused(
        await x.call(`/v1/transfers/${tOk.id}/approve`, { method: 'POST', headers: idem() }),
        403,
        'NotAuthorised',
      );
      assert.deepEqual(await dump(), before);

      // A field the call does not take is refused, not ignored (it records nothing).
      refused(
        await a.call(`/v1/transfers/${tOk.id}/approve`, {
          method: 'POST',
          headers: idem(),
          body: { reason: 'the customer asked' },
        }),
        400,
        'InvalidInput',
      );
      assert.deepEqual(await dump(), before);
      const ok = await a.call(`/v1/transfers/${tOk.id}/approve`, { method: 'POST', headers: idem() });
      assert.equal(ok.status, 200, ok.text);
      assert.equal((ok.json as Transfer).state, 'permitted');
      refused(
        await a.call(`/v1/transfers/${tOk.id}/approve`, { method: 'POST', headers: idem() }),
        409,
        'InvalidState',
      );
      // An empty JSON object is a body too.
      const no = await a.call(`/v1/transfers/${tNo.id}/reject`, {
        method: 'POST',
        headers: idem(),
        body: {},
      });
      assert.equal(no.status, 200, no.text);
      assert.equal((no.json as Transfer).state, 'rejected');
      refused(
        await a.call('/v1/transfers/tr_nope/approve', { method: 'POST', headers: idem() }),
        404,
        'UnknownTransfer',
      );

      // An approval is not a peer message: the new SM stays `asked` until the chip's request comes.
      assert.equal(((await b.call(`/v1/transfers/${incomingOk.id}`)).json as Transfer).state, 'asked');
      const failed = await eventually(async () => {
        const t = (await b.call(`/v1/transfers/${incomingNo.id}`)).json as Transfer;
        return t.state === 'failed' ? t : undefined;
      });
      assert.equal(failed.endReason, 'rejected');

      const filtered = (await a.call('/v1/transfers?direction=outgoing&state=permitted,rejected')).json as {
        transfers: Transfer[];
      };
      assert.ok(filtered.transfers.some((t) => t.id === tOk.id));
      assert.ok(filtered.transfers.some((t) => t.id === tNo.id));
      assert.ok(filtered.transfers.every((t) => t.state === 'permitted' || t.state === 'rejected'));
      const repeated = (await a.call('/v1/transfers?direction=outgoing&state=permitted&state=rejected'))
        .json as {
        transfers: Transfer[];
      };
      assert.deepEqual(repeated.transfers, filtered.transfers);
      // Paging: pages of `limit` in id order, `next` while a page is full, together the whole list.
      type Page = { transfers: Transfer[]; next?: string };
      const everything = ((await a.call('/v1/transfers')).json as Page).transfers;
      assert.ok(everything.length >= 3);
      const paged: Transfer[] = [];
      let after: string | undefined;
      for (let pages = 0; pages < everything.length + 1; pages++) {
        const page = (await a.call(`/v1/transfers?limit=2${after === undefined ? '' : `&after=${after}`}`))
          .json as Page;
        paged.push(...page.transfers);
        assert.ok(page.transfers.length <= 2);
        if (page.next === undefined) break;
        assert.equal(page.next, page.transfers[1]?.id);
        after = page.next;
      }
      assert.deepEqual(paged.map((t) => t.id).sort(), everything.map((t) => t.id).sort());
      assert.equal(new Set(paged.map((t) => t.id)).size, paged.length, 'no transfer on two pages');
      assert.equal(((await a.call('/v1/transfers')).json as Page).next, undefined, 'no next without limit');
      refused(await a.call('/v1/transfers?limit=0'), 400, 'InvalidInput');
      refused(await a.call('/v1/transfers?limit=1001'), 400, 'InvalidInput');
      // Numbers in the query are written as numbers: no truncation, no hex, no exponent.
      for (const bad of ['1.5', '0x10', '1e3', 'true', ' 5']) {
        refused(await a.call(`/v1/transfers?limit=${encodeURIComponent(bad)}`), 400, 'InvalidInput');
      }
      refused(await a.call(`/v1/transfers?after=${everything[0]!.id}`), 400, 'InvalidInput');
      const audit = (await a.call(`/v1/audit?transferId=${tOk.id}`)).json as {
        entries: { action: string; transferId: string; hash: string }[];
      };
      assert.ok(audit.entries.some((e) => e.action === 'approved'));
      assert.ok(audit.entries.every((e) => e.transferId === tOk.id && /^[0-9a-f]{64}$/.test(e.hash)));
    });

    it('port-in orders: ask defaults to true; an unlock code needs the ask', async () => {
      const eid = world.eid(7001);
      const quiet = await b.call('/v1/port-ins', {
        headers: idem(),
        body: { eid, currentSmId: ALPHA, ask: false },
      });
      assert.equal(quiet.status, 201, quiet.text);
      const r = quiet.json as { orderId: string; transfer: Transfer };
      assert.match(r.orderId, /^or_/);
      assert.equal(r.transfer.state, 'ordered');
      assert.equal(r.transfer.direction, 'incoming');
      refused(
        await b.call('/v1/port-ins', {
          headers: idem(),
          body: { eid: world.eid(7002), currentSmId: ALPHA, ask: false, unlockCode: 'U' },
        }),
        400,
        'InvalidInput',
      );
      refused(
        await b.call('/v1/port-ins', {
          headers: idem(),
          body: { eid: world.eid(7003), currentSmId: 'sm-nowhere.example' },
        }),
        422,
        'UnknownPeer',
      );
    });

    it('idempotency keys: required, replayed with no second effect, refused when reused for another request', async () => {
      const chip = nextChip();
      const body = await chip.registration();
      const before = await dump();
      refused(await a.call('/v1/chips', { body }), 400, 'IdempotencyKeyRequired');
      refused(
        await a.call('/v1/chips', { body, headers: { 'idempotency-key': '' } }),
        400,
        'IdempotencyKeyRequired',
      );
      assert.deepEqual(await dump(), before);

      const key = idem();
      const first = await a.call('/v1/chips', { headers: key, body });
      assert.equal(first.status, 201, first.text);
      const afterFirst = await dump();
      // The same request again, keys in another order: the stored answer, nothing new in the store.
      const reordered = JSON.stringify({
        eumCertificate: body.eumCertificate,
        chipCertificate: body.chipCertificate,
      });
      const second = await a.call('/v1/chips', { headers: key, body: reordered });
      assert.equal(second.status, 201);
      assert.equal(second.text, first.text);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.deepEqual(await dump(), afterFirst);

      // The same key for another request is refused, and changes nothing.
      const other = await nextChip().registration();
      refused(await a.call('/v1/chips', { headers: key, body: other }), 422, 'IdempotencyKeyReused');
      refused(
        await a.call(`/v1/chips/${chip.eid}/lock`, {
          method: 'PUT',
          headers: key,
          body: { kind: 'unlocked' },
        }),
        422,
        'IdempotencyKeyReused',
      );
      assert.deepEqual(await dump(), afterFirst);

      // A refusal is replayed too: a wrong unlock code counts once, however often the request is retried.
      await a.call(`/v1/chips/${chip.eid}/lock`, {
        method: 'PUT',
        headers: idem(),
        body: { kind: 'lockedUntilCode', unlockCode: 'RIGHT' },
      });
      const wrongKey = idem();
      const release = { eid: chip.eid, newSmId: BETA, unlockCode: 'WRONG' };
      refused(await a.call('/v1/releases', { headers: wrongKey, body: release }), 422, 'UnlockCodeInvalid');
      const replayed = await a.call('/v1/releases', { headers: wrongKey, body: release });
      refused(replayed, 422, 'UnlockCodeInvalid');
      assert.equal(replayed.headers['idempotent-replayed'], 'true');
      assert.equal(((await a.call(`/v1/chips/${chip.eid}`)).json as Chip).lock.failedAttempts, 1);

      // Keys belong to their operator: another operator may use the same key.
      const xs = await x.call('/v1/chips', { headers: key, body: other });
      assert.equal(xs.status, 201, xs.text);
      assert.equal(xs.headers['idempotent-replayed'], undefined);
    });

    it('idempotency keys outlive a restart: the stored response comes from the database', async () => {
      const chip = nextChip();
      const body = await chip.registration();
      const key = idem();
      const first = await a.call('/v1/chips', { headers: key, body });
      assert.equal(first.status, 201, first.text);
      const refusedKey = idem();
      const release = { eid: chip.eid, newSmId: 'sm-nowhere.example' };
      const refusal = await a.call('/v1/releases', { headers: refusedKey, body: release });
      refused(refusal, 422, 'UnknownPeer');

      await world.restart(ALPHA);
      const afterRestart = await dump();
      const again = await a.call('/v1/chips', { headers: key, body });
      assert.equal(again.status, 201);
      assert.equal(again.text, first.text);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      const refusedAgain = await a.call('/v1/releases', { headers: refusedKey, body: release });
      assert.equal(refusedAgain.text, refusal.text);
      assert.equal(refusedAgain.headers['idempotent-replayed'], 'true');
      refused(
        await a.call('/v1/chips', { headers: key, body: await nextChip().registration() }),
        422,
        'IdempotencyKeyReused',
      );
      assert.deepEqual(await dump(), afterRestart);
    });

    it('bad input is refused with a stable code and changes nothing', async () => {
      const chip = await register(a);
      const cases: { name: string; call: () => Promise<CallResult>; status: number; code: string }[] = [
        {
          name: 'malformed JSON',
          call: () => a.call('/v1/chips', { headers: idem(), body: '{"chipCertificate": "AA==",' }),
          status: 400,
          code: 'MalformedJson',
        },
        {
          name: 'an empty JSON body',
          call: () => a.call('/v1/releases', { headers: idem(), body: '' }),
          status: 400,
          code: 'MalformedJson',
        },
        {
          name: 'a JSON body with __proto__',
          call: () =>
            a.call('/v1/releases', {
              headers: idem(),
              body: `{"eid":"${chip.eid}","newSmId":"${BETA}","__proto__":{"x":1}}`,
            }),
          status: 400,
          code: 'MalformedJson',
        },
        {
          name: 'bad base64',
          call: () =>
            a.call('/v1/chips', {
              headers: idem(),
              body: { chipCertificate: 'not base64!', eumCertificate: 'AAAA' },
            }),
          status: 400,
          code: 'MalformedBase64',
        },
        {
          name: 'non-canonical base64',
          call: () =>
            a.call('/v1/chips', {
              headers: idem(),
              body: { chipCertificate: 'AB==', eumCertificate: 'AAAA' },
            }),
          status: 400,
          code: 'MalformedBase64',
        },
        {
          name: 'bad DER',
          call: () =>
            a.call('/v1/chips', {
              headers: idem(),
              body: { chipCertificate: Buffer.from('hello').toString('base64'), eumCertificate: 'MAA=' },
            }),
          status: 422,
          code: 'ChipCertificateInvalid',
        },
        {
          name: 'an oversized body',
          call: () =>
            a.call('/v1/chips', {
              headers: idem(),
              body: { chipCertificate: 'A'.repeat(300 * 1024), eumCertificate: 'AAAA' },
            }),
          status: 413,
          code: 'PayloadTooLarge',
        },
        {
          name: 'an unknown field',
          call: () =>
            a.call('/v1/releases', {
              headers: idem(),
              body: { eid: chip.eid, newSmId: BETA, unlockcode: 'x' },
            }),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'a missing field',
          call: () => a.call('/v1/releases', { headers: idem(), body: { eid: chip.eid } }),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'a wrong type',
          call: () =>
            a.call('/v1/port-ins', {
              headers: idem(),
              body: { eid: chip.eid, currentSmId: BETA, ask: 'yes' },
            }),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'an EID failing its check digits',
          call: () =>
            a.call('/v1/releases', { headers: idem(), body: { eid: '1'.repeat(32), newSmId: BETA } }),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'a malformed EID in the path',
          call: () => a.call('/v1/chips/12345'),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'a bad query value',
          call: () => a.call('/v1/transfers?direction=sideways'),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'a bad direction for the counts',
          call: () => a.call('/v1/transfers/counts?direction=sideways'),
          status: 400,
          code: 'InvalidInput',
        },
        {
          name: 'a body that is not JSON',
          call: () =>
            a.call('/v1/chips', {
              headers: { ...idem(), 'content-type': 'text/plain' },
              body: 'chipCertificate=AA',
            }),
          status: 415,
          code: 'UnsupportedMediaType',
        },
        {
          name: 'an unknown route',
          call: () => a.call('/v1/nothing-here'),
          status: 404,
          code: 'RouteNotFound',
        },
      ];
      for (const c of cases) {
        const before = await dump();
        const r = await c.call();
        assert.equal(r.status, c.status, `${c.name}: ${r.text}`);
        assert.equal(codeOf(r), c.code, `${c.name}: ${r.text}`);
        assert.deepEqual(await dump(), before, `${c.name} changed the store`);
      }
      // Refusals that come before any route: still our error shape.
      const badUrl = await a.call('/v1/chips/%E0%A4%A');
      assert.equal(badUrl.status, 400, badUrl.text);
      assert.equal(codeOf(badUrl), 'BadRequest');
      for (const [bytes, status, code] of [
        ['NOT HTTP AT ALL\r\n\r\n', 400, 'BadRequest'],
        [`GET /v1/chips HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HeadersTooLarge'],
      ] as const) {
        const raw = await rawExchange(world.get(ALPHA).url, world.identity(ALPHA).caPem, bytes);
        assert.match(raw, new RegExp(`^HTTP/1.1 ${status} `), raw);
        assert.equal((JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as ErrorJson).error.code, code);
      }
      const missing = await a.call('/v1/releases', { headers: idem(), body: { eid: chip.eid } });
      assert.equal((missing.json as ErrorJson).error.details.field, 'newSmId');
      // A choice of values names the values; an unknown state is refused, not an empty list.
      const sideways = await a.call('/v1/transfers?direction=sideways');
      assert.match((sideways.json as ErrorJson).error.message, /must be one of: "outgoing", "incoming"/);
      const bogus = await a.call('/v1/transfers?state=permitted,bogus');
      assert.equal(bogus.status, 400, bogus.text);
      assert.equal(codeOf(bogus), 'InvalidInput');
      assert.match((bogus.json as ErrorJson).error.message, /"bogus".*keyEstablished/);
      // A body over a route's own limit names that limit (the bulk route takes 8 MiB, the others 256 KiB).
      const hugeBulk = await a.call('/v1/bulk-transfers', {
        headers: idem(),
        body: { kind: 'release', newSmId: BETA, eids: ['x'.repeat(9 * 1024 * 1024)] },
      });
      assert.equal(hugeBulk.status, 413, hugeBulk.text);
      assert.equal((hugeBulk.json as ErrorJson).error.details.limit, BULK_BODY_LIMIT);
      for (const path of [
        '/v1/transfers?state=',
        `/v1/audit?eid=${'1'.repeat(32)}`,
        '/v1/audit?transferId=%20',
      ]) {
        const r = await a.call(path);
        assert.deepEqual([r.status, codeOf(r)], [400, 'InvalidInput'], `${path}: ${r.text}`);
      }
    });

    it('OpenAPI is served at /docs/json with every route', async () => {
      const r = await smClient(world, ALPHA).call('/docs/json');
      assert.equal(r.status, 200);
      const doc = r.json as { openapi: string; paths: Record<string, Record<string, unknown>> };
      assert.equal(doc.openapi, '3.1.0');
      const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      );
      for (const route of [
        'POST /v1/chips',
        'GET /v1/chips',
        'GET /v1/chips/{eid}',
        'PUT /v1/chips/{eid}/lock',
        'POST /v1/releases',
        'POST /v1/port-ins',
        'POST /v1/transfers/{id}/approve',
        'POST /v1/transfers/{id}/reject',
        'GET /v1/transfers',
        'GET /v1/transfers/{id}',
        'GET /v1/audit',
        'POST /peer/v1/messages',
        'GET /peer/v1/transfers/{id}',
        'GET /device/v1/chips/{eid}/messages',
        'POST /device/v1/poll',
        'POST /device/v1/transfer-requests',
        'POST /device/v1/handover-results',
        'POST /device/v1/chip-results',
      ]) {
        assert.ok(routes.includes(route), `${route} is documented`);
      }
    });
  });
}

describe('server faults', () => {
  test('an unexpected failure is 500 InternalError and leaks nothing of its cause', async () => {
    const world = await createHttpWorld({ sms: [{ smId: ALPHA, operators: [{ id: 'mno-a' }] }] });
    try {
      const broken: SmStore = {
        transaction: () => Promise.reject(new Error('connection to db:5432 failed, password=hunter2')),
      };
      const base = world.get(ALPHA).config;
      const handle = await startSmServer(
        { ...base, listen: { host: '127.0.0.1', port: 0 } },
        { store: broken, logger: false, unlockScrypt: FAST_SCRYPT },
      );
      try {
        const token = world.get(ALPHA).tokens.get('mno-a')!;
        const r = await httpsCall(`${handle.url}/v1/chips`, {
          headers: { authorization: `Bearer ${token}` },
          expectedSmId: ALPHA,
          caPem: world.identity(ALPHA).caPem,
          trustedCis: [world.pki.ci.certificate],
        });
        assert.equal(r.status, 500);
        assert.equal(codeOf(r), 'InternalError');
        assert.ok(!r.text.includes('hunter2') && !r.text.includes('5432'), r.text);
      } finally {
        await handle.close();
      }
    } finally {
      await world.close();
    }
  });
});
