/** `handover chip create` and `handover chip info`, run as a user runs them (a child process). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStateStore } from '../chip/file-store.ts';
import { makeEid } from '../protocol/eid.ts';
import { createDevPki } from '../protocol/pki/dev-pki.ts';

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
    assert.equal(r1.status, 1);
    assert.equal(errorCode(r1.stderr), 'InvalidEid');
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
    assert.equal(r2.status, 1);
    assert.equal(errorCode(r2.stderr), 'InvalidEid');
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
    assert.equal(wrong.status, 1);
    assert.equal(errorCode(wrong.stderr), 'KeyMismatch');
  });

  it('info on a missing or broken file: typed errors', () => {
    const r = cli('info', '--state', join(tmp, 'none.json'));
    assert.equal(r.status, 1);
    assert.equal(errorCode(r.stderr), 'ChipStateNotFound');
    const r2 = cli('info', '--state', join(pkiDir, 'pki.json'));
    assert.equal(r2.status, 1);
    assert.equal(errorCode(r2.stderr), 'ChipStateInvalid');
  });
});
