import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CURVES, type Curve } from '../crypto/curves.ts';
import { generateKeyPair, publicPointOf } from '../crypto/keys.ts';
import { makeEid } from '../eid.ts';
import { HandoverError } from '../errors.ts';
import { issueChip, issueCi, issueEum, issueSm } from './issue.ts';
import { POLICY_CI, POLICY_EUICC, POLICY_EUM, POLICY_SM } from './oids.ts';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'handover-issue-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function openssl(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function pki(curve: Curve) {
  const ci = issueCi({ curve });
  const byCi = { issuerCert: ci.certificate, issuerKey: ci.privateKey };
  const eum = issueEum({ ...byCi, org: 'Test EUM', eidPrefix: '89001012' });
  const eid = makeEid('890010120000000000000000000042');
  const chip = issueChip({ issuerCert: eum.certificate, issuerKey: eum.privateKey, eid });
  const sm = issueSm({ ...byCi, smId: 'sm-alpha.example', organization: 'Alpha' });
  return { ci, eum, chip, sm, eid };
}

const expectCode = (code: string) => (e: unknown) => e instanceof HandoverError && e.code === code;

for (const curve of CURVES) {
  describe(`issued certificates on ${curve}`, () => {
    const { ci, eum, chip, sm, eid } = pki(curve);

    it('carry the profile of PROTOCOL.md §3', () => {
      const c = ci.certificate;
      assert.deepEqual(c.issuer.raw, c.subject.raw);
      assert.deepEqual(c.extensions.basicConstraints, { ca: true });
      assert.equal(c.extensions.keyUsage?.keyCertSign, true);
      assert.deepEqual(c.extensions.certificatePolicies, [POLICY_CI]);
      assert.equal(c.extensions.authorityKeyIdentifier, undefined);
      assert.equal(c.curve, curve);

      const e = eum.certificate;
      assert.deepEqual(e.issuer.raw, c.subject.raw);
      assert.deepEqual(e.extensions.basicConstraints, { ca: true, pathLen: 0 });
      assert.deepEqual(e.extensions.certificatePolicies, [POLICY_EUM]);
      const nc = e.extensions.nameConstraints?.permittedDirectoryNames[0];
      assert.equal(e.extensions.nameConstraints?.critical, true);
      assert.equal(nc?.organization, 'Test EUM');
      assert.equal(nc?.serialNumber, '89001012');
      assert.deepEqual(e.extensions.authorityKeyIdentifier, c.extensions.subjectKeyIdentifier);

      const h = chip.certificate;
      assert.equal(h.subject.organization, 'Test EUM');
      assert.equal(h.subject.serialNumber, eid);
      assert.equal(h.extensions.basicConstraints, undefined);
      assert.equal(h.extensions.keyUsage?.digitalSignature, true);
      assert.deepEqual(h.extensions.certificatePolicies, [POLICY_EUICC]);

      const s = sm.certificate;
      assert.equal(s.subject.commonName, 'sm-alpha.example');
      assert.equal(s.subject.organization, 'Alpha');
      assert.deepEqual(s.extensions.basicConstraints, { ca: false });
      assert.deepEqual(s.extensions.certificatePolicies, [POLICY_SM]);
      assert.deepEqual(publicPointOf(sm.privateKey), s.publicPoint);
      // SKI: SHA-1 of the public point (RFC 5280 §4.2.1.2, method 1)
      assert.deepEqual(
        s.extensions.subjectKeyIdentifier,
        new Uint8Array(createHash('sha1').update(s.publicPoint).digest()),
      );
    });

    it('encode key usage as minimal named-bit BIT STRINGs', () => {
      const ku = (der: Uint8Array, hex: string) =>
        assert.ok(Buffer.from(der).toString('hex').includes(hex), hex);
      ku(ci.certificate.der, '551d0f0101ff040403020106'); // keyCertSign + cRLSign
      ku(eum.certificate.der, '551d0f0101ff040403020204'); // keyCertSign
      ku(sm.certificate.der, '551d0f0101ff040403020780'); // digitalSignature
    });

    it('node (OpenSSL) verifies each signature under the issuer key', () => {
      const x = (der: Uint8Array) => new X509Certificate(der);
      assert.ok(x(ci.certificate.der).verify(x(ci.certificate.der).publicKey));
      assert.ok(x(eum.certificate.der).verify(x(ci.certificate.der).publicKey));
      assert.ok(x(chip.certificate.der).verify(x(eum.certificate.der).publicKey));
      assert.ok(x(sm.certificate.der).verify(x(ci.certificate.der).publicKey));
      assert.ok(x(sm.certificate.der).checkIssued(x(ci.certificate.der)));
    });

    it('openssl x509 -text parses every certificate', {
      skip: !hasOpenssl && 'openssl not installed',
    }, () => {
      for (const [name, issued] of Object.entries({ ci, eum, chip, sm })) {
        const file = join(tmp, `${curve}-${name}.pem`);
        writeFileSync(file, issued.pem);
        const r = openssl('x509', '-noout', '-text', '-in', file);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /Version: 3/);
        assert.match(r.out, /X509v3 Certificate Policies: critical/);
        if (name === 'eum') {
          assert.match(r.out, /CA:TRUE, pathlen:0/);
          assert.match(r.out, /DirName:O = Test EUM, serialNumber = 89001012/);
        }
        if (name === 'sm') {
          assert.match(r.out, new RegExp(`Policy: ${POLICY_SM.replace(/\./g, '\\.')}`));
          assert.match(r.out, /CA:FALSE/);
          assert.match(r.out, /Subject: O = Alpha, CN = sm-alpha.example/);
        }
        if (name === 'chip') assert.match(r.out, new RegExp(`serialNumber = ${eid}`));
      }
    });

    it('openssl verify accepts CI → SM and CI → EUM', {
      skip: !hasOpenssl && 'openssl not installed',
    }, () => {
      const ciFile = join(tmp, `${curve}-verify-ci.pem`);
      writeFileSync(ciFile, ci.pem);
      for (const [name, issued] of Object.entries({ sm, eum })) {
        const file = join(tmp, `${curve}-verify-${name}.pem`);
        writeFileSync(file, issued.pem);
        const r = openssl('verify', '-x509_strict', '-CAfile', ciFile, file);
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /: OK/);
      }
    });
  });
}

describe('issuing refuses inputs outside the profile', () => {
  const { ci, eum } = pki('p256');
  const byCi = { issuerCert: ci.certificate, issuerKey: ci.privateKey };
  const byEum = { issuerCert: eum.certificate, issuerKey: eum.privateKey };

  it('chip EIDs: bad check digits, outside the prefix, an issuer that is not an EUM', () => {
    const good = makeEid('890010120000000000000000000042');
    assert.throws(() => issueChip({ ...byEum, eid: `${good.slice(0, 30)}00` }), expectCode('InvalidEid'));
    assert.throws(() => issueChip({ ...byEum, eid: makeEid('890010130000000000000000000042') }), /outside/);
    assert.throws(() => issueChip({ ...byCi, eid: good }), expectCode('InvalidIssuer'));
  });

  it('SM ids: empty, too long, control characters, surrounding white space', () => {
    for (const smId of ['', 'x'.repeat(129), 'a\nb', 'zero\u200bwidth', ' sm']) {
      assert.throws(() => issueSm({ ...byCi, smId }), expectCode('InvalidSmId'));
    }
    assert.equal(issueSm({ ...byCi, smId: 'é'.repeat(64) }).certificate.subject.commonName, 'é'.repeat(64));
  });

  it('an issuer key that is not the issuer certificate’s, a subject key on another curve', () => {
    assert.throws(
      () => issueSm({ issuerCert: ci.certificate, issuerKey: eum.privateKey, smId: 'x' }),
      expectCode('InvalidIssuer'),
    );
    const bp = generateKeyPair('brainpoolP256r1').privateKey;
    assert.throws(() => issueSm({ ...byCi, smId: 'x', key: bp }), expectCode('CurveMismatch'));
    assert.throws(() => issueCi({ curve: 'p256', key: bp }), expectCode('CurveMismatch'));
  });

  it('EID prefixes and validity periods', () => {
    for (const eidPrefix of ['', '89a', '1'.repeat(32)]) {
      assert.throws(() => issueEum({ ...byCi, org: 'X', eidPrefix }), expectCode('InvalidEidPrefix'));
    }
    const now = new Date();
    assert.throws(
      () => issueSm({ ...byCi, smId: 'x', notBefore: now, notAfter: now }),
      expectCode('InvalidValidity'),
    );
  });
});

describe('serials and times', () => {
  const { ci } = pki('p256');
  it('serials are random, positive and 16 octets', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const s = issueSm({ issuerCert: ci.certificate, issuerKey: ci.privateKey, smId: 'x' }).certificate
        .serial;
      assert.equal(s.length, 32);
      assert.ok(Number.parseInt(s.slice(0, 2), 16) < 0x80);
      serials.add(s);
    }
    assert.equal(serials.size, 20);
  });

  it('dates from 2050 on are GeneralizedTime and read back exactly', () => {
    const notBefore = new Date('2049-12-31T23:59:59Z');
    const notAfter = new Date('7492-11-02T14:39:03Z');
    const c = issueCi({ curve: 'p256', notBefore, notAfter }).certificate;
    assert.equal(c.notBefore.toISOString(), notBefore.toISOString());
    assert.equal(c.notAfter.toISOString(), notAfter.toISOString());
    assert.ok(Buffer.from(c.tbs).includes(Buffer.from('74921102143903Z', 'latin1')));
    assert.ok(Buffer.from(c.tbs).includes(Buffer.from('491231235959Z', 'latin1')));
  });

  it('default validity starts now (whole seconds) and lasts the role default', () => {
    const before = Date.now();
    const sm = issueSm({ issuerCert: ci.certificate, issuerKey: ci.privateKey, smId: 'x' }).certificate;
    const afterIssue = Date.now();
    assert.ok(sm.notBefore.getTime() <= afterIssue && sm.notBefore.getTime() > before - 1000);
    assert.equal(sm.notBefore.getUTCMilliseconds(), 0);
    assert.equal(Math.round((sm.notAfter.getTime() - sm.notBefore.getTime()) / 86_400_000), 5 * 365);
  });
});
