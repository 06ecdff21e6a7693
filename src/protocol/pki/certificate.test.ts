import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { concat } from '../der/writer.ts';
import {
  type Certificate,
  CertificateError,
  certificateToPem,
  formatName,
  loadCertificates,
  parseCertificate,
} from './certificate.ts';
import { OID, POLICY_EUICC, POLICY_EUM } from './oids.ts';

const VECTORS = 'test/vectors/sgp26';
const load = (path: string): Certificate => loadCertificates(readFileSync(join(VECTORS, path)))[0]!;
const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : undefined);

function allCertFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return allCertFiles(path);
    return /^CERT_.*\.(pem|der)$/.test(name) || /^(ci-2017|eum|euicc)\.der$/.test(name) ? [path] : [];
  });
}

function assertMalformed(fn: () => unknown): void {
  assert.throws(
    fn,
    (e: unknown) =>
      e instanceof CertificateError && e.reason === 'malformed' && e.code === 'CertificateInvalid',
  );
}

describe('parseCertificate: SGP.26 v1.0 chain (bc-java)', () => {
  const eum = load('bc-java/CERT_EUM_ECDSA_NIST.pem');
  const euicc = load('bc-java/CERT_EUICC_ECDSA_NIST.pem');
  const ci = load('bc-java/CERT_CI_ECDSA_NIST.pem');

  it('reads the eUICC fields, including the year-7492 GeneralizedTime and the 9-octet serial', () => {
    assert.equal(euicc.version, 3);
    assert.equal(euicc.serial, '020000000000000001');
    assert.equal(euicc.signatureAlgorithm, OID.ecdsaWithSha256);
    assert.equal(euicc.curve, 'p256');
    assert.equal(euicc.notAfter.toISOString(), '7492-11-02T14:39:03.000Z');
    assert.equal(euicc.notBefore.toISOString(), '2017-01-09T14:39:03.000Z');
    assert.equal(euicc.subject.serialNumber, '89049032123451234512345678901235');
    assert.equal(euicc.subject.organization, 'RSP Test EUM');
    assert.equal(euicc.subject.commonName, 'Test eUICC');
    assert.deepEqual(
      euicc.subject.attributes.map((a) => a.oid),
      [OID.country, OID.organization, OID.serialNumber, OID.commonName],
    );
    assert.deepEqual(euicc.extensions.certificatePolicies, [POLICY_EUICC]);
    assert.equal(euicc.extensions.keyUsage?.digitalSignature, true);
    assert.equal(euicc.extensions.keyUsage?.keyCertSign, false);
    assert.equal(euicc.extensions.basicConstraints, undefined);
    assert.equal(hex(euicc.extensions.authorityKeyIdentifier), 'dd3da24d350c1cc5d0af0965f40ec34c5ee409f1');
    assert.equal(hex(euicc.extensions.subjectKeyIdentifier), 'a52476af5d50aa376437ccb1da2172ef45f484f0');
    assert.equal(euicc.publicPoint.length, 65);
    assert.equal(euicc.publicPoint[0], 0x04);
  });

  it('reads the EUM basic constraints, key usage and critical name constraint', () => {
    assert.deepEqual(eum.extensions.basicConstraints, { ca: true, pathLen: 0 });
    assert.equal(eum.extensions.keyUsage?.keyCertSign, true);
    assert.equal(eum.extensions.keyUsage?.digitalSignature, false);
    assert.deepEqual(eum.extensions.certificatePolicies, [POLICY_EUM]);
    const nc = eum.extensions.nameConstraints;
    assert.ok(nc);
    assert.equal(nc.critical, true);
    assert.equal(nc.hasExcluded, false);
    assert.equal(nc.permittedDirectoryNames.length, 1);
    assert.equal(formatName(nc.permittedDirectoryNames[0]!), 'O=RSP Test EUM, serialNumber=89049032');
    assert.deepEqual(eum.extensions.unknownCritical, []);
  });

  it('keeps names and tbs exactly as encoded, so issuer matches subject byte for byte', () => {
    assert.deepEqual(euicc.issuer.raw, eum.subject.raw);
    assert.deepEqual(eum.issuer.raw, ci.subject.raw);
    assert.deepEqual(ci.issuer.raw, ci.subject.raw);
    // tbs is the first element of the certificate's contents
    const start = euicc.der.indexOf(0x30, 1);
    assert.deepEqual(euicc.tbs, euicc.der.subarray(start, start + euicc.tbs.length));
    assert.equal(formatName(ci.subject), 'CN=GSMA Test CI, OU=TESTCERT, O=RSPTEST, C=IT');
  });

  it('PEM and DER forms of the same certificate parse the same', () => {
    assert.deepEqual(load('euicc-rsp/eum.der').der, eum.der);
    assert.deepEqual(load('euicc-rsp/ci-2017.der').der, ci.der);
  });
});

describe('parseCertificate agrees with OpenSSL (node X509Certificate) on every SGP.26 file', () => {
  for (const path of allCertFiles(VECTORS)) {
    it(path.slice(VECTORS.length + 1), () => {
      const ours = loadCertificates(readFileSync(path))[0]!;
      const theirs = new X509Certificate(readFileSync(path));
      assert.equal(ours.serial.replace(/^0+/, '').toUpperCase(), theirs.serialNumber.replace(/^0+/, ''));
      assert.equal(ours.notBefore.getTime(), new Date(theirs.validFrom).getTime());
      // X509Certificate prints dates after 9999 wrongly or not at all; compare what it can represent
      if (ours.notAfter.getUTCFullYear() < 2100) {
        assert.equal(ours.notAfter.getTime(), new Date(theirs.validTo).getTime());
      }
      assert.deepEqual(ours.spki, new Uint8Array(theirs.publicKey.export({ format: 'der', type: 'spki' })));
      assert.equal(ours.subject.commonName, /CN=([^\n]*)/.exec(theirs.subject)?.[1]?.replace(/\\(.)/g, '$1'));
      assert.ok(ours.curve === 'p256' || ours.curve === 'brainpoolP256r1');
    });
  }
});

describe('parseCertificate rejects what is not DER X.509', () => {
  const good = load('bc-java/CERT_EUICC_ECDSA_NIST.pem').der;

  it('truncated input', () => assertMalformed(() => parseCertificate(good.subarray(0, good.length - 1))));
  it('trailing bytes', () => assertMalformed(() => parseCertificate(concat(good, Uint8Array.of(0)))));
  it('not a SEQUENCE', () => assertMalformed(() => parseCertificate(Uint8Array.of(0x04, 0x00))));
  it('empty input', () => assertMalformed(() => parseCertificate(new Uint8Array(0))));

  it('a signature algorithm that differs between tbs and the outer field', () => {
    // Flip the last byte of the outer ecdsa-with-SHA256 OID (it follows the tbs).
    const bad = Uint8Array.from(good);
    const tbsEnd = good.indexOf(0x30, 1) + load('bc-java/CERT_EUICC_ECDSA_NIST.pem').tbs.length;
    assert.equal(bad[tbsEnd + 11], 0x02);
    bad[tbsEnd + 11] = 0x03;
    assertMalformed(() => parseCertificate(bad));
  });
});

describe('loadCertificates', () => {
  const ci = readFileSync(join(VECTORS, 'bc-java/CERT_CI_ECDSA_NIST.pem'), 'utf8');
  const eum = readFileSync(join(VECTORS, 'bc-java/CERT_EUM_ECDSA_NIST.pem'), 'utf8');

  it('reads several PEM blocks from one file, in order, ignoring other blocks', () => {
    const key = readFileSync(join(VECTORS, 'euicc-rsp/euicc-key.pem'), 'utf8');
    const certs = loadCertificates(`${eum}\n${key}\nsome text\n${ci}`);
    assert.deepEqual(
      certs.map((c) => c.subject.commonName),
      ['EUM Test', 'GSMA Test CI'],
    );
  });

  it('reads PEM given as bytes, DER, and concatenated DER', () => {
    assert.equal(loadCertificates(Buffer.from(eum)).length, 1);
    const a = readFileSync(join(VECTORS, 'euicc-rsp/eum.der'));
    const b = readFileSync(join(VECTORS, 'euicc-rsp/ci-2017.der'));
    assert.deepEqual(
      loadCertificates(concat(a, b)).map((c) => c.subject.commonName),
      ['EUM Test', 'GSMA Test CI'],
    );
  });

  it('refuses input without any certificate', () => {
    assertMalformed(() => loadCertificates('hello'));
    assertMalformed(() => loadCertificates('-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n'));
  });

  it('certificateToPem round-trips', () => {
    const cert = loadCertificates(eum)[0]!;
    const pem = certificateToPem(cert);
    assert.deepEqual(loadCertificates(pem)[0]!.der, cert.der);
    assert.ok(pem.split('\n').every((line) => line.length <= 64));
  });
});
