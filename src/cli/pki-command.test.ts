import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeEid } from '../protocol/eid.ts';
import { loadDevPki } from '../protocol/pki/dev-pki.ts';
import { issueChip, issueSm } from '../protocol/pki/issue.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-pki-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const V = 'test/vectors/sgp26';

function cli(...args: string[]): {
  status: number | null;
  json: Record<string, unknown> | undefined;
  stderr: string;
} {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pki', ...args], {
    encoding: 'utf8',
  });
  let json: Record<string, unknown> | undefined;
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  if (lines.length === 1) json = JSON.parse(lines[0]!);
  else assert.equal(lines.length, 0, `expected one JSON line, got: ${r.stdout}`);
  return { status: r.status, json, stderr: r.stderr };
}

describe('handover pki init', () => {
  const dir = join(tmp, 'pki');

  it('writes a PKI folder and prints its manifest', () => {
    const r = cli(
      'init',
      '--curve',
      'brainpoolp256r1',
      '--out',
      dir,
      '--sm',
      'sm-one.example',
      '--sm',
      'sm-two.example',
      '--eid-prefix',
      '8900555',
      '--org',
      'CLI EUM',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.json?.curve, 'brainpoolP256r1');
    assert.deepEqual(r.json?.smIds, ['sm-one.example', 'sm-two.example']);
    assert.equal(r.json?.eidPrefix, '8900555');
    for (const f of [
      'ci.pem',
      'ci.key',
      'eum.pem',
      'eum.key',
      'sm-sm-one.example.pem',
      'sm-sm-two.example.key',
      'pki.json',
    ]) {
      assert.ok(existsSync(join(dir, f)), f);
    }
    assert.equal(loadDevPki(dir).eum.certificate.subject.organization, 'CLI EUM');
  });

  it('refuses to overwrite without --force, and usage errors exit 2', () => {
    assert.equal(cli('init', '--curve', 'p256', '--out', dir).status, 2);
    assert.equal(cli('init', '--curve', 'p384', '--out', join(tmp, 'x')).status, 2);
    assert.equal(cli('init', '--curve', 'p256', '--out', join(tmp, 'y'), '--eid-prefix', '12ab').status, 2);
    assert.equal(cli('init', '--out', join(tmp, 'z')).status, 2);
    assert.equal(existsSync(join(tmp, 'x')) || existsSync(join(tmp, 'y')), false);
  });

  it('uses the default SM ids', () => {
    const r = cli('init', '--curve', 'p256', '--out', join(tmp, 'defaults'));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json?.smIds, ['sm-alpha.example', 'sm-beta.example']);
  });
});

describe('handover pki verify', () => {
  const dir = join(tmp, 'verify-pki');
  assert.equal(cli('init', '--curve', 'p256', '--out', dir).status, 0);
  const pki = loadDevPki(dir);
  const eid = makeEid('890010120000000000000000000099');
  const chip = issueChip({ issuerCert: pki.eum.certificate, issuerKey: pki.eum.privateKey, eid });
  const chipFile = join(tmp, 'chip.pem');
  writeFileSync(chipFile, chip.pem);
  const ci = join(dir, 'ci.pem');

  it('a dev SM certificate: valid, role sm, its SM id', () => {
    const r = cli('verify', '--ci', ci, join(dir, 'sm-sm-alpha.example.pem'));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json, { valid: true, role: 'sm', smId: 'sm-alpha.example' });
  });

  it('a chip chain given as two files, and as one file holding both', () => {
    const r = cli('verify', '--ci', ci, '--role', 'chip', chipFile, join(dir, 'eum.pem'));
    assert.deepEqual(r.json, { valid: true, role: 'chip', eid });
    assert.equal(r.status, 0);
    const both = join(tmp, 'chain.pem');
    writeFileSync(both, chip.pem + readFileSync(join(dir, 'eum.pem'), 'utf8'));
    assert.deepEqual(cli('verify', '--ci', ci, both).json, { valid: true, role: 'chip', eid });
  });

  it('the SGP.26 chain (PEM), with several --ci', () => {
    const r = cli(
      'verify',
      '--ci',
      `${V}/pysim/CertificateIssuer/CERT_CI_ECDSA_NIST.der`,
      '--ci',
      `${V}/bc-java/CERT_CI_ECDSA_NIST.pem`,
      `${V}/bc-java/CERT_EUICC_ECDSA_NIST.pem`,
      `${V}/bc-java/CERT_EUM_ECDSA_NIST.pem`,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json, { valid: true, role: 'chip', eid: '89049032123451234512345678901235' });
  });

  it('an SGP.26 SM-DP+ certificate (DER): role other; refused with --role sm (exit 1)', () => {
    const args = [
      '--ci',
      `${V}/pysim/CertificateIssuer/CERT_CI_ECDSA_BRP.der`,
      `${V}/pysim/DPpb/CERT_S_SM_DPpb_ECDSA_BRP.der`,
    ];
    const ok = cli('verify', ...args);
    assert.equal(ok.status, 0);
    assert.deepEqual(ok.json, { valid: true, role: 'other' });
    const refused = cli('verify', '--role', 'sm', ...args);
    assert.equal(refused.status, 1);
    assert.equal(refused.json?.valid, false);
    assert.equal(refused.json?.reason, 'wrongRole');
    assert.equal(refused.json?.role, 'other');
    assert.equal(typeof refused.json?.message, 'string');
  });

  it('--at: expired now (exit 1), valid at a time inside the validity, dates skipped with --no-check-time', () => {
    const args = [
      '--ci',
      `${V}/pysim/CertificateIssuer/CERT_CI_ECDSA_NIST.der`,
      `${V}/pysim/DPtls/Old_TLS_Validity/Expired_2024/CERT_S_SM_DP_TLS_NIST.der`,
    ];
    const now = cli('verify', ...args);
    assert.equal(now.status, 1);
    assert.equal(now.json?.reason, 'expired');
    assert.deepEqual(cli('verify', '--at', '2024-01-01T00:00:00Z', ...args).json, {
      valid: true,
      role: 'other',
    });
    assert.equal(cli('verify', '--no-check-time', ...args).status, 0);
  });

  it('invalid chains exit 1 with a reason: unknown issuer, malformed file', () => {
    const other = cli(
      'verify',
      '--ci',
      `${V}/pysim/CertificateIssuer/CERT_CI_ECDSA_NIST.der`,
      join(dir, 'sm-sm-beta.example.pem'),
    );
    assert.equal(other.status, 1);
    assert.equal(other.json?.reason, 'unknownIssuer');
    assert.equal(other.json?.role, 'sm');
    const junk = join(tmp, 'junk.pem');
    writeFileSync(junk, 'not a certificate');
    const bad = cli('verify', '--ci', ci, junk);
    assert.equal(bad.status, 1);
    assert.deepEqual(
      { valid: bad.json?.valid, reason: bad.json?.reason },
      { valid: false, reason: 'malformed' },
    );
    const wrongKey = issueSm({
      issuerCert: pki.ci.certificate,
      issuerKey: pki.ci.privateKey,
      smId: 'x',
      notAfter: new Date('2000-01-02T00:00:00Z'),
      notBefore: new Date('2000-01-01T00:00:00Z'),
    });
    const oldFile = join(tmp, 'old.pem');
    writeFileSync(oldFile, wrongKey.pem);
    assert.equal(cli('verify', '--ci', ci, oldFile).json?.reason, 'expired');
  });

  it('usage errors exit 2: missing file, bad --at, no --ci, unreadable CI, bad --role', () => {
    const sm = join(dir, 'sm-sm-alpha.example.pem');
    const missing = cli('verify', '--ci', ci, join(tmp, 'missing.pem'));
    assert.equal(missing.status, 2);
    assert.equal(missing.json, undefined);
    assert.match(missing.stderr, /UsageError/);
    assert.equal(cli('verify', '--ci', ci, '--at', 'yesterday', sm).status, 2);
    assert.equal(cli('verify', '--ci', ci, '--at', '2026-13-45', sm).status, 2);
    assert.equal(cli('verify', sm).status, 2);
    assert.equal(cli('verify', '--ci', sm.replace('.pem', '.key'), sm).status, 2);
    assert.equal(cli('verify', '--ci', ci, '--role', 'boss', sm).status, 2);
    assert.equal(cli('verify', '--ci', ci, '--at', '2026-01-01T00:00:00Z', '--no-check-time', sm).status, 2);
    assert.equal(cli('verify', '--ci', ci).status, 2);
  });
});
