/**
 * The operator CLI against real HTTPS SMs (issue "SM services"): `handover chips …` and
 * `handover transfer …` run as child processes (`node --import tsx src/cli/main.ts`), exactly
 * as an operator would run them, against two SMs started in this process; the chip is driven
 * in-process by the test acting as the device agent (poll, carry the chip's answers). Exit codes:
 * 0 success, 1 refused (the JSON error code on stderr), 2 usage errors.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ChipCard } from '../src/chip/apdu.ts';
import { createChipState } from '../src/chip/create.ts';
import { FileStateStore } from '../src/chip/file-store.ts';
import { ChipProcessor } from '../src/chip/processor.ts';
import { sendCommand } from '../src/device/apdu-client.ts';
import { certificateToPem } from '../src/protocol/pki/certificate.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import {
  ALPHA,
  BETA,
  createHttpWorld,
  eventually,
  freePort,
  type HttpWorld,
  smClient,
} from './support/http-world.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment without HANDOVER_* (so only the flags a test gives count). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HANDOVER_')) env[k] = v;
  return env;
}

function handover(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { cwd: ROOT, env: cleanEnv(), timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The one JSON object a successful command prints. */
function out<T>(r: Run): T {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, r.stdout);
  return JSON.parse(lines[0]!) as T;
}

/** The error code of a refusal (exit 1, `{"error":{…}}` on stderr). */
function refusal(r: Run, exit = 1): string {
  assert.equal(r.code, exit, `stdout ${r.stdout} stderr ${r.stderr}`);
  assert.equal(r.stdout, '');
  const body = JSON.parse(r.stderr.trim()) as { error: { code: string; message: string } };
  assert.equal(typeof body.error.message, 'string');
  return body.error.code;
}

interface Chip {
  eid: string;
  operatorId: string;
  status: string;
  counter: number;
  lock: { kind: string; until?: string; failedAttempts?: number; lockedOut?: boolean };
}
interface Transfer {
  id: string;
  state: string;
  direction: string;
  eid: string;
  peerSmId: string;
  operatorId: string;
}

/** A running `handover transfer watch`; `started` resolves at its first line of output. */
function watch(args: readonly string[]): { child: ChildProcess; started: Promise<void>; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'transfer', 'watch', ...args], {
    cwd: ROOT,
    env: cleanEnv(),
  });
  let stdout = '';
  let stderr = '';
  let firstLine: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    firstLine = resolve;
  });
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
    if (stdout.includes('\n')) firstLine();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      firstLine();
      resolve({ code: code ?? -1, stdout, stderr });
    }),
  );
  return { child, started, done };
}

describe('the operator CLI over HTTPS', () => {
  let world: HttpWorld;
  let caFile: string;
  /** --sm, --token, --ca of an operator at an SM. */
  let as: (smId: string, operatorId: string) => string[];
  const watchers: ChildProcess[] = [];

  before(async () => {
    world = await createHttpWorld({
      sms: [
        {
          smId: ALPHA,
          operators: [
            { id: 'mno-a', approvalRequired: false },
            { id: 'mno-r', approvalRequired: true },
          ],
        },
        { smId: BETA, operators: [{ id: 'mno-b' }] },
      ],
    });
    caFile = join(world.dir, 'pki', 'ci.pem');
    writeFileSync(caFile, certificateToPem(world.pki.ci.certificate));
    as = (smId, operatorId) => [
      '--sm',
      world.get(smId).url,
      '--token',
      world.get(smId).tokens.get(operatorId)!,
      '--ca',
      caFile,
    ];
  });
  after(async () => {
    for (const w of watchers) if (w.exitCode === null) w.kill();
    await world.close();
  });

  /** Carries the permission to the chip and its answers to the new SM, as a device agent does. */
  async function device(eid: string, send: (der: Uint8Array) => Promise<Uint8Array>): Promise<void> {
    const polled = await smClient(world, ALPHA).call(`/device/v1/chips/${eid}/messages`);
    assert.equal(polled.status, 200, polled.text);
    const [permission] = (polled.json as { messages: string[] }).messages;
    assert.ok(permission, 'a permission waits for the chip');
    const request = await send(bytes(permission));
    const beta = smClient(world, BETA);
    const answered = await beta.call('/device/v1/transfer-requests', { body: { message: b64(request) } });
    assert.equal(answered.status, 200, answered.text);
    const result = await send(bytes((answered.json as { message: string }).message));
    const done = await beta.call('/device/v1/handover-results', { body: { message: b64(result) } });
    assert.equal(done.status, 200, done.text);
  }

  test('usage errors exit 2; a wrong token exits 1 with Unauthenticated', async () => {
    const down = `https://127.0.0.1:${await freePort()}`;
    const [noSm, badToken, noLockKind, badDate, unreachable, badTimeout] = await Promise.all([
      handover(['chips', 'list', '--token', 'x', '--ca', caFile]),
      handover(['chips', 'list', '--sm', world.get(ALPHA).url, '--token', 'not-a-token', '--ca', caFile]),
      handover(['chips', 'lock', world.eid(1), ...as(ALPHA, 'mno-a')]),
      handover(['chips', 'lock', world.eid(1), '--until', 'soon', ...as(ALPHA, 'mno-a')]),
      handover(['transfer', 'list', '--sm', down, '--token', 'x', '--ca', caFile]),
      handover(['transfer', 'watch', 'tr_x', '--timeout', 'soon', ...as(ALPHA, 'mno-a')]),
    ]);
    assert.equal(refusal(noSm, 2), 'UsageError');
    assert.match(noSm.stderr, /--sm/);
    assert.equal(refusal(badToken), 'Unauthenticated');
    assert.ok(!badToken.stderr.includes('not-a-token'), 'the token is never printed');
    assert.equal(refusal(noLockKind, 2), 'UsageError');
    assert.equal(refusal(badDate, 2), 'UsageError');
    assert.equal(refusal(unreachable), 'SmUnreachable');
    assert.equal(refusal(badTimeout, 2), 'UsageError');
  });

  test('trust and input problems are named: another CI, a key as --ca, http://, a wrong chip, polls that all fail', async () => {
    const other = createDevPki({
      curve: 'p256',
      dir: join(world.dir, 'other-pki'),
      smIds: ['sm-other.example'],
    });
    const otherCa = join(world.dir, 'other-ci.pem');
    writeFileSync(otherCa, certificateToPem(other.ci.certificate));
    const keyFile = join(world.dir, 'a-key.pem');
    writeFileSync(keyFile, other.ci.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const token = ['--token', world.get(ALPHA).tokens.get('mno-a')!];
    const url = world.get(ALPHA).url;
    const statePath = join(world.dir, 'chip-30.json');
    new FileStateStore(statePath).save(
      createChipState({
        identity: {
          kind: 'issue',
          eid: world.eid(30),
          eumCertificate: world.pki.eum.certificate,
          eumKey: world.pki.eum.privateKey,
        },
        ciCertificates: [world.pki.ci.certificate],
        smId: ALPHA,
        smCertificate: world.pki.sms.get(ALPHA)!.certificate,
      }),
    );
    const down = `https://127.0.0.1:${await freePort()}`;
    const device = (eid: string, sm: string, ca: string, state: string) =>
      handover([
        'device',
        'run',
        '--eid',
        eid,
        '--sm',
        sm,
        '--ca',
        ca,
        '--chip-state',
        state,
        '--max-polls',
        '2',
        '--interval',
        '10',
      ]);
    const [untrusted, keyAsCa, plainHttp, noState, wrongChip, deviceUntrusted, allFailed] = await Promise.all(
      [
        handover(['chips', 'list', '--sm', url, ...token, '--ca', otherCa]),
        handover(['chips', 'list', '--sm', url, ...token, '--ca', keyFile]),
        handover(['chips', 'list', '--sm', url.replace('https:', 'http:'), ...token, '--ca', caFile]),
        device(world.eid(30), url, caFile, join(world.dir, 'no-such-chip.json')),
        device(world.eid(31), url, caFile, statePath),
        device(world.eid(30), url, otherCa, statePath),
        device(world.eid(30), down, caFile, statePath),
      ],
    );
    assert.equal(refusal(untrusted), 'TlsUntrusted');
    assert.match(untrusted.stderr, /--ca/);
    assert.equal(refusal(keyAsCa, 2), 'UsageError');
    assert.match(keyAsCa.stderr, /no PEM certificate/);
    assert.equal(refusal(plainHttp, 2), 'UsageError');
    assert.match(plainHttp.stderr, /https:\/\//);
    assert.equal(refusal(noState, 2), 'UsageError');
    assert.equal(refusal(wrongChip, 2), 'UsageError');
    assert.match(wrongChip.stderr, new RegExp(`is ${world.eid(30)}, not --eid ${world.eid(31)}`));
    // Untrusted: stops at the first poll (exit 1, TlsUntrusted), instead of retrying forever.
    assert.equal(deviceUntrusted.code, 1, deviceUntrusted.stderr);
    assert.match(deviceUntrusted.stderr, /"code":"TlsUntrusted"/);
    // Nothing listens: every poll failed, so the run is a failure (exit 1), with its count.
    assert.equal(allFailed.code, 1, allFailed.stderr);
    const done = JSON.parse(allFailed.stdout.trim().split('\n').at(-1)!) as {
      done: boolean;
      polls: number;
      failures: number;
    };
    assert.deepEqual([done.done, done.polls, done.failures], [true, 2, 2]);
  });

  test('chips register (state file), list, show, lock (all three kinds); a locked chip refuses a release', async () => {
    const eid = world.eid(10);
    const statePath = join(world.dir, 'chip-10.json');
    new FileStateStore(statePath).save(
      createChipState({
        identity: {
          kind: 'issue',
          eid,
          eumCertificate: world.pki.eum.certificate,
          eumKey: world.pki.eum.privateKey,
        },
        ciCertificates: [world.pki.ci.certificate],
        smId: ALPHA,
        smCertificate: world.pki.sms.get(ALPHA)!.certificate,
      }),
    );
    const a = as(ALPHA, 'mno-a');
    const registered = out<Chip>(await handover(['chips', 'register', '--state', statePath, ...a]));
    assert.deepEqual(
      {
        eid: registered.eid,
        operatorId: registered.operatorId,
        status: registered.status,
        lock: registered.lock,
      },
      { eid, operatorId: 'mno-a', status: 'managed', lock: { kind: 'unlocked' } },
    );
    const [again, list, show, otherOperator] = await Promise.all([
      handover(['chips', 'register', '--state', statePath, ...a]),
      handover(['chips', 'list', ...a]),
      handover(['chips', 'show', eid, ...a]),
      handover(['chips', 'show', eid, ...as(ALPHA, 'mno-r')]),
    ]);
    assert.ok(out<{ chips: Chip[] }>(list).chips.some((c) => c.eid === eid && c.operatorId === 'mno-a'));
    assert.equal(out<Chip>(show).eid, eid);
    assert.equal(refusal(otherOperator), 'NotAuthorised');
    assert.equal(refusal(again), 'ChipExists');

    // lockedUntil: a release is refused, exit 1 with the code.
    const until = '2099-01-01T00:00:00.000Z';
    const dated = out<Chip>(await handover(['chips', 'lock', eid, '--until', '2099-01-01T00:00:00Z', ...a]));
    assert.deepEqual(dated.lock, { kind: 'lockedUntil', until });
    const release = ['transfer', 'release', '--eid', eid, '--to', BETA, ...a];
    assert.equal(refusal(await handover(release)), 'ChipLocked');

    // lockedUntilCode: without the code refused, a wrong code counted; the code is never echoed.
    const coded = await handover(['chips', 'lock', eid, '--code', 'UNLOCK-CLI-1', ...a]);
    assert.deepEqual(out<Chip>(coded).lock, { kind: 'lockedUntilCode', failedAttempts: 0, lockedOut: false });
    assert.ok(!coded.stdout.includes('UNLOCK-CLI-1'));
    assert.equal(refusal(await handover(release)), 'ChipLocked');
    assert.equal(refusal(await handover([...release, '--unlock-code', 'WRONG'])), 'UnlockCodeInvalid');
    assert.equal(out<Chip>(await handover(['chips', 'show', eid, ...a])).lock.failedAttempts, 1);

    // unlocked again.
    const open = out<Chip>(await handover(['chips', 'lock', eid, '--unlocked', ...a]));
    assert.deepEqual(open.lock, { kind: 'unlocked' });
  });

  test('release after a port-in order (--no-ask), the chip moved by its state file, watched to the end', async () => {
    const eid = world.eid(11);
    const statePath = join(world.dir, 'chip-11.json');
    const store = new FileStateStore(statePath);
    store.save(
      createChipState({
        identity: {
          kind: 'issue',
          eid,
          eumCertificate: world.pki.eum.certificate,
          eumKey: world.pki.eum.privateKey,
        },
        ciCertificates: [world.pki.ci.certificate],
        smId: ALPHA,
        smCertificate: world.pki.sms.get(ALPHA)!.certificate,
      }),
    );
    const card = new ChipCard(new ChipProcessor(store));
    const send = (der: Uint8Array) => sendCommand((apdu) => card.transmit(apdu), der);
    const a = as(ALPHA, 'mno-a');
    const b = as(BETA, 'mno-b');
    // The current MNO registers and locks the chip while the new MNO orders without asking.
    const registering = (async () => {
      out<Chip>(await handover(['chips', 'register', '--state', statePath, ...a]));
      out<Chip>(await handover(['chips', 'lock', eid, '--code', 'UNLOCK-CLI-2', ...a]));
    })();
    const order = out<{ orderId: string; transfer: Transfer }>(
      await handover([
        'transfer',
        'port-in',
        '--eid',
        eid,
        '--from',
        ALPHA,
        '--activation-code',
        'AC-11',
        '--no-ask',
        ...b,
      ]),
    );
    assert.equal(order.transfer.state, 'ordered');
    assert.equal(order.transfer.direction, 'incoming');
    await registering;
    // The current MNO releases with the unlock code.
    const released = out<Transfer>(
      await handover([
        'transfer',
        'release',
        '--eid',
        eid,
        '--to',
        BETA,
        '--activation-code',
        'AC-11',
        '--unlock-code',
        'UNLOCK-CLI-2',
        ...a,
      ]),
    );
    assert.deepEqual(
      {
        state: released.state,
        direction: released.direction,
        eid: released.eid,
        peerSmId: released.peerSmId,
      },
      { state: 'permitted', direction: 'outgoing', eid, peerSmId: BETA },
    );

    // list and show, with filters.
    const [listed, filtered, none, shown, counts] = await Promise.all([
      handover(['transfer', 'list', ...a]),
      handover(['transfer', 'list', '--eid', eid, '--state', 'permitted', '--direction', 'outgoing', ...a]),
      handover(['transfer', 'list', '--eid', eid, '--direction', 'incoming', ...a]),
      handover(['transfer', 'show', released.id, ...a]),
      handover(['transfer', 'counts', '--direction', 'outgoing', ...a]),
    ]);
    const listedOutgoing = out<{ transfers: Transfer[] }>(listed).transfers.filter(
      (t) => t.direction === 'outgoing',
    );
    const counted = out<{ total: number; counts: Record<string, number> }>(counts);
    assert.equal(counted.total, listedOutgoing.length);
    assert.equal(counted.counts.permitted, listedOutgoing.filter((t) => t.state === 'permitted').length);
    assert.ok(out<{ transfers: Transfer[] }>(listed).transfers.some((t) => t.id === released.id));
    assert.deepEqual(
      out<{ transfers: Transfer[] }>(filtered).transfers.map((t) => t.id),
      [released.id],
    );
    assert.deepEqual(out<{ transfers: Transfer[] }>(none).transfers, []);
    assert.equal(out<Transfer>(shown).state, 'permitted');
    assert.equal(refusal(await handover(['transfer', 'show', 'tr_nope', ...a])), 'UnknownTransfer');

    // Both sides watched while the device moves the chip.
    const atAlpha = watch([released.id, '--interval', '100', '--timeout', '60', ...a]);
    const atBeta = watch([order.transfer.id, '--interval', '100', '--timeout', '60', ...b]);
    watchers.push(atAlpha.child, atBeta.child);
    // The watchers print the steps so far first; then the chip moves, and they follow it.
    await Promise.all([atAlpha.started, atBeta.started]);
    await device(eid, send);
    assert.equal(store.load().assignment.smId, BETA);

    const [alphaRun, betaRun] = await Promise.all([atAlpha.done, atBeta.done]);
    for (const [run, steps] of [
      [alphaRun, ['transferRequested', 'permissionIssued', 'transferCompleted', 'chipReleased']],
      [betaRun, ['transferCompleted']],
    ] as const) {
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const last = lines.at(-1)!;
      assert.equal(last.state, 'completed');
      assert.ok(
        lines.every((l) => typeof l.step === 'string' || typeof l.state === 'string'),
        run.stdout,
      );
      const printed = lines.filter((l) => typeof l.step === 'string').map((l) => l.step);
      for (const s of steps) assert.ok(printed.includes(s), `${s} in ${printed.join(', ')}`);
      assert.ok(printed.length >= 2, run.stdout);
    }
    const [after, adopted, gone] = await Promise.all([
      handover(['transfer', 'show', order.transfer.id, ...b]),
      handover(['chips', 'show', eid, ...b]),
      handover(['chips', 'show', eid, ...a]),
    ]);
    assert.equal(out<Transfer>(after).state, 'completed');
    assert.equal(out<Chip>(adopted).status, 'managed');
    assert.equal(refusal(gone), 'ChipNotManaged');
  });

  test('approval: port-in asks, the current MNO approves or rejects; watch exits 1 on a rejection', async () => {
    const r = as(ALPHA, 'mno-r');
    const b = as(BETA, 'mno-b');
    const approvedChip = createHttpTestChip(world.pki, world.eid(12), ALPHA);
    const rejectedChip = createHttpTestChip(world.pki, world.eid(13), ALPHA);
    // Registered from certificate files (DER) this time.
    const eumCert = join(world.dir, 'eum.pem');
    writeFileSync(eumCert, certificateToPem(world.pki.eum.certificate));
    await Promise.all(
      [approvedChip, rejectedChip].map(async (chip) => {
        const reg = await chip.registration();
        const chipCert = join(world.dir, `${chip.eid}.der`);
        writeFileSync(chipCert, Buffer.from(reg.chipCertificate, 'base64'));
        const c = out<Chip>(
          await handover(['chips', 'register', '--chip-cert', chipCert, '--eum-cert', eumCert, ...r]),
        );
        assert.equal(c.operatorId, 'mno-r');
      }),
    );
    const [o1, o2] = await Promise.all(
      [approvedChip, rejectedChip].map(async (chip) =>
        out<{ transfer: Transfer }>(
          await handover(['transfer', 'port-in', '--eid', chip.eid, '--from', ALPHA, ...b]),
        ),
      ),
    );
    // The asks arrive at the current SM and wait for mno-r.
    // (Waited for in process, then listed by the CLI: each CLI run is a process start.)
    const pendingAt = smClient(world, ALPHA, { operator: 'mno-r' });
    await eventually(
      async () => {
        const list = (await pendingAt.call('/v1/transfers?state=awaitingApproval')).json as {
          transfers: Transfer[];
        };
        return list.transfers.length === 2 || undefined;
      },
      20_000,
      'two asks awaiting approval',
    );
    const waiting = out<{ transfers: Transfer[] }>(
      await handover(['transfer', 'list', '--state', 'awaitingApproval', ...r]),
    ).transfers;
    assert.equal(waiting.length, 2);
    const idOf = (eid: string) => waiting.find((t) => t.eid === eid)!.id;
    // Not mno-a's to approve.
    assert.equal(
      refusal(await handover(['transfer', 'approve', idOf(approvedChip.eid), ...as(ALPHA, 'mno-a')])),
      'NotAuthorised',
    );
    const approved = out<Transfer>(await handover(['transfer', 'approve', idOf(approvedChip.eid), ...r]));
    assert.equal(approved.state, 'permitted');
    const rejected = out<Transfer>(await handover(['transfer', 'reject', idOf(rejectedChip.eid), ...r]));
    assert.equal(rejected.state, 'rejected');
    assert.equal(refusal(await handover(['transfer', 'approve', rejected.id, ...r])), 'InvalidState');

    const rejectedWatch = watch([rejected.id, '--interval', '100', ...r]);
    const approvedWatch = watch([o1!.transfer.id, '--interval', '100', '--timeout', '60', ...b]);
    watchers.push(rejectedWatch.child, approvedWatch.child);
    await approvedWatch.started;
    await device(approvedChip.eid, approvedChip.send);
    const [rw, aw] = await Promise.all([rejectedWatch.done, approvedWatch.done]);
    assert.equal(rw.code, 1, rw.stderr);
    assert.equal(JSON.parse(rw.stdout.trim().split('\n').at(-1)!).state, 'rejected');
    assert.equal(aw.code, 0, aw.stderr);
    assert.equal(JSON.parse(aw.stdout.trim().split('\n').at(-1)!).state, 'completed');
    // The new SM learns of the rejection over the peer API.
    const ended = smClient(world, BETA, { operator: 'mno-b' });
    await eventually(
      async () =>
        ((await ended.call(`/v1/transfers/${o2!.transfer.id}`)).json as Transfer).state === 'failed' ||
        undefined,
      20_000,
      'the rejection to reach the new SM',
    );
    const failed = out<Transfer>(await handover(['transfer', 'show', o2!.transfer.id, ...b]));
    assert.equal(failed.state, 'failed');
  });
});
