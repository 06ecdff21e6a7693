/**
 * `handover chip create` from explicit files: the identity (issued by any EUM, or an existing
 * chip certificate and key), the CIs and the SM certificate. Every bad argument is a usage error
 * (exit 2) naming the option and saying what to change, and writes nothing.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStateStore } from '../src/chip/file-store.ts';
import { type ChipCreateOptions, createChipFromFiles } from '../src/cli/chip-create.ts';
import { makeEid } from '../src/protocol/eid.ts';
import { InvalidInput } from '../src/protocol/errors.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';
import { handover, json } from './support/chip-apdus.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-chip-create-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const V = 'test/vectors/sgp26';
const pki = createDevPki({ curve: 'p256', dir: join(tmp, 'pki') });
const other = createDevPki({ curve: 'p256', dir: join(tmp, 'other') });
const p = (name: string) => join(pki.dir, name);
const ci = p('ci.pem');
const alphaCert = p('sm-sm-alpha.example.pem');
const eid = makeEid(`${pki.manifest.eidPrefix}0000000000000000000123`);
const out = join(tmp, 'out');
mkdirSync(out);

/** Issue from the dev PKI's EUM given as plain files (not --pki). */
const issue: ChipCreateOptions = {
  state: join(out, 'chip.json'),
  sm: 'sm-alpha.example',
  eid,
  profile: [],
  eumCert: p('eum.pem'),
  eumKey: p('eum.key'),
  ciCert: [ci],
  smCert: alphaCert,
};
/** The GSMA SGP.26 test eUICC (key in SEC1 PEM with EC PARAMETERS). */
const existing: ChipCreateOptions = {
  state: join(out, 'sgp26.json'),
  sm: 'sm-alpha.example',
  profile: [],
  chipCert: `${V}/bc-java/CERT_EUICC_ECDSA_NIST.pem`,
  chipKey: `${V}/euicc-rsp/euicc-key.pem`,
  eumCert: `${V}/bc-java/CERT_EUM_ECDSA_NIST.pem`,
  ciCert: [ci],
  smCert: alphaCert,
};

function refused(o: ChipCreateOptions, why: RegExp): void {
  assert.throws(
    () => createChipFromFiles(o),
    (e: unknown) => e instanceof InvalidInput && e.code === 'UsageError' && why.test(e.message),
    why.source,
  );
}

describe('chip create from explicit files', () => {
  it('the identity: which options go together', () => {
    const { eumCert: _c, eumKey: _k, ...none } = issue;
    refused(
      none,
      /give the chip an identity: --eum-cert F --eum-key F --eid EID .* --chip-cert F --chip-key F --eum-cert F/,
    );
    refused({ ...none, eumCert: p('eum.pem') }, /--eum-cert and --eum-key go together/);
    refused({ ...none, eumKey: p('eum.key') }, /--eum-cert and --eum-key go together/);
    refused({ ...existing, chipKey: undefined }, /--chip-cert, --chip-key and --eum-cert go together/);
    refused({ ...existing, eumCert: undefined }, /--chip-cert, --chip-key and --eum-cert go together/);
    refused({ ...existing, eumKey: p('eum.key') }, /--eum-key is for issuing a new chip certificate/);
    refused({ ...issue, eid: undefined }, /give --eid EID/);
  });

  it('files: readable, of the right kind, keys matching their certificates', () => {
    refused(
      { ...issue, ciCert: [join(tmp, 'missing.pem')] },
      /cannot read --ci-cert ".*missing.pem" \(ENOENT\)/,
    );
    refused({ ...issue, eumCert: ci }, /--eum-cert ".*ci.pem" is not an EUM certificate: .* has role ci/);
    refused(
      { ...issue, eumKey: ci },
      /--eum-key ".*ci.pem": .*\(an EC private key in PKCS#8 or SEC1 PEM expected\)/,
    );
    refused(
      { ...issue, eumKey: p('ci.key') },
      /--eum-key ".*ci.key" is not the key of --eum-cert ".*eum.pem"/,
    );
    refused(
      { ...issue, eumCert: ci.replace('ci.pem', 'pki.json') },
      /--eum-cert ".*pki.json": no certificate found/,
    );
    refused({ ...existing, chipKey: p('eum.key') }, /--chip-key ".*eum.key" is not the key of --chip-cert/);
    refused(
      { ...existing, chipCert: alphaCert },
      /--chip-cert .* is not a chip \(eUICC\) certificate: .* has role sm/,
    );
    refused(
      { ...existing, eumCert: p('eum.pem') },
      /--chip-cert .* was not issued by --eum-cert ".*eum.pem"/,
    );
    refused(
      { ...existing, eid },
      /--eid \d{32} is not the EID in --chip-cert .* \(89049032123451234512345678901235\)/,
    );
  });

  it('the EID, the CIs, the SM', () => {
    refused(
      { ...issue, eid: makeEid('890490320000000000000000000001') },
      /--eid \d+ is outside the EUM's EID prefix 89001012; give an EID that starts with 89001012/,
    );
    refused({ ...issue, eid: `${eid.slice(0, 30)}00` }, /--eid: EID \d+ fails the mod-97 check/);
    refused(
      { ...issue, ciCert: [alphaCert] },
      /--ci-cert ".*" holds "CN=sm-alpha.example", which has role sm, not ci/,
    );
    refused({ ...issue, ciCert: [] }, /give --ci-cert FILE \(or --pki DIR\)/);
    refused(
      { ...issue, ciCert: [join(other.dir, 'ci.pem')] },
      /--sm-cert ".*" does not validate as an SM certificate under the chip's CI certificate\(s\) \(unknownIssuer\)/,
    );
    refused(
      { ...issue, sm: 'sm-beta.example' },
      /--sm-cert ".*" is for SM "sm-alpha.example", not --sm "sm-beta.example"/,
    );
    refused({ ...issue, smCert: undefined }, /give --sm-cert FILE \(or --pki DIR\)/);
    refused({ ...issue, sm: ' sm-alpha.example' }, /--sm must not start or end with white space/);
    refused(
      { ...issue, profile: ['8949'] },
      /--profile: profile "8949": the ICCID must be 18 to 20 decimal digits/,
    );
    refused({ ...issue, pki: out }, /--pki ".*": .*\(a folder written by "handover pki init"\)/);
    refused(
      { ...issue, smCert: undefined, pki: pki.dir, sm: 'sm-gamma.example' },
      /the PKI in .* has no SM "sm-gamma.example"/,
    );
  });

  it('the output: an existing folder, no overwrite without --force, never an input file', () => {
    refused(
      { ...issue, state: join(tmp, 'nowhere', 'chip.json') },
      /--state: folder ".*nowhere" does not exist/,
    );
    refused({ ...issue, state: alphaCert, force: true }, /--state ".*" is one of the input files/);
    refused({ ...issue, state: out }, /--state ".*" is a folder/);
    assert.deepEqual(readdirSync(out), [], 'nothing written by the refused calls');

    const made = createChipFromFiles(issue);
    assert.equal(made.eid, eid);
    refused(issue, /exists already; use --force to replace it/);
    assert.equal(createChipFromFiles({ ...issue, force: true }).eid, eid);
  });

  it('an existing identity (SEC1 key) with two CIs; a PKI folder plus an explicit EUM', () => {
    const sgp26 = createChipFromFiles({ ...existing, ciCert: [ci, `${V}/bc-java/CERT_CI_ECDSA_NIST.pem`] });
    assert.equal(sgp26.eid, '89049032123451234512345678901235');
    assert.equal(new FileStateStore(existing.state).load().ciCertificates.length, 2);
    // --pki gives the CI and the SM certificate; the EUM comes from the explicit files.
    const copy = join(tmp, 'eum-copy');
    mkdirSync(copy);
    copyFileSync(p('eum.pem'), join(copy, 'eum.pem'));
    copyFileSync(p('eum.key'), join(copy, 'eum.key'));
    const mixed = createChipFromFiles({
      state: join(out, 'mixed.json'),
      sm: 'sm-beta.example',
      eid,
      profile: ['89490200001234567890:Old MNO'],
      pki: pki.dir,
      eumCert: join(copy, 'eum.pem'),
      eumKey: join(copy, 'eum.key'),
      ciCert: [],
    });
    assert.equal(mixed.assignedSmId, 'sm-beta.example');
  });

  it('on the command line: exit 2, the message on stderr, nothing written', () => {
    const state = join(out, 'cli.json');
    const r = handover([
      'chip',
      'create',
      '--eum-cert',
      ci,
      '--eum-key',
      p('ci.key'),
      '--ci-cert',
      ci,
      '--sm-cert',
      alphaCert,
      '--sm',
      'sm-alpha.example',
      '--eid',
      eid,
      '--state',
      state,
    ]);
    assert.equal(r.status, 2);
    assert.deepEqual(r.lines, []);
    const error = json(r.stderr.trim()).error as { code: string; message: string };
    assert.equal(error.code, 'UsageError');
    assert.match(error.message, /--eum-cert ".*ci.pem" is not an EUM certificate/);
    assert.equal(existsSync(state), false);
  });
});
