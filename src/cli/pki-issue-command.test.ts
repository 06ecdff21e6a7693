/**
 * `handover pki issue` (PROTOCOL.md §3) under issuers made by the openssl CLI, not by Handover:
 * a CI from `openssl ecparam -genkey` + `openssl req -x509` (both curves), an EUM from
 * `openssl x509 -req`; every certificate issued from them passes `handover pki verify`.
 * Then every argument check, each a usage error (exit 2) that writes nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeEid } from '../protocol/eid.ts';
import { InvalidInput } from '../protocol/errors.ts';
import { loadCertificates } from '../protocol/pki/certificate.ts';
import { type IssueOptions, issueFromFiles } from './pki-issue-command.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-pki-issue-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const skip = hasOpenssl ? false : 'the openssl CLI is not installed';

function openssl(...args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
}

function handover(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
  });
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.ok(lines.length <= 1, `one JSON line expected, got: ${r.stdout}`);
  const json = lines[0] === undefined ? undefined : (JSON.parse(lines[0]) as Record<string, unknown>);
  return { status: r.status, json, stderr: r.stderr };
}

/** A CI made with the openssl CLI only, with the PROTOCOL.md §3 CI extensions. */
function opensslCi(dir: string, opensslCurve: string): { cert: string; key: string } {
  const cnf = join(dir, 'ci.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = ci_ext',
      '[dn]',
      'CN = OpenSSL Test CI',
      'O = OpenSSL Test',
      '[ci_ext]',
      'basicConstraints = critical, CA:true',
      'keyUsage = critical, keyCertSign',
      'certificatePolicies = critical, 2.23.146.1.2.1.0',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  const key = join(dir, 'ci.key');
  const cert = join(dir, 'ci.pem');
  openssl('ecparam', '-name', opensslCurve, '-genkey', '-out', key); // SEC1, with EC PARAMETERS
  openssl('req', '-x509', '-new', '-key', key, '-config', cnf, '-days', '3650', '-sha256', '-out', cert);
  return { cert, key };
}

function mode(file: string): number {
  return statSync(file).mode & 0o777;
}

for (const [curve, opensslCurve] of [
  ['p256', 'prime256v1'],
  ['brainpoolP256r1', 'brainpoolP256r1'],
] as const) {
  describe(`pki issue under an openssl-made CI (${opensslCurve})`, { skip }, () => {
    const dir = mkdtempSync(join(tmp, `${curve}-`));
    const ci = hasOpenssl ? opensslCi(dir, opensslCurve) : { cert: '', key: '' };
    const eid = makeEid('890490320000000000000000001234');

    it('--role eum, then --role chip from that EUM: pki verify says role chip with the EID', () => {
      const eum = handover(
        'pki',
        'issue',
        '--role',
        'eum',
        '--issuer-cert',
        ci.cert,
        '--issuer-key',
        ci.key,
        '--curve',
        curve,
        '--eid-prefix',
        '89049032',
        '--org',
        'Example EUM',
        '--out',
        join(dir, 'eum'),
      );
      assert.equal(eum.status, 0, eum.stderr);
      assert.equal(eum.json?.role, 'eum');
      assert.equal(eum.json?.curve, curve);
      assert.equal(eum.json?.issuer, 'CN=OpenSSL Test CI, O=OpenSSL Test');
      const chip = handover(
        'pki',
        'issue',
        '--role',
        'chip',
        '--issuer-cert',
        join(dir, 'eum.pem'),
        '--issuer-key',
        join(dir, 'eum.key'), // PKCS#8, as pki issue writes it
        '--curve',
        curve,
        '--eid',
        eid,
        '--org',
        'Example EUM',
        '--out',
        join(dir, 'chip'),
      );
      assert.equal(chip.status, 0, chip.stderr);
      assert.deepEqual(
        { role: chip.json?.role, eid: chip.json?.eid, cert: chip.json?.cert, key: chip.json?.key },
        { role: 'chip', eid, cert: join(dir, 'chip.pem'), key: join(dir, 'chip.key') },
      );
      for (const f of ['eum.key', 'chip.key']) {
        assert.equal(mode(join(dir, f)), 0o600, f);
        assert.match(readFileSync(join(dir, f), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
      }
      const verdict = handover(
        'pki',
        'verify',
        '--ci',
        ci.cert,
        '--role',
        'chip',
        join(dir, 'chip.pem'),
        join(dir, 'eum.pem'),
      );
      assert.equal(verdict.status, 0, verdict.stderr);
      assert.deepEqual(verdict.json, { valid: true, role: 'chip', eid });
    });

    it('--role sm: pki verify says role sm with the SM id', () => {
      const sm = handover(
        'pki',
        'issue',
        '--role',
        'sm',
        '--issuer-cert',
        ci.cert,
        '--issuer-key',
        ci.key,
        '--curve',
        curve,
        '--sm-id',
        'sm-gamma.example',
        '--days',
        '30',
        '--out',
        join(dir, 'sm'),
      );
      assert.equal(sm.status, 0, sm.stderr);
      assert.equal(sm.json?.smId, 'sm-gamma.example');
      const [cert] = loadCertificates(readFileSync(join(dir, 'sm.pem')));
      assert.equal(cert!.notAfter.getTime() - cert!.notBefore.getTime(), 30 * 86_400_000);
      const verdict = handover('pki', 'verify', '--ci', ci.cert, '--role', 'sm', join(dir, 'sm.pem'));
      assert.equal(verdict.status, 0, verdict.stderr);
      assert.deepEqual(verdict.json, { valid: true, role: 'sm', smId: 'sm-gamma.example' });
    });
  });
}

describe('pki issue --role chip under an openssl-made EUM (name constraint by openssl)', { skip }, () => {
  it('issues a chip that pki verify accepts', () => {
    const dir = mkdtempSync(join(tmp, 'openssl-eum-'));
    const ci = opensslCi(dir, 'prime256v1');
    const cnf = join(dir, 'eum.cnf');
    writeFileSync(
      cnf,
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'O = OpenSSL EUM',
        'CN = OpenSSL EUM',
        '[eum_ext]',
        'basicConstraints = critical, CA:true, pathlen:0',
        'keyUsage = critical, keyCertSign',
        'certificatePolicies = critical, 2.23.146.1.2.1.2',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        'nameConstraints = critical, permitted;dirName:eum_nc',
        '[eum_nc]',
        'O = OpenSSL EUM',
        'serialNumber = 89049032',
        '',
      ].join('\n'),
    );
    const key = join(dir, 'eum.key');
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key); // PKCS#8
    openssl('req', '-new', '-key', key, '-config', cnf, '-out', join(dir, 'eum.csr'));
    openssl(
      'x509',
      '-req',
      '-in',
      join(dir, 'eum.csr'),
      '-CA',
      ci.cert,
      '-CAkey',
      ci.key,
      '-set_serial',
      '4242',
      '-days',
      '1000',
      '-sha256',
      '-extfile',
      cnf,
      '-extensions',
      'eum_ext',
      '-out',
      join(dir, 'eum.pem'),
    );
    const eid = makeEid('890490320000000000000000005678');
    const result = issueFromFiles({
      role: 'chip',
      issuerCert: join(dir, 'eum.pem'),
      issuerKey: key,
      curve: 'prime256v1',
      eid,
      out: join(dir, 'chip'),
    });
    assert.equal('role' in result && result.role, 'chip');
    const verdict = handover('pki', 'verify', '--ci', ci.cert, join(dir, 'chip.pem'), join(dir, 'eum.pem'));
    assert.deepEqual(verdict.json, { valid: true, role: 'chip', eid });
  });
});

describe('pki issue: every argument is checked before anything is written', () => {
  // Issuers made by pki issue itself here, so these checks run without openssl.
  const dir = mkdtempSync(join(tmp, 'checks-'));
  const init = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'pki', 'init', '--curve', 'p256', '--out', join(dir, 'pki')],
    { encoding: 'utf8' },
  );
  assert.equal(init.status, 0, init.stderr);
  const ci = { issuerCert: join(dir, 'pki', 'ci.pem'), issuerKey: join(dir, 'pki', 'ci.key') };
  const eum = { issuerCert: join(dir, 'pki', 'eum.pem'), issuerKey: join(dir, 'pki', 'eum.key') };
  const eid = makeEid('890010120000000000000000000321'); // inside the dev EUM's prefix 89001012
  mkdirSync(join(dir, 'out'));
  const out = join(dir, 'out', 'x');
  const sm: IssueOptions = { role: 'sm', ...ci, curve: 'p256', smId: 'sm-x.example', out };
  const chip: IssueOptions = { role: 'chip', ...eum, curve: 'p256', eid, out };

  const refused = (opts: IssueOptions, why: RegExp) => {
    assert.throws(
      () => issueFromFiles(opts),
      (e: unknown) => e instanceof InvalidInput && e.code === 'UsageError' && why.test(e.message),
      why.source,
    );
  };

  it('mismatched curve, foreign key, wrong issuer role, expired choice of --days', () => {
    refused(
      { ...sm, curve: 'brainpoolP256r1' },
      /--curve is brainpoolP256r1 but the issuer key .* is on p256; use --curve p256/,
    );
    refused({ ...sm, curve: 'p384' }, /--curve: unsupported curve "p384"/);
    refused({ ...sm, issuerKey: eum.issuerKey }, /is not the key of --issuer-cert/);
    refused({ ...sm, ...eum }, /--role sm must be issued by a CI .*, but the issuer .* has role eum/);
    refused({ ...chip, ...ci }, /--role chip must be issued by an EUM .*, but the issuer .* has role ci/);
    refused({ ...sm, days: '999999' }, /--days 999999 would outlive the issuer .*; use --days \d+ or fewer/);
    refused({ ...sm, days: '0' }, /--days must be a whole number/);
    refused({ ...sm, days: '1.5' }, /--days must be a whole number/);
    refused({ ...sm, issuerCert: join(dir, 'missing.pem') }, /cannot read --issuer-cert .*ENOENT/);
    refused({ ...sm, issuerKey: ci.issuerCert }, /--issuer-key .*PRIVATE KEY/);
  });

  it('role-specific options: needed ones present, foreign ones refused, values valid', () => {
    refused({ ...sm, role: 'ci' }, /--role must be eum, chip or sm/);
    refused({ role: 'sm', ...ci, curve: 'p256', out }, /--role sm needs --sm-id/);
    refused({ role: 'eum', ...ci, curve: 'p256', out, org: 'X' }, /--role eum needs --eid-prefix/);
    refused({ role: 'eum', ...ci, curve: 'p256', out, eidPrefix: '8900' }, /--role eum needs --org/);
    refused({ ...sm, eid }, /--eid does not apply to --role sm/);
    refused({ ...chip, smId: 'a' }, /--sm-id does not apply to --role chip/);
    refused({ role: 'eum', ...ci, curve: 'p256', out, org: 'X', eidPrefix: '89ab' }, /--eid-prefix must be/);
    refused({ ...sm, smId: ' padded ' }, /--sm-id must not start or end with white space/);
  });

  it('the EID: valid, inside the EUM prefix, and --org equal to the EUM organisation', () => {
    refused(
      { ...chip, eid: makeEid('890490320000000000000000000001') },
      /outside the EUM's EID prefix 89001012/,
    );
    refused({ ...chip, eid: `${eid.slice(0, 30)}00` }, /--eid: EID .* fails the mod-97 check/);
    refused({ ...chip, eid: '8900' }, /--eid: EID must be 32 decimal digits/);
    refused({ ...chip, org: 'Someone Else' }, /--org "Someone Else" differs from the EUM's organisation/);
  });

  it('outputs: the folder must exist, no overwrite without --force, never an input file', () => {
    refused({ ...sm, out: join(dir, 'nowhere', 'x') }, /--out: folder .* does not exist/);
    refused({ ...sm, out: join(dir, 'pki', 'ci'), force: true }, /--out would overwrite the issuer's file/);
    assert.deepEqual(readdirSync(join(dir, 'out')), [], 'nothing written by the refused calls');

    const first = issueFromFiles(sm);
    assert.equal('smId' in first && first.smId, 'sm-x.example');
    const before = readFileSync(`${out}.pem`, 'utf8');
    refused(sm, /exists already; use --force/);
    assert.equal(readFileSync(`${out}.pem`, 'utf8'), before);
    writeFileSync(`${out}.key`, 'old', { mode: 0o644 });
    issueFromFiles({ ...sm, force: true });
    assert.notEqual(readFileSync(`${out}.pem`, 'utf8'), before);
    assert.equal(mode(`${out}.key`), 0o600, 'an overwritten key file is made private again');
    assert.ok(existsSync(`${out}.key`));
  });

  it('on the command line: usage errors exit 2 with the message on stderr, nothing on stdout', () => {
    const r = handover(
      'pki',
      'issue',
      '--role',
      'chip',
      '--issuer-cert',
      eum.issuerCert,
      '--issuer-key',
      eum.issuerKey,
      '--curve',
      'brainpoolP256r1',
      '--eid',
      eid,
      '--out',
      join(dir, 'cli-chip'),
    );
    assert.equal(r.status, 2);
    assert.equal(r.json, undefined);
    assert.match(r.stderr, /"code":"UsageError".*use --curve p256/);
    const missing = handover('pki', 'issue', '--role', 'sm');
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /required option/);
    assert.equal(existsSync(join(dir, 'cli-chip.pem')), false);
  });
});
