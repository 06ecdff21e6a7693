/**
 * The SM server's configuration and command (issue "SM services", items 1, 5, 6): the examples
 * load against a dev PKI made by `handover pki init`; every refusal is a ConfigInvalid naming the
 * field; the store location follows DATABASE_URL; `handover sm start` prints one JSON line when
 * listening and stops cleanly on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { loadCertificates } from '../src/protocol/pki/certificate.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';
import { startSmServer } from '../src/sm/server.ts';
import {
  ConfigInvalid,
  loadSmMaterial,
  parseSmConfig,
  readSmConfig,
  storeLocation,
  tokenSha256,
} from '../src/sm/server-config.ts';
import { MemoryStore } from '../src/sm/store/memory.ts';
import { ALPHA, BETA, freePort, httpsCall, tempDir } from './support/http-world.ts';

const examples = join(import.meta.dirname, '..', 'examples');
const exampleOf = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(examples, name), 'utf8')) as Record<string, unknown>;

function invalid(field: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ConfigInvalid, String(e));
    assert.equal(e.code, 'ConfigInvalid');
    assert.equal(e.details.field, field, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

describe('SM configuration', () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir('handover-config-');
    // As the examples' comments say: handover pki init --curve p256 --out examples/pki
    createDevPki({ curve: 'p256', dir: join(tmp.dir, 'pki') });
    copyFileSync(join(examples, 'sm-alpha.json'), join(tmp.dir, 'sm-alpha.json'));
    copyFileSync(join(examples, 'sm-beta.json'), join(tmp.dir, 'sm-beta.json'));
  });
  after(() => tmp.remove());

  test('the examples load against a dev PKI; relative paths resolve against the config folder', () => {
    for (const [file, smId, peer] of [
      ['sm-alpha.json', ALPHA, BETA],
      ['sm-beta.json', BETA, ALPHA],
    ] as const) {
      const config = readSmConfig(join(tmp.dir, file));
      assert.equal(config.smId, smId);
      assert.equal(config.keyFile, join(tmp.dir, 'pki', `sm-${smId}.key`));
      assert.deepEqual(config.ciFiles, [join(tmp.dir, 'pki', 'ci.pem')]);
      assert.equal(config.dataDir, join(tmp.dir, 'data', smId.replace('.example', '')));
      assert.equal(config.permissionValidityHours, 24);
      const material = loadSmMaterial(config);
      assert.deepEqual([...material.peers.keys()], [peer]);
      assert.equal(material.certificate.curve, 'p256');
    }
    const alpha = readSmConfig(join(tmp.dir, 'sm-alpha.json'));
    assert.equal(alpha.operators[0]?.tokenSha256, tokenSha256('dev-token-mno-a'));
  });

  test('the store: <dataDir>/sm.sqlite, or PostgreSQL when DATABASE_URL is set', () => {
    const config = readSmConfig(join(tmp.dir, 'sm-alpha.json'));
    assert.deepEqual(storeLocation(config, {}), { sqlitePath: join(config.dataDir, 'sm.sqlite') });
    assert.deepEqual(storeLocation(config, { DATABASE_URL: 'postgres://sm@db/handover' }), {
      databaseUrl: 'postgres://sm@db/handover',
    });
  });

  test('shape errors name the field and say what to do', () => {
    const base = exampleOf('sm-alpha.json');
    const parse = (patch: (c: Record<string, unknown>) => void) => {
      const c = structuredClone(base);
      patch(c);
      return () => parseSmConfig(c, tmp.dir, 'test.json');
    };
    const peer0 = (c: Record<string, unknown>) => (c.peers as Record<string, unknown>[])[0]!;
    const op0 = (c: Record<string, unknown>) => (c.operators as Record<string, unknown>[])[0]!;
    assert.throws(
      parse((c) => delete c.smId),
      invalid('smId', /missing/),
    );
    assert.throws(
      parse((c) => (c.lissten = {})),
      invalid('lissten', /unknown field/),
    );
    assert.throws(
      parse((c) => (c.listen = { host: '0.0.0.0', port: 70000 })),
      invalid('listen/port'),
    );
    assert.throws(
      parse((c) => delete (c.listen as Record<string, unknown>).host),
      invalid('listen/host'),
    );
    assert.throws(
      parse((c) => (c.ciFiles = [])),
      invalid('ciFiles'),
    );
    assert.throws(
      parse((c) => (peer0(c).baseUrl = 'http://127.0.0.1:8442')),
      invalid('peers/0/baseUrl', /https/),
    );
    assert.throws(
      parse((c) => (peer0(c).baseUrl = 'not a url')),
      invalid('peers/0/baseUrl'),
    );
    assert.throws(
      parse((c) => (peer0(c).smId = ALPHA)),
      invalid('peers/0/smId', /own peer/),
    );
    assert.throws(
      parse((c) => (op0(c).tokenSha256 = 'dev-token-mno-a')),
      invalid('operators/0/tokenSha256', /sha256sum/),
    );
    assert.throws(
      parse((c) => delete op0(c).approvalRequired),
      invalid('operators/0/approvalRequired'),
    );
    assert.throws(
      parse((c) => (c.operators = [op0(c), { ...op0(c), tokenSha256: tokenSha256('other') }])),
      invalid('operators/1/id', /twice/),
    );
    assert.throws(
      parse((c) => (c.operators = [op0(c), { ...op0(c), id: 'mno-z' }])),
      invalid('operators/1/tokenSha256'),
    );
    assert.throws(
      parse((c) => (c.permissionValidityHours = 0)),
      invalid('permissionValidityHours'),
    );
    assert.throws(
      parse((c) => (c.logLevel = 'loud')),
      invalid('logLevel'),
    );
    assert.throws(
      () => parseSmConfig([], tmp.dir),
      (e: unknown) => e instanceof ConfigInvalid,
    );
  });

  test('unreadable or non-JSON files are ConfigInvalid', () => {
    assert.throws(() => readSmConfig(join(tmp.dir, 'missing.json')), invalid('', /cannot read/));
    writeFileSync(join(tmp.dir, 'broken.json'), '{"smId": ');
    assert.throws(() => readSmConfig(join(tmp.dir, 'broken.json')), invalid('', /not JSON/));
  });

  test('the files must form a valid SM identity', () => {
    const config = readSmConfig(join(tmp.dir, 'sm-alpha.json'));
    const pki = (f: string) => join(tmp.dir, 'pki', f);
    assert.throws(
      () => loadSmMaterial({ ...config, keyFile: pki(`sm-${BETA}.key`) }),
      invalid('keyFile', /not the key/),
    );
    assert.throws(
      () => loadSmMaterial({ ...config, certFile: pki(`sm-${BETA}.pem`) }),
      invalid('certFile', /sm-beta.example/),
    );
    assert.throws(
      () => loadSmMaterial({ ...config, keyFile: pki('nope.key') }),
      invalid('keyFile', /pki init/),
    );
    assert.throws(() => loadSmMaterial({ ...config, ciFiles: [pki('eum.pem')] }), invalid('certFile'));
    assert.throws(() => loadSmMaterial({ ...config, ciFiles: [pki('ci.key')] }), invalid('ciFiles/0'));
    assert.throws(
      () =>
        loadSmMaterial({
          ...config,
          peers: [{ smId: BETA, baseUrl: 'https://x', certFile: pki(`sm-${ALPHA}.pem`) }],
        }),
      invalid('peers/0/certFile', /not of "sm-beta.example"/),
    );
    // Certificates are checked at the given time: an expired SM certificate does not start.
    assert.throws(() => loadSmMaterial(config, new Date('2200-01-01')), invalid('certFile', /expired/));
  });

  test('a port in use is ConfigInvalid naming listen', async () => {
    const config = readSmConfig(join(tmp.dir, 'sm-alpha.json'));
    const first = await startSmServer(
      { ...config, listen: { host: '127.0.0.1', port: 0 } },
      { store: new MemoryStore(), logger: false },
    );
    try {
      const port = Number(new URL(first.url).port);
      await assert.rejects(
        startSmServer(
          { ...config, listen: { host: '127.0.0.1', port } },
          { store: new MemoryStore(), logger: false },
        ),
        invalid('listen', /EADDRINUSE/),
      );
    } finally {
      await first.close();
    }
  });
});

describe('handover sm', () => {
  let tmp: ReturnType<typeof tempDir>;
  before(() => {
    tmp = tempDir('handover-sm-cli-');
    createDevPki({ curve: 'brainpoolP256r1', dir: join(tmp.dir, 'pki') });
  });
  after(() => tmp.remove());

  const cli = (...args: string[]) =>
    spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'), ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, HANDOVER_LOG_LEVEL: 'warn' },
      },
    );
  const exitOf = (child: ReturnType<typeof cli>) =>
    new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));

  test('sm start prints {smId, url} when listening, serves HTTPS, and stops on SIGTERM', async () => {
    const config = exampleOf('sm-alpha.json');
    config.listen = { host: '127.0.0.1', port: await freePort() };
    writeFileSync(join(tmp.dir, 'alpha.json'), JSON.stringify(config));
    const child = cli('sm', 'start', '--config', join(tmp.dir, 'alpha.json'));
    const exited = exitOf(child);
    const stderr: string[] = [];
    child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
    try {
      const line = await new Promise<string>((ok, ko) => {
        createInterface({ input: child.stdout }).once('line', ok);
        child.once('exit', () => ko(new Error(`exited early: ${stderr.join('')}`)));
      });
      const started = JSON.parse(line) as { smId: string; url: string };
      assert.equal(started.smId, ALPHA);
      const docs = await httpsCall(`${started.url}/docs/json`, {
        expectedSmId: ALPHA,
        caPem: readFileSync(join(tmp.dir, 'pki', 'ci.pem'), 'utf8'),
        trustedCis: loadCertificates(readFileSync(join(tmp.dir, 'pki', 'ci.pem'))),
      });
      assert.equal(docs.status, 200);
      assert.equal(docs.protocol, 'TLSv1.2', 'a brainpool SM speaks TLS 1.2');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr.join(''));
    assert.ok(!stderr.join('').includes('dev-token'), 'no token in the logs');
  });

  test('sm start with a bad config exits 1 with a ConfigInvalid JSON error', async () => {
    const child = cli('sm', 'start', '--config', join(tmp.dir, 'nope.json'));
    const stderr: string[] = [];
    child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
    assert.equal(await exitOf(child), 1);
    const error = JSON.parse(stderr.join('').trim()) as { error: { code: string } };
    assert.equal(error.error.code, 'ConfigInvalid');
  });

  test('sm token prints a token and the hash the config wants', async () => {
    const child = cli('sm', 'token');
    const out: string[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
    assert.equal(await exitOf(child), 0);
    const t = JSON.parse(out.join('')) as { token: string; tokenSha256: string };
    assert.ok(t.token.length >= 32);
    assert.equal(t.tokenSha256, tokenSha256(t.token));
  });
});
