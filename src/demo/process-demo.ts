/**
 * `npm run demo`: a port-in with an activation code across real processes: two SM servers on
 * localhost (mutual TLS between them, SQLite files), a chip served over TCP, and a device agent.
 * Prints each step as it happens and the final state of the chip and both SMs, then stops
 * everything it started.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createChipState } from '../chip/create.ts';
import { FileStateStore } from '../chip/file-store.ts';
import { summarizeChipState } from '../chip/state.ts';
import { freePort } from '../net/free-port.ts';
import { httpsJson } from '../net/https-json.ts';
import type { Curve } from '../protocol/crypto/curves.ts';
import { makeEid } from '../protocol/eid.ts';
import { HandoverError } from '../protocol/errors.ts';
import { certificateToPem } from '../protocol/pki/certificate.ts';
import { createDevPki, smFileBase } from '../protocol/pki/dev-pki.ts';
import { type Child, spawnHandover } from './child.ts';

export interface ProcessDemoOptions {
  readonly dir: string;
  readonly curve: Curve;
  readonly activationCode: string;
  readonly print: (line: string) => void;
  readonly timeoutMs?: number;
}

interface TransferView {
  id: string;
  state: string;
  direction: string;
  peerSmId: string;
  permissionId?: string;
}
interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  details: Record<string, unknown>;
}

const SM_IDS = ['sm-alpha.example', 'sm-beta.example'] as const;
const TERMINAL = new Set(['completed', 'rejected', 'cancelled', 'expired', 'failed']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runProcessDemo(o: ProcessDemoOptions): Promise<Record<string, unknown>> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let n = 0;
  const step = (who: string, what: string, detail = '') =>
    o.print(`${String(++n).padStart(2)}. ${who.padEnd(38)} ${what}${detail ? `  (${detail})` : ''}`);
  const children: Child[] = [];
  // The demo runs on the embedded default store, SQLite, whatever the caller's environment says.
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: '' };
  delete env.DATABASE_URL;

  try {
    const pki = createDevPki({ curve: o.curve, dir: join(o.dir, 'pki'), smIds: SM_IDS, force: true });
    step(
      'dev PKI',
      `CI, EUM (EID prefix ${pki.manifest.eidPrefix}), SM certificates`,
      `${o.curve}, ${pki.dir}`,
    );
    const ports = [await freePort(), await freePort()];
    const url = (i: number) => `https://127.0.0.1:${ports[i]}`;
    const tokens = SM_IDS.map(() => randomBytes(18).toString('base64url'));
    const operators = ['mno-a', 'mno-b'];
    SM_IDS.forEach((smId, i) => {
      const other = 1 - i;
      const otherId = SM_IDS[other]!;
      const config = {
        smId,
        keyFile: `pki/${smFileBase(smId)}.key`,
        certFile: `pki/${smFileBase(smId)}.pem`,
        ciFiles: ['pki/ci.pem'],
        listen: { host: '127.0.0.1', port: ports[i] },
        dataDir: `data/${smId}`,
        peers: [{ smId: otherId, baseUrl: url(other), certFile: `pki/${smFileBase(otherId)}.pem` }],
        operators: [
          {
            id: operators[i],
            tokenSha256: createHash('sha256').update(tokens[i]!).digest('hex'),
            approvalRequired: false,
          },
        ],
        permissionValidityHours: 24,
        logLevel: 'warn',
      };
      writeFileSync(join(o.dir, `${smId}.json`), `${JSON.stringify(config, null, 2)}\n`);
    });

    const sms = SM_IDS.map((smId) =>
      spawnHandover(smId, ['sm', 'start', '--config', join(o.dir, `${smId}.json`)], env),
    );
    children.push(...sms);
    for (const [i, c] of sms.entries()) {
      const ready = await c.waitFor<{ url: string }>((v) => typeof v.url === 'string', timeoutMs);
      step(
        `process ${SM_IDS[i]}`,
        'SM server listening',
        `${ready.url}, SQLite in ${join(o.dir, 'data', SM_IDS[i]!)}`,
      );
    }

    const eid = makeEid(`${pki.manifest.eidPrefix}${'1'.padStart(30 - pki.manifest.eidPrefix.length, '0')}`);
    const chipPath = join(o.dir, 'chip.json');
    const alphaCert = pki.sms.get(SM_IDS[0])!.certificate;
    new FileStateStore(chipPath).save(
      createChipState({
        identity: { kind: 'issue', eid, eumCertificate: pki.eum.certificate, eumKey: pki.eum.privateKey },
        ciCertificates: [pki.ci.certificate],
        smId: SM_IDS[0],
        smCertificate: alphaCert,
      }),
    );
    const chip = spawnHandover('chip', ['chip', 'serve', '--state', chipPath, '--port', '0'], env);
    children.push(chip);
    const { listening } = await chip.waitFor<{ listening: string }>(
      (v) => typeof v.listening === 'string',
      timeoutMs,
    );
    step('process chip', `chip ${eid} served over TCP, assigned to ${SM_IDS[0]}`, listening);

    const ca = [certificateToPem(pki.ci.certificate)];
    const call = <T>(i: number, method: string, path: string, body?: unknown) =>
      httpsJson<T>(method, `${url(i)}${path}`, body, {
        ca,
        expectedCommonName: SM_IDS[i],
        headers: {
          authorization: `Bearer ${tokens[i]}`,
          ...(method !== 'GET' && { 'idempotency-key': randomBytes(12).toString('hex') }),
        },
      });
    const chipState = new FileStateStore(chipPath).load();
    await call(0, 'POST', '/v1/chips', {
      chipCertificate: chipState.chipCertificate,
      eumCertificate: chipState.eumCertificate,
    });
    step(`mno-a → ${SM_IDS[0]}`, 'register chip (operator API, bearer token)');
    const order = await call<{ orderId: string; transfer: TransferView }>(1, 'POST', '/v1/port-ins', {
      eid,
      currentSmId: SM_IDS[0],
      activationCode: o.activationCode,
      ask: true,
    });
    step(`mno-b → ${SM_IDS[1]}`, 'order port-in with activation code', `transfer ${order.transfer.id}`);

    const name = (x: unknown) => (x === url(0) ? SM_IDS[0] : x === url(1) ? SM_IDS[1] : String(x));
    const device = spawnHandover(
      'device agent',
      [
        'device',
        'run',
        '--eid',
        eid,
        '--sm',
        url(0),
        '--ca',
        join(pki.dir, 'ci.pem'),
        '--chip',
        listening,
        '--interval',
        '200',
      ],
      env,
      (v) => {
        if (typeof v.step === 'string')
          step(`${name(v.from)} → ${name(v.to)}`, v.step, `via the device agent, ${String(v.bytes)} bytes`);
        if (v.error) step('device agent', 'error (will retry)', JSON.stringify(v.error));
      },
    );
    children.push(device);
    step('process device agent', `polling ${url(0)} for ${eid}`);

    const states: [string, string] = ['', ''];
    const ids: [string | undefined, string] = [undefined, order.transfer.id];
    while (Date.now() < deadline) {
      if (!ids[0])
        ids[0] = (
          await call<{ transfers: TransferView[] }>(0, 'GET', `/v1/transfers?eid=${eid}`)
        ).transfers[0]?.id;
      for (const i of [0, 1] as const) {
        const id = ids[i];
        if (!id) continue;
        const t = await call<TransferView>(i, 'GET', `/v1/transfers/${id}`);
        if (t.state !== states[i]) {
          states[i] = t.state;
          step(SM_IDS[i], `${t.direction} transfer ${t.state}`, t.id);
        }
      }
      if (TERMINAL.has(states[0]) && TERMINAL.has(states[1])) break;
      await sleep(150);
    }
    if (!(TERMINAL.has(states[0]) && TERMINAL.has(states[1]))) {
      throw new HandoverError(
        'DemoTimeout',
        `the transfer did not end in ${timeoutMs} ms (states: ${states.join(', ')})`,
      );
    }

    const side = async (i: number) => ({
      smId: SM_IDS[i],
      chips: (await call<{ chips: unknown[] }>(i, 'GET', '/v1/chips')).chips,
      transfers: (await call<{ transfers: TransferView[] }>(i, 'GET', '/v1/transfers')).transfers.map(
        (t) => ({
          id: t.id,
          direction: t.direction,
          state: t.state,
          peerSmId: t.peerSmId,
          permissionId: t.permissionId,
        }),
      ),
      audit: (await call<{ entries: AuditEntry[] }>(i, 'GET', '/v1/audit')).entries.map(
        (e) => `${e.at} ${e.actor} ${e.action}`,
      ),
    });
    const final = {
      chip: summarizeChipState(new FileStateStore(chipPath).load()),
      currentSm: await side(0),
      newSm: await side(1),
    };
    o.print('');
    o.print('Final state:');
    o.print(JSON.stringify(final, null, 2));
    return final;
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    if (children.length) o.print(`Stopped ${children.length} processes.`);
  }
}
