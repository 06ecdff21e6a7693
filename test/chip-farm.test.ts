/**
 * The chip farm (issue 4, item 2): chip states in one SQLite file, crash-safe per row; a farm of
 * 1,000 chips served over TCP with addressed frames, every chip answering for its own EID; the
 * bounded card-session map; the faster chip-key loader of command-context.ts.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { chipSigner } from '../src/chip/command-context.ts';
import { connectFarm } from '../src/chip/farm/farm-link.ts';
import { farmRequest, SW_EID_NOT_FOUND, serveFarm } from '../src/chip/farm/farm-server.ts';
import { LruMap } from '../src/chip/farm/lru.ts';
import {
  type ChipFarm,
  createFarm,
  FarmChipNotFound,
  farmEid,
  openFarm,
} from '../src/chip/farm/sqlite-farm-store.ts';
import { type ChipState, ChipStateInvalid, validateChipState } from '../src/chip/state.ts';
import { FrameReader, frame } from '../src/chip/tcp-server.ts';
import { sendCommand } from '../src/device/apdu-client.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../src/protocol/asn1/info.ts';
import type { Curve } from '../src/protocol/crypto/curves.ts';
import { ecdsaVerify } from '../src/protocol/crypto/ecdsa.ts';
import { privateKeyFromScalar } from '../src/protocol/crypto/keys.ts';
import { oneTimeKeyFromPem } from '../src/protocol/crypto/one-time-key.ts';
import { parseCertificate } from '../src/protocol/pki/certificate.ts';
import { createDevPki, type DevPki } from '../src/protocol/pki/dev-pki.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'handover-farm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const pkis = new Map<Curve, DevPki>();
function pkiFor(curve: Curve, dir: string): DevPki {
  const made = pkis.get(curve) ?? createDevPki({ curve, dir: join(dir, `pki-${curve}`), force: true });
  pkis.set(curve, made);
  return made;
}

async function smallFarm(dir: string, count = 5, curve: Curve = 'p256'): Promise<ChipFarm> {
  return createFarm({
    pki: pkiFor(curve, dir),
    count,
    smId: 'sm-alpha.example',
    path: join(dir, 'farm.sqlite'),
  });
}

const withCounter = (s: ChipState, counter: number): ChipState => ({
  ...s,
  assignment: { ...s.assignment, counter },
});

test('LruMap keeps at most its limit, dropping the least recently used', () => {
  const evicted: string[] = [];
  const m = new LruMap<string, number>(3, (k) => evicted.push(k));
  m.set('a', 1).set('b', 2).set('c', 3);
  assert.equal(m.get('a'), 1); // a is now the most recent
  m.set('d', 4);
  assert.deepEqual(evicted, ['b']);
  assert.deepEqual([...m.keys()], ['c', 'a', 'd']);
  for (let i = 0; i < 1000; i++) m.set(`k${i}`, i);
  assert.equal(m.size, 3);
  assert.throws(() => new LruMap(0), RangeError);
});

for (const curve of ['p256', 'brainpoolP256r1'] as Curve[]) {
  test(`a farm on ${curve}: every chip has its own key and certificate, all fully valid`, async (t) => {
    const dir = tempDir(t);
    const farm = await smallFarm(dir, 6, curve);
    t.after(() => farm.close());
    const eids = [...farm.eids()];
    assert.deepEqual(
      eids,
      [1, 2, 3, 4, 5, 6].map((i) => farmEid('89001012', i)),
    );
    assert.deepEqual(farm.verify(), { checked: 6, invalid: [], invalidCount: 0 });
    const states = eids.map((e) => farm.load(e));
    assert.equal(new Set(states.map((s) => s.chipPrivateKey)).size, 6);
    assert.equal(
      new Set(states.map((s) => parseCertificate(Buffer.from(s.chipCertificate, 'base64')).serial)).size,
      6,
    );
    for (const s of states) {
      assert.equal(s.curve, curve);
      assert.equal(s.assignment.smId, 'sm-alpha.example');
      assert.equal(s.assignment.counter, 0);
      assert.equal(farm.version(s.eid), 0);
    }
    assert.deepEqual(farm.info.count, 6);
    assert.equal([...farm.identities()].length, 6);
  });
}

test('a farm row: load and save one chip; shared certificates stored once; wrong EIDs refused', async (t) => {
  const dir = tempDir(t);
  const farm = await smallFarm(dir, 3);
  t.after(() => farm.close());
  const [a, b] = [...farm.eids()] as [string, string];
  const store = farm.store(a);
  store.save(withCounter(store.load(), 7));
  assert.equal(farm.load(a).assignment.counter, 7);
  assert.equal(farm.load(b).assignment.counter, 0);
  assert.equal(farm.version(a), 1);
  assert.deepEqual(validateChipState(farm.load(a)), farm.load(a));

  assert.throws(() => farm.load(farmEid('89001012', 999)), FarmChipNotFound);
  assert.throws(() => farm.save(b, farm.load(a)), /saved as/);
  const stranger = { ...farm.load(a), eid: farmEid('89001012', 999) };
  assert.throws(() => farm.save(stranger.eid, stranger), FarmChipNotFound);

  const db = new BetterSqlite3(join(dir, 'farm.sqlite'), { readonly: true });
  t.after(() => db.close());
  assert.equal(db.prepare('SELECT count(*) FROM certs').pluck().get(), 3, 'EUM, CI and SM certificate, once');
  const row = db.prepare('SELECT state FROM chips WHERE eid = ?').pluck().get(b) as string;
  assert.ok(row.length < 1500, `a row is compact (${row.length} bytes)`);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
});

test('a row that is not a state of its chip is ChipStateInvalid', async (t) => {
  const dir = tempDir(t);
  const farm = await smallFarm(dir, 2);
  const [a, b] = [...farm.eids()] as [string, string];
  farm.close();
  const db = new BetterSqlite3(join(dir, 'farm.sqlite'));
  const rowOf = (eid: string) =>
    db.prepare('SELECT state FROM chips WHERE eid = ?').pluck().get(eid) as string;
  db.prepare('UPDATE chips SET state = ? WHERE eid = ?').run(rowOf(b), a); // b's state under a's key
  db.close();
  const again = openFarm(join(dir, 'farm.sqlite'));
  t.after(() => again.close());
  assert.throws(() => again.load(a), ChipStateInvalid);
  assert.equal(again.load(b).eid, b);
  assert.equal(again.verify().invalidCount, 1);
});

test('crash safety: a save that fails inside its transaction leaves the old row', async (t) => {
  const dir = tempDir(t);
  const farm = await smallFarm(dir, 3);
  t.after(() => farm.close());
  const [a, b, c] = [...farm.eids()] as [string, string, string];
  // The disk "fails" on the row write of any state with counter 13, after the certs insert.
  const db = new BetterSqlite3(join(dir, 'farm.sqlite'));
  db.exec(`CREATE TRIGGER fail_13 BEFORE UPDATE ON chips WHEN new.state LIKE '%"counter":13%'
           BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`);
  db.close();
  const before = farm.load(a);
  assert.throws(() => farm.save(a, withCounter(before, 13)), /disk on fire/);
  assert.deepEqual(farm.load(a), before);
  assert.equal(farm.version(a), 0);

  // Inside a group transaction: the failed save is undone alone, the others commit.
  farm.transaction(() => {
    farm.save(b, withCounter(farm.load(b), 1));
    assert.throws(() => farm.save(a, withCounter(farm.load(a), 13)));
    farm.save(c, withCounter(farm.load(c), 2));
  });
  assert.deepEqual(
    [a, b, c].map((e) => farm.load(e).assignment.counter),
    [0, 1, 2],
  );
  // A group transaction that throws undoes every save in it.
  assert.throws(() =>
    farm.transaction(() => {
      farm.save(b, withCounter(farm.load(b), 5));
      throw new Error('power cut');
    }),
  );
  assert.equal(farm.load(b).assignment.counter, 1);
});

test('crash safety: a process killed while saving leaves each row old or new, never torn', async (t) => {
  const dir = tempDir(t);
  const farm = await smallFarm(dir, 2);
  const [a] = [...farm.eids()] as [string];
  farm.close();
  const path = join(dir, 'farm.sqlite');
  // The child saves counter 1, 2, 3, ... (each with a big profile list, so rows span pages) and
  // prints each counter once its save returned; it is killed at a random point.
  const code = `
    import { openFarm } from ${JSON.stringify(join(ROOT, 'src/chip/farm/sqlite-farm-store.ts'))};
    const farm = openFarm(${JSON.stringify(path)});
    const base = farm.load(${JSON.stringify(a)});
    for (let i = 1; ; i++) {
      const profiles = Array.from({ length: 1 + (i % 40) }, (_, k) => ({
        iccid: String(8900000000000000000n + BigInt(k)), operator: 'op-' + i, state: 'disabled' }));
      farm.save(base.eid, { ...base, profiles, assignment: { ...base.assignment, counter: i } });
      process.stdout.write(i + '\\n');
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let acknowledged = 0;
  const killAt = 30 + Math.floor(Math.random() * 100);
  await new Promise<void>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      acknowledged = Number(l);
      if (acknowledged >= killAt) child.kill('SIGKILL');
    });
    child.on('exit', () => resolve());
  });
  assert.ok(acknowledged >= killAt, 'the child was saving when killed');
  const after = openFarm(path, { validate: 'full' });
  t.after(() => after.close());
  const state = after.load(a);
  const counter = state.assignment.counter;
  assert.ok(
    counter === acknowledged || counter === acknowledged + 1,
    `counter ${counter} vs ${acknowledged}`,
  );
  assert.equal(state.profiles.length, 1 + (counter % 40));
  assert.equal(state.profiles[0]?.operator, `op-${counter}`);
  assert.equal(after.verify().invalidCount, 0);
  const db = new BetterSqlite3(path, { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
});

test('createFarm refuses an existing file, an unknown SM and serials beyond the prefix', async (t) => {
  const dir = tempDir(t);
  const pki = pkiFor('p256', dir);
  const path = join(dir, 'f.sqlite');
  await assert.rejects(createFarm({ pki, count: 1, smId: 'sm-nope.example', path }), /no SM/);
  (await createFarm({ pki, count: 1, smId: 'sm-alpha.example', path })).close();
  await assert.rejects(createFarm({ pki, count: 1, smId: 'sm-alpha.example', path }), /exists already/);
  await assert.rejects(
    createFarm({
      pki,
      count: 2,
      smId: 'sm-alpha.example',
      path: join(dir, 'g.sqlite'),
      startSerial: 10 ** 22 - 1,
    }),
    /does not fit/,
  );
});

test('1,000 chips through the TCP farm server: each answers GetChipInfo with its own EID', async (t) => {
  const dir = tempDir(t);
  const farm = await smallFarm(dir, 1000);
  t.after(() => farm.close());
  const served = serveFarm(farm, { sessionsPerConnection: 128 });
  await new Promise<void>((r) => served.server.listen(0, '127.0.0.1', r));
  t.after(() => served.close());
  const { port } = served.server.address() as { port: number };
  const link = await connectFarm('127.0.0.1', port, { connections: 2 });
  t.after(() => link.close());

  const eids = [...farm.eids()];
  assert.equal(eids.length, 1000);
  const command = encodeGetChipInfo();
  const seen = new Set<string>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < eids.length) {
        const eid = eids[next++]!;
        const info = decodeChipInfo(await sendCommand((apdu) => link.transmit(eid, apdu), command));
        assert.equal(info.eid, eid);
        assert.equal(parseCertificate(info.chipCertificate).subject.serialNumber, eid);
        assert.equal(info.assignedSmId, 'sm-alpha.example');
        seen.add(info.eid);
      }
    }),
  );
  assert.equal(seen.size, 1000);
  assert.equal(link.inFlight, 0);
  assert.equal(served.stats.failedCommits, 0);
  assert.ok(served.stats.batches < served.stats.frames, 'frames share transactions');
  assert.deepEqual(farm.verify().invalidCount, 0, 'every issued chip validates fully');

  // The addressing layer's own status words.
  const unknown = farmEid('89001012', 5000);
  await assert.rejects(
    sendCommand((apdu) => link.transmit(unknown, apdu), command),
    /6A88/,
  );
  assert.equal(SW_EID_NOT_FOUND, 0x6a88);
  const raw = await rawExchange(port, [
    Uint8Array.of(1, 2, 3),
    farmRequest(eids[0]!, Uint8Array.of(0, 0xa4)),
  ]);
  assert.deepEqual(
    raw.map((r) => Buffer.from(r).toString('hex')),
    ['6700', '6700'],
  );
});

async function rawExchange(port: number, payloads: Uint8Array[]): Promise<Uint8Array[]> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      for (const p of payloads) s.write(frame(p));
    });
    const reader = new FrameReader();
    const got: Uint8Array[] = [];
    s.on('data', (chunk: Buffer) => {
      got.push(...reader.push(chunk));
      if (got.length === payloads.length) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
  });
}

/** node arguments for `handover chip farm --create` of `count` chips. */
function farmCommand(path: string, count: number, pki: string, eidsOut: string): string[] {
  const main = join(ROOT, 'src/cli/main.ts');
  return [
    '--import',
    'tsx',
    main,
    'chip',
    'farm',
    '--state',
    path,
    '--create',
    '--count',
    String(count),
    '--pki',
    pki,
    '--eids-out',
    eidsOut,
  ];
}

test('handover chip farm --create serves the chips and stops on SIGTERM', async (t) => {
  const dir = tempDir(t);
  createDevPki({ curve: 'p256', dir: join(dir, 'pki-p256') });
  const path = join(dir, 'cli.sqlite');
  const child = spawn(process.execPath, farmCommand(path, 20, join(dir, 'pki-p256'), join(dir, 'eids.txt')), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const first = await new Promise<string>((resolve) =>
    createInterface({ input: child.stdout }).once('line', resolve),
  );
  const ready = JSON.parse(first) as { listening: string; chips: number };
  assert.equal(ready.chips, 20);
  const [host, port] = ready.listening.split(':') as [string, string];
  const link = await connectFarm(host, Number(port));
  const eid = farmEid('89001012', 20);
  const info = decodeChipInfo(await sendCommand((apdu) => link.transmit(eid, apdu), encodeGetChipInfo()));
  assert.equal(info.eid, eid);
  assert.ok(
    stderr.some((l) => l.includes('"created":20')),
    stderr.join('\n'),
  );
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  link.close();
  const { readFileSync } = await import('node:fs');
  assert.equal(readFileSync(join(dir, 'eids.txt'), 'utf8').trim().split('\n').length, 20);
});

test('handover chip farm: an --eids-out that cannot be written is refused before the farm is made', async (t) => {
  const dir = tempDir(t);
  createDevPki({ curve: 'p256', dir: join(dir, 'pki') });
  const path = join(dir, 'refused.sqlite');
  for (const eidsOut of [dir, join(dir, 'no-such-folder', 'eids.txt')]) {
    const r = spawnSync(
      process.execPath,
      [...farmCommand(path, 2, join(dir, 'pki'), eidsOut), '--no-serve'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /"code":"UsageError".*--eids-out/);
    assert.equal(existsSync(path), false, 'no farm file is left behind');
  }
});

test('chipSigner loads PKCS#8 keys the fast way (JWK or SEC1) and other PEM through the general loader', async (t) => {
  const dir = tempDir(t);
  for (const curve of ['p256', 'brainpoolP256r1'] as Curve[]) {
    const farm = await createFarm({
      pki: pkiFor(curve, dir),
      count: 2,
      smId: 'sm-alpha.example',
      path: join(dir, `keys-${curve}.sqlite`),
    });
    for (const eid of farm.eids()) {
      const state = farm.load(eid);
      const cert = parseCertificate(Buffer.from(state.chipCertificate, 'base64'));
      const publicKey = createPublicKey({ key: Buffer.from(cert.spki), format: 'der', type: 'spki' });
      const signer = chipSigner(state);
      const data = new TextEncoder().encode(`data for ${eid}`);
      assert.equal(signer.curve, curve);
      assert.ok(ecdsaVerify(publicKey, data, signer.sign(data)));
      assert.deepEqual(signer.publicPoint, cert.publicPoint);
      // The same key as SEC1 PEM ("EC PRIVATE KEY"), which state files may hold too.
      const sec1 = createPrivateKey(state.chipPrivateKey).export({ format: 'pem', type: 'sec1' }).toString();
      const other = chipSigner({ ...state, chipPrivateKey: sec1 });
      assert.ok(ecdsaVerify(publicKey, data, other.sign(data)));
      assert.deepEqual(other.publicPoint, cert.publicPoint);
      // PKCS#8 without the optional public key (the fast path then builds SEC1, also for P-256).
      const scalar = oneTimeKeyFromPem(state.chipPrivateKey).scalar;
      const bare = privateKeyFromScalar(curve, scalar).export({ format: 'pem', type: 'pkcs8' }).toString();
      const third = chipSigner({ ...state, chipPrivateKey: bare });
      assert.ok(ecdsaVerify(publicKey, data, third.sign(data)));
      assert.deepEqual(third.publicPoint, cert.publicPoint);
      assert.throws(() =>
        chipSigner({
          ...state,
          chipPrivateKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
        }),
      );
    }
    farm.close();
  }
});
