import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateKeyPair, loadPrivateKeyPem, publicPointOf } from '../crypto/keys.ts';
import { makeEid } from '../eid.ts';
import {
  type Certificate,
  CertificateError,
  type CertificateFailure,
  loadCertificates,
  parseCertificate,
} from './certificate.ts';
import { issueCertificate, issueChip, issueCi, issueEum, issueSm, signTbs } from './issue.ts';
import { OID, POLICY_EUICC, POLICY_SM } from './oids.ts';
import { validateChain } from './validate.ts';

const VECTORS = 'test/vectors/sgp26';
const load = (path: string): Certificate => loadCertificates(readFileSync(join(VECTORS, path)))[0]!;

function assertRefused(fn: () => unknown, reason: CertificateFailure, messagePart?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CertificateError, `expected a CertificateError, got ${String(e)}`);
    assert.equal(e.code, 'CertificateInvalid');
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.details.reason, reason);
    if (messagePart) assert.match(e.message, messagePart);
    return true;
  });
}

describe('SGP.26 test certificates (PROTOCOL.md §3, "real data that must validate")', () => {
  const ci2017 = load('bc-java/CERT_CI_ECDSA_NIST.pem');
  const eum = load('bc-java/CERT_EUM_ECDSA_NIST.pem');
  const euicc = load('bc-java/CERT_EUICC_ECDSA_NIST.pem');
  const ciNist = load('pysim/CertificateIssuer/CERT_CI_ECDSA_NIST.der');
  const ciBrp = load('pysim/CertificateIssuer/CERT_CI_ECDSA_BRP.der');
  const trusted = [ciNist, ciBrp, ci2017];
  const EID = '89049032123451234512345678901235';

  it('the bc-java chain CI → EUM → eUICC validates as a chip with the EID, with and without a time', () => {
    for (const at of [undefined, new Date(), new Date('2030-01-01T00:00:00Z')]) {
      const v = validateChain([euicc, eum], { trusted, ...(at ? { at } : {}), expectRole: 'chip' });
      assert.equal(v.role, 'chip');
      assert.equal(v.eid, EID);
      assert.equal(v.curve, 'p256');
      assert.equal(v.ci, ci2017);
      assert.deepEqual(v.path, [euicc, eum, ci2017]);
      assert.equal(v.smId, undefined);
    }
  });

  it('the euicc-rsp re-issue (euicc.der) validates too, and the published key is its key', () => {
    const reissued = load('euicc-rsp/euicc.der');
    const v = validateChain([reissued, load('euicc-rsp/eum.der')], {
      trusted: [load('euicc-rsp/ci-2017.der')],
      at: new Date(),
    });
    assert.equal(v.role, 'chip');
    assert.equal(v.eid, EID);
    const key = loadPrivateKeyPem(readFileSync(join(VECTORS, 'euicc-rsp/euicc-key.pem'), 'utf8'));
    assert.deepEqual(publicPointOf(key), reissued.publicPoint);
    assert.deepEqual(publicPointOf(key), euicc.publicPoint);
    assert.deepEqual(publicPointOf(v.publicKey), euicc.publicPoint);
  });

  it('accepts the trusted CI at the end of the given chain, and the CI alone as role ci', () => {
    assert.equal(validateChain([euicc, eum, ci2017], { trusted }).role, 'chip');
    assert.equal(validateChain([ciNist], { trusted, at: new Date() }).role, 'ci');
    assert.equal(validateChain([ciBrp], { trusted }).curve, 'brainpoolP256r1');
    assert.equal(validateChain([eum], { trusted }).role, 'eum');
  });

  it('matches issuer names by bytes: the same key under another CI name is an unknown issuer', () => {
    // The 2017 "GSMA Test CI" and the v3 "Test CI" share the key, not the name.
    assertRefused(
      () => validateChain([euicc, eum], { trusted: [ciNist, ciBrp] }),
      'unknownIssuer',
      /GSMA Test CI/,
    );
  });

  it('a chain out of order is refused', () => {
    assertRefused(() => validateChain([eum, euicc], { trusted }), 'unknownIssuer', /leaf first/);
  });

  for (const name of ['DPauth', 'DP2auth', 'DPpb', 'DP2pb']) {
    for (const curve of ['NIST', 'BRP']) {
      const dir = name.endsWith('auth') ? 'DPauth' : 'DPpb';
      const file = `pysim/${dir}/CERT_S_SM_${name}_ECDSA_${curve}.der`;
      it(`${file}: valid with role 'other', refused where an SM is required`, () => {
        const cert = load(file);
        const v = validateChain([cert], { trusted, at: new Date() });
        assert.equal(v.role, 'other');
        assert.equal(v.curve, curve === 'NIST' ? 'p256' : 'brainpoolP256r1');
        assert.equal(v.ci, curve === 'NIST' ? ciNist : ciBrp);
        assert.equal(v.smId, undefined);
        assertRefused(
          () => validateChain([cert], { trusted, expectRole: 'sm' }),
          'wrongRole',
          /SM certificate is required/,
        );
      });
    }
  }

  it('a brainpool SM-DP+ certificate against the P-256 CI only (same CI name, other key id) is an unknown issuer', () => {
    const cert = load('pysim/DPauth/CERT_S_SM_DPauth_ECDSA_BRP.der');
    assertRefused(() => validateChain([cert], { trusted: [ciNist] }), 'unknownIssuer', /key id c0bc70ba/);
  });

  for (const curve of ['NIST', 'BRP']) {
    it(`expired DP TLS certificate (Expired_2024, ${curve}): expired now, valid inside its dates and without a time`, () => {
      const cert = load(`pysim/DPtls/Old_TLS_Validity/Expired_2024/CERT_S_SM_DP_TLS_${curve}.der`);
      assertRefused(() => validateChain([cert], { trusted, at: new Date() }), 'expired', /2024-07-11/);
      assert.equal(validateChain([cert], { trusted, at: new Date('2024-01-01T00:00:00Z') }).role, 'other');
      assert.equal(validateChain([cert], { trusted }).role, 'other');
      assertRefused(
        () => validateChain([cert], { trusted, at: new Date('2023-01-01T00:00:00Z') }),
        'notYetValid',
      );
    });
  }
});

describe('validateChain on issued chains: one purpose-built bad chain per reason', () => {
  const PREFIX = '89001012';
  const eidWith = (serial: string, prefix = PREFIX) =>
    makeEid(prefix + serial.padStart(30 - prefix.length, '0'));
  const ci = issueCi({ curve: 'p256' });
  const trusted = [ci.certificate];
  const byCi = { issuerCert: ci.certificate, issuerKey: ci.privateKey };
  const eum = issueEum({ ...byCi, org: 'Test EUM', eidPrefix: PREFIX });
  const byEum = { issuerCert: eum.certificate, issuerKey: eum.privateKey };
  const EID = eidWith('42');
  const chip = issueChip({ ...byEum, eid: EID });
  const sm = issueSm({ ...byCi, smId: 'sm-alpha.example' });
  const now = new Date();
  const year = 365 * 86_400_000;

  it('the good chains validate (chip, SM, EUM, CI), on both curves', () => {
    const c = validateChain([chip.certificate, eum.certificate], { trusted, at: now, expectRole: 'chip' });
    assert.equal(c.eid, EID);
    assert.deepEqual(publicPointOf(c.publicKey), publicPointOf(chip.privateKey));
    const s = validateChain([sm.certificate], { trusted, at: now, expectRole: 'sm' });
    assert.equal(s.smId, 'sm-alpha.example');
    assert.equal(s.eid, undefined);
    assert.equal(validateChain([eum.certificate], { trusted, expectRole: 'eum' }).role, 'eum');
    assert.equal(validateChain([ci.certificate], { trusted }).role, 'ci');

    const bci = issueCi({ curve: 'brainpoolP256r1' });
    const bEum = issueEum({
      issuerCert: bci.certificate,
      issuerKey: bci.privateKey,
      org: 'B',
      eidPrefix: '8900',
    });
    const bChip = issueChip({
      issuerCert: bEum.certificate,
      issuerKey: bEum.privateKey,
      eid: eidWith('7', '8900'),
    });
    const bSm = issueSm({ issuerCert: bci.certificate, issuerKey: bci.privateKey, smId: 'sm-b' });
    const both = [ci.certificate, bci.certificate];
    assert.equal(
      validateChain([bChip.certificate, bEum.certificate], { trusted: both }).curve,
      'brainpoolP256r1',
    );
    assert.equal(validateChain([bSm.certificate], { trusted: both, at: new Date() }).smId, 'sm-b');
  });

  it('badSignature: the tbs signed by a key that is not the issuer', () => {
    const forged = parseCertificate(signTbs(sm.certificate.tbs, generateKeyPair('p256').privateKey));
    assertRefused(() => validateChain([forged], { trusted }), 'badSignature', /does not verify/);
    const forgedChip = parseCertificate(signTbs(chip.certificate.tbs, ci.privateKey));
    assertRefused(() => validateChain([forgedChip, eum.certificate], { trusted }), 'badSignature');
  });

  it('expired and notYetValid, only when a time is given', () => {
    const old = issueSm({
      ...byCi,
      smId: 'old',
      notBefore: new Date(now.getTime() - 3 * year),
      notAfter: new Date(now.getTime() - year),
    });
    assertRefused(() => validateChain([old.certificate], { trusted, at: now }), 'expired', /renew/);
    assert.equal(validateChain([old.certificate], { trusted }).role, 'sm');
    const early = issueSm({ ...byCi, smId: 'early', notBefore: new Date(now.getTime() + year) });
    assertRefused(() => validateChain([early.certificate], { trusted, at: now }), 'notYetValid');
    // An expired intermediate fails the chip chain too.
    const oldEum = issueEum({
      ...byCi,
      org: 'Test EUM',
      eidPrefix: PREFIX,
      notBefore: new Date(now.getTime() - 3 * year),
      validityDays: 365,
    });
    const chip2 = issueChip({ issuerCert: oldEum.certificate, issuerKey: oldEum.privateKey, eid: EID });
    assertRefused(
      () => validateChain([chip2.certificate, oldEum.certificate], { trusted, at: now }),
      'expired',
      /Test EUM/,
    );
  });

  it('wrongRole: role expected differs; an SM under an EUM; a chip directly under the CI; a CI without its policy', () => {
    assertRefused(
      () => validateChain([chip.certificate, eum.certificate], { trusted, expectRole: 'sm' }),
      'wrongRole',
      /is a chip \(eUICC\) certificate where an SM certificate is required/,
    );
    assertRefused(() => validateChain([sm.certificate], { trusted, expectRole: 'chip' }), 'wrongRole');
    const smUnderEum = issueSm({ ...byEum, smId: 'sm-x' });
    assertRefused(
      () => validateChain([smUnderEum.certificate, eum.certificate], { trusted }),
      'wrongRole',
      /issued by an EUM/,
    );
    const chipUnderCi = issueSm({ ...byCi, smId: 'x', overrides: { policies: [POLICY_EUICC] } });
    assertRefused(
      () => validateChain([chipUnderCi.certificate], { trusted }),
      'wrongRole',
      /must be issued by an EUM/,
    );
    const twoRoles = issueSm({ ...byCi, smId: 'x', overrides: { policies: [POLICY_SM, POLICY_EUICC] } });
    assertRefused(
      () => validateChain([twoRoles.certificate], { trusted }),
      'wrongRole',
      /more than one role/,
    );
    const plainRoot = issueCi({ curve: 'p256', overrides: { policies: [] } });
    const smOfPlain = issueSm({
      issuerCert: plainRoot.certificate,
      issuerKey: plainRoot.privateKey,
      smId: 'x',
    });
    assertRefused(
      () => validateChain([smOfPlain.certificate], { trusted: [plainRoot.certificate] }),
      'wrongRole',
      /CI role policy/,
    );
  });

  it('caFlag: an SM that is a CA; an EUM that is not a CA issuing a chip', () => {
    const caSm = issueSm({ ...byCi, smId: 'x', overrides: { basicConstraints: { ca: true } } });
    assertRefused(() => validateChain([caSm.certificate], { trusted }), 'caFlag', /must not be a CA/);
    const leafEum = issueEum({
      ...byCi,
      org: 'Test EUM',
      eidPrefix: PREFIX,
      overrides: { basicConstraints: { ca: false } },
    });
    const chip2 = issueChip({ issuerCert: leafEum.certificate, issuerKey: leafEum.privateKey, eid: EID });
    assertRefused(
      () => validateChain([chip2.certificate, leafEum.certificate], { trusted }),
      'caFlag',
      /not a CA/,
    );
    assertRefused(() => validateChain([leafEum.certificate], { trusted }), 'caFlag');
  });

  it('keyUsage: an SM without digitalSignature; an EUM without keyCertSign', () => {
    const noSig = issueSm({ ...byCi, smId: 'x', overrides: { keyUsage: ['keyAgreement'] } });
    assertRefused(() => validateChain([noSig.certificate], { trusted }), 'keyUsage', /digitalSignature/);
    const noSign = issueEum({
      ...byCi,
      org: 'Test EUM',
      eidPrefix: PREFIX,
      overrides: { keyUsage: ['digitalSignature'] },
    });
    const chip2 = issueChip({ issuerCert: noSign.certificate, issuerKey: noSign.privateKey, eid: EID });
    assertRefused(
      () => validateChain([chip2.certificate, noSign.certificate], { trusted }),
      'keyUsage',
      /keyCertSign/,
    );
  });

  it('eidOutsidePrefix and eidChecksum', () => {
    const outside = eidWith('42', '89001013');
    const withSerial = (serialNumber: string) =>
      issueChip({
        ...byEum,
        eid: EID,
        overrides: {
          subject: [
            { oid: OID.organization, value: 'Test EUM' },
            { oid: OID.serialNumber, value: serialNumber },
          ],
        },
      }).certificate;
    assertRefused(
      () => validateChain([withSerial(outside), eum.certificate], { trusted }),
      'eidOutsidePrefix',
      /prefix 89001012/,
    );
    const badCheck = `${EID.slice(0, 30)}${EID.slice(30) === '00' ? '01' : '00'}`;
    assertRefused(
      () => validateChain([withSerial(badCheck), eum.certificate], { trusted }),
      'eidChecksum',
      /mod-97/,
    );
    assertRefused(
      () => validateChain([withSerial(`${PREFIX}123`), eum.certificate], { trusted }),
      'eidChecksum',
      /32-digit/,
    );
  });

  it('nameConstraint: chip O differs; EUM without a name constraint', () => {
    const otherOrg = issueChip({
      ...byEum,
      eid: EID,
      overrides: {
        subject: [
          { oid: OID.organization, value: 'Other' },
          { oid: OID.serialNumber, value: EID },
        ],
      },
    });
    assertRefused(
      () => validateChain([otherOrg.certificate, eum.certificate], { trusted }),
      'nameConstraint',
      /"Other"/,
    );
    const unconstrained = issueEum({
      ...byCi,
      org: 'Test EUM',
      eidPrefix: PREFIX,
      overrides: { permittedDirectoryName: undefined },
    });
    assert.equal(unconstrained.certificate.extensions.nameConstraints, undefined);
    assertRefused(() => validateChain([unconstrained.certificate], { trusted }), 'nameConstraint');
  });

  it('curveMismatch: a brainpool SM key under a P-256 CI', () => {
    const bp = generateKeyPair('brainpoolP256r1');
    const mixed = issueSm({ ...byCi, smId: 'x', overrides: { subjectKey: bp.publicKey } });
    assertRefused(() => validateChain([mixed.certificate], { trusted }), 'curveMismatch', /brainpoolP256r1/);
  });

  it('unknownIssuer: an SM of another CI; a chip without its EUM', () => {
    const other = issueCi({ curve: 'p256' });
    const foreign = issueSm({ issuerCert: other.certificate, issuerKey: other.privateKey, smId: 'x' });
    assertRefused(() => validateChain([foreign.certificate], { trusted }), 'unknownIssuer');
    const otherNamed = issueCi({ curve: 'p256', commonName: 'Other CI' });
    const foreign2 = issueSm({
      issuerCert: otherNamed.certificate,
      issuerKey: otherNamed.privateKey,
      smId: 'x',
    });
    assertRefused(() => validateChain([foreign2.certificate], { trusted }), 'unknownIssuer', /Other CI/);
    assertRefused(() => validateChain([chip.certificate], { trusted }), 'unknownIssuer');
    assertRefused(() => validateChain([other.certificate], { trusted }), 'unknownIssuer', /self-signed root/);
  });

  it('unsupportedCurve: a P-384 key', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const cert = issueSm({ ...byCi, smId: 'x', overrides: { subjectKey: p384.publicKey } });
    assert.equal(cert.certificate.curve, undefined);
    assertRefused(() => validateChain([cert.certificate], { trusted }), 'unsupportedCurve');
  });

  it('pathLength: a CA below the EUM; an EUM without pathlen 0', () => {
    const subEum = issueEum({ ...byEum, org: 'Test EUM', eidPrefix: PREFIX });
    const chip2 = issueChip({ issuerCert: subEum.certificate, issuerKey: subEum.privateKey, eid: EID });
    assertRefused(
      () => validateChain([chip2.certificate, subEum.certificate, eum.certificate], { trusted }),
      'pathLength',
    );
    const loose = issueEum({
      ...byCi,
      org: 'Test EUM',
      eidPrefix: PREFIX,
      overrides: { basicConstraints: { ca: true } },
    });
    assertRefused(() => validateChain([loose.certificate], { trusted }), 'pathLength', /pathLenConstraint 0/);
    const chip3 = issueChip({ issuerCert: loose.certificate, issuerKey: loose.privateKey, eid: EID });
    assertRefused(() => validateChain([chip3.certificate, loose.certificate], { trusted }), 'pathLength');
  });

  it('malformed: an empty chain; an SM certificate without a usable SM id', () => {
    assertRefused(() => validateChain([], { trusted }), 'malformed');
    const noCn = issueSm({
      ...byCi,
      smId: 'x',
      overrides: { subject: [{ oid: OID.organization, value: 'ACME' }] },
    });
    assertRefused(() => validateChain([noCn.certificate], { trusted }), 'malformed', /SM id/);
  });

  it('malformed: an unknown critical extension (RFC 5280: refuse); unknown non-critical ones are ignored', () => {
    const extra = (critical: boolean) =>
      issueSm({
        ...byCi,
        smId: 'sm-z',
        overrides: {
          extraExtensions: [{ oid: '1.3.6.1.4.1.99999.1', critical, value: Uint8Array.of(0x05, 0x00) }],
        },
      }).certificate;
    assert.deepEqual(extra(true).extensions.unknownCritical, ['1.3.6.1.4.1.99999.1']);
    assertRefused(() => validateChain([extra(true)], { trusted }), 'malformed', /1\.3\.6\.1\.4\.1\.99999\.1/);
    assert.equal(validateChain([extra(false)], { trusted }).smId, 'sm-z');
  });

  it('issueCertificate (low level) builds what the role functions build', () => {
    const low = issueCertificate(
      {
        issuer: ci.certificate.subject.raw,
        subject: [{ oid: OID.commonName, value: 'sm-low' }],
        notBefore: now,
        notAfter: new Date(now.getTime() + year),
        subjectKey: generateKeyPair('p256').publicKey,
        basicConstraints: { ca: false },
        keyUsage: ['digitalSignature'],
        policies: [POLICY_SM],
      },
      ci.privateKey,
    );
    assert.equal(validateChain([low], { trusted, expectRole: 'sm' }).smId, 'sm-low');
  });
});
