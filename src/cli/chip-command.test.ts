/** `handover chip create`, `info` and `apdu`, run as a user runs them (a child process). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStateStore } from '../chip/file-store.ts';
import { makeEid } from '../protocol/eid.ts';
import { createDevPki } from '../protocol/pki/dev-pki.ts';
import { parseApduHex } from './chip-apdu.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-chip-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const pkiDir = join(tmp, 'pki');
const pki = createDevPki({ curve: 'p256', dir: pkiDir, smIds: ['sm-alpha.example', 'sm-beta.example'] });
const EID = makeEid(`${pki.manifest.eidPrefix}0000000000000000000042`);
const V = 'test/vectors/sgp26';

function cli(...args: string[]): {
  status: number | null;
  json: Record<string, unknown> | undefined;
  stderr: string;
} {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'chip', ...args], {
    encoding: 'utf8',
  });
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  assert.ok(lines.length <= 1, `expected at most one JSON line, got: ${r.stdout}`);
  return { status: r.status, json: lines[0] ? JSON.parse(lines[0]) : undefined, stderr: r.stderr };
}

const errorCode = (stderr: string): string | undefined =>
  (JSON.parse(stderr.trim().split('\n').at(-1) ?? '{}') as { error?: { code?: string } }).error?.code;

describe('handover chip create / info', () => {
  const state = join(tmp, 'chip.json');

  it('issues a chip certificate from the PKI folder and assigns the chip to the SM', () => {
    const r = cli(
      'create',
      '--pki',
      pkiDir,
      '--eid',
      EID,
      '--sm',
      'sm-alpha.example',
      '--state',
      state,
      '--profile',
      '89490200001234567890:Old MNO',
      '--profile',
      '8949020000765432109',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.json?.eid, EID);
    assert.equal(r.json?.assignedSmId, 'sm-alpha.example');
    const s = new FileStateStore(state).load();
    assert.equal(s.eid, EID);
    assert.deepEqual(s.profiles, [
      { iccid: '89490200001234567890', operator: 'Old MNO', state: 'enabled' },
      { iccid: '8949020000765432109', state: 'disabled' },
    ]);
  });

  it('info prints the state without secrets', () => {
    const r = cli('info', '--state', state);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json, {
      eid: EID,
      curve: 'p256',
      assignedSmId: 'sm-alpha.example',
      counter: 0,
      profiles: [
        { iccid: '89490200001234567890', operator: 'Old MNO', state: 'enabled' },
        { iccid: '8949020000765432109', state: 'disabled' },
      ],
    });
    assert.ok(!JSON.stringify(r.json).includes('PRIVATE'));
  });

  it('refuses to overwrite a state file without --force (exit 2), and replaces it with --force', () => {
    const args = ['create', '--pki', pkiDir, '--eid', EID, '--sm', 'sm-beta.example', '--state', state];
    const r = cli(...args);
    assert.equal(r.status, 2);
    assert.equal(errorCode(r.stderr), 'UsageError');
    assert.equal(cli(...args, '--force').status, 0);
    assert.equal(new FileStateStore(state).load().assignment.smId, 'sm-beta.example');
  });

  it('refuses an EID outside the EUM prefix or failing mod-97, and an unknown SM', () => {
    const outside = makeEid('890049990000000000000000000001');
    const r1 = cli(
      'create',
      '--pki',
      pkiDir,
      '--eid',
      outside,
      '--sm',
      'sm-alpha.example',
      '--state',
      join(tmp, 'x.json'),
    );
    assert.equal(r1.status, 2);
    assert.equal(errorCode(r1.stderr), 'UsageError');
    assert.match(r1.stderr, /outside the EUM's EID prefix 89001012/);
    const badCheck = `${EID.slice(0, 30)}00`;
    const r2 = cli(
      'create',
      '--pki',
      pkiDir,
      '--eid',
      badCheck,
      '--sm',
      'sm-alpha.example',
      '--state',
      join(tmp, 'x.json'),
    );
    assert.equal(r2.status, 2);
    assert.equal(errorCode(r2.stderr), 'UsageError');
    assert.match(r2.stderr, /--eid: EID \d+ fails the mod-97 check/);
    const r3 = cli(
      'create',
      '--pki',
      pkiDir,
      '--eid',
      EID,
      '--sm',
      'sm-nobody',
      '--state',
      join(tmp, 'x.json'),
    );
    assert.equal(r3.status, 2);
    const r4 = cli(
      'create',
      '--pki',
      pkiDir,
      '--chip-cert',
      `${V}/bc-java/CERT_EUICC_ECDSA_NIST.pem`,
      '--sm',
      'sm-alpha.example',
      '--state',
      join(tmp, 'x.json'),
    );
    assert.equal(r4.status, 2, 'an existing identity needs all three files');
  });

  it('gives a chip the GSMA SGP.26 test eUICC identity', () => {
    const sgp26 = join(tmp, 'sgp26.json');
    const r = cli(
      'create',
      '--pki',
      pkiDir,
      '--sm',
      'sm-alpha.example',
      '--state',
      sgp26,
      '--chip-cert',
      `${V}/bc-java/CERT_EUICC_ECDSA_NIST.pem`,
      '--chip-key',
      `${V}/euicc-rsp/euicc-key.pem`,
      '--eum-cert',
      `${V}/bc-java/CERT_EUM_ECDSA_NIST.pem`,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.json?.eid, '89049032123451234512345678901235');
    const s = new FileStateStore(sgp26).load();
    assert.equal(s.ciCertificates.length, 1);
    assert.ok(readFileSync(sgp26, 'utf8').includes('PRIVATE KEY'), 'the state file holds the chip key');
    // The wrong key for that certificate is refused.
    const wrong = cli(
      'create',
      '--pki',
      pkiDir,
      '--sm',
      'sm-alpha.example',
      '--state',
      join(tmp, 'y.json'),
      '--chip-cert',
      `${V}/bc-java/CERT_EUICC_ECDSA_NIST.pem`,
      '--chip-key',
      join(pkiDir, 'eum.key'),
      '--eum-cert',
      `${V}/bc-java/CERT_EUM_ECDSA_NIST.pem`,
    );
    assert.equal(wrong.status, 2);
    assert.equal(errorCode(wrong.stderr), 'UsageError');
    assert.match(wrong.stderr, /--chip-key .*eum.key\\" is not the key of --chip-cert/);
  });

  it('apdu: bad hex is a usage error (exit 2) and nothing is sent', () => {
    const before = readFileSync(state, 'utf8');
    const r = cli('apdu', '--state', state, '80E2910002EE0000', '80e2 91zz');
    assert.equal(r.status, 2);
    assert.equal(r.json, undefined, 'no response line: the hex is checked before the first APDU');
    assert.equal(errorCode(r.stderr), 'UsageError');
    assert.match(r.stderr, /APDU 2 \\"80e291zz\\" is not hex: \\"z\\" at position 7/);
    assert.throws(() => parseApduHex('00a404000', 'the APDU'), /odd number of hex digits \(9\)/);
    assert.throws(() => parseApduHex(' ', 'APDU 3'), /APDU 3 is empty/);
    assert.equal(readFileSync(state, 'utf8'), before);
  });

  it('apdu: one response line, e.g. SELECT 9000, an unknown instruction 6d00', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'chip',
        'apdu',
        '--state',
        state,
        '00 A4 04 00 10 A0000005591010FFFFFFFF8900000100',
        '00B0000000',
        '80E2910002EE00',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines.slice(0, 2), ['9000', '6d00']);
    assert.match(lines[2] ?? '', /^ef82[0-9a-f]+61[0-9a-f]{2}$/, 'GetChipInfo answers 256 bytes and 61xx');
    assert.match(r.stderr, /the answer is not fetched completely/);
  });

  it('info on a missing or broken file: typed errors', () => {
    const r = cli('info', '--state', join(tmp, 'none.json'));
    assert.equal(r.status, 1);
    assert.equal(errorCode(r.stderr), 'ChipStateNotFound');
    const r2 = cli('info', '--state', join(pkiDir, 'pki.json'));
    assert.equal(r2.status, 1);
    assert.equal(errorCode(r2.stderr), 'ChipStateInvalid');
    const r3 = cli('apdu', '--state', join(tmp, 'none.json'), '00a4040010a0000005591010ffffffff8900000100');
    assert.equal(r3.status, 1);
    assert.equal(errorCode(r3.stderr), 'ChipStateNotFound');
  });
});
