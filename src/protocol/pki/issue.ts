/**
 * Issues X.509 v3 certificates of the PROTOCOL.md §3 profile (CI, EUM, chip, SM) with our DER
 * writer: the TBSCertificate is built, then signed ECDSA-SHA256 (DER ECDSA-Sig-Value) by the
 * issuer's private key.
 */
import { createHash, createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import type { Curve } from '../crypto/curves.ts';
import { ecdsaSign } from '../crypto/ecdsa.ts';
import { curveOfKey, generateKeyPair, publicPointOf } from '../crypto/keys.ts';
import { children, readSingle } from '../der/reader.ts';
import { ctx, U } from '../der/tag.ts';
import {
  bitString,
  boolean,
  constructed,
  integer,
  octets,
  oid,
  sequence,
  set,
  tlv,
  unsignedIntegerBytes,
  x509Time,
} from '../der/writer.ts';
import { parseEid } from '../eid.ts';
import { InvalidInput } from '../errors.ts';
import {
  bytesEqual,
  type Certificate,
  certificateToPem,
  type Extension,
  KEY_USAGE_BITS,
  type KeyUsageName,
  type NameAttribute,
  parseCertificate,
} from './certificate.ts';
import { OID, POLICY_CI, POLICY_EUICC, POLICY_EUM, POLICY_SM } from './oids.ts';
import { smIdProblem } from './validate.ts';

/** Everything that goes into one certificate. Role functions fill it; tests may override any field. */
export interface CertificateProfile {
  /** Serial number contents (unsigned, big-endian); default 16 random bytes, positive. */
  readonly serial?: Uint8Array;
  readonly issuer: readonly NameAttribute[] | Uint8Array;
  readonly subject: readonly NameAttribute[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The key being certified (a public or private KeyObject; only its public part is used). */
  readonly subjectKey: KeyObject;
  /** Basic constraints (always critical); undefined leaves the extension out. */
  readonly basicConstraints?: { readonly ca: boolean; readonly pathLen?: number };
  readonly keyUsage: readonly KeyUsageName[];
  readonly policies: readonly string[];
  /** Critical name constraint with one permitted directoryName (the EUM's O + EID prefix). */
  readonly permittedDirectoryName?: readonly NameAttribute[];
  /** Authority key identifier; undefined leaves the extension out (self-signed CI). */
  readonly authorityKeyId?: Uint8Array;
  /** Further extensions, encoded as given, after the profile's own. */
  readonly extraExtensions?: readonly Extension[];
}

export interface IssuedCertificate {
  readonly certificate: Certificate;
  readonly pem: string;
  /** The subject's private key: the one given, or a new one on the issuer's curve. */
  readonly privateKey: KeyObject;
}

/** Validity, for the role functions: explicit dates, or a number of days from now. */
export interface ValidityOptions {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly validityDays?: number;
}

interface IssuerOptions {
  readonly issuerCert: Certificate;
  readonly issuerKey: KeyObject;
  /** The subject's private key; default: a new key pair on the issuer's curve. */
  readonly key?: KeyObject;
  /** Replaces fields of the profile after the role defaults (tests build bad chains with this). */
  readonly overrides?: Partial<CertificateProfile>;
}

export const DEFAULT_VALIDITY_DAYS = { ci: 35 * 365, eum: 30 * 365, chip: 30 * 365, sm: 5 * 365 } as const;
const DAY_MS = 86_400_000;

const attr = (oidText: string, value: string): NameAttribute => ({ oid: oidText, value });

// ---- encoding ----

/** Country and serialNumber are PrintableString in X.520; everything else is UTF8String (RFC 5280 §4.1.2.6). */
function encodeName(attributes: readonly NameAttribute[]): Uint8Array {
  return sequence(
    ...attributes.map((a) => {
      const printable = a.oid === OID.country || a.oid === OID.serialNumber;
      if (printable && !/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(a.value)) {
        throw new InvalidInput('InvalidCertificateName', `${a.oid} must be a PrintableString: "${a.value}"`);
      }
      const value = printable
        ? tlv(U.printableString, Buffer.from(a.value, 'latin1'))
        : tlv(U.utf8String, Buffer.from(a.value, 'utf8'));
      return set(sequence(oid(a.oid), value));
    }),
  );
}

function extension(oidText: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(
    oid(oidText),
    critical ? boolean(U.boolean, true) : undefined,
    octets(U.octetString, value),
  );
}

/** KeyUsage as a DER named-bit BIT STRING (trailing zero bits removed). */
function keyUsageBits(usages: readonly KeyUsageName[]): Uint8Array {
  const positions = usages.map((u) => KEY_USAGE_BITS.indexOf(u));
  if (positions.length === 0) return tlv(U.bitString, Uint8Array.of(0));
  const highest = Math.max(...positions);
  const bytes = new Uint8Array((highest >> 3) + 1);
  for (const p of positions) bytes[p >> 3]! |= 0x80 >> (p & 7);
  const unused = 7 - (highest & 7);
  return tlv(U.bitString, Uint8Array.of(unused, ...bytes));
}

function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifier(key: KeyObject): Uint8Array {
  const parts = children(readSingle(spkiOf(key), 'SubjectPublicKeyInfo'), 'SubjectPublicKeyInfo');
  const bits = parts[1]!.value.subarray(1);
  return new Uint8Array(createHash('sha1').update(bits).digest());
}

function randomSerial(): Uint8Array {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40; // positive, and always 16 octets
  return new Uint8Array(b);
}

/** Builds the TBSCertificate DER of a profile. */
export function buildTbs(profile: CertificateProfile): Uint8Array {
  const alg = sequence(oid(OID.ecdsaWithSha256));
  const exts: Uint8Array[] = [];
  const bc = profile.basicConstraints;
  if (bc) {
    exts.push(
      extension(
        OID.basicConstraints,
        true,
        sequence(
          bc.ca ? boolean(U.boolean, true) : undefined,
          bc.pathLen === undefined ? undefined : integer(U.integer, bc.pathLen),
        ),
      ),
    );
  }
  exts.push(extension(OID.keyUsage, true, keyUsageBits(profile.keyUsage)));
  if (profile.policies.length > 0) {
    exts.push(
      extension(OID.certificatePolicies, true, sequence(...profile.policies.map((p) => sequence(oid(p))))),
    );
  }
  exts.push(
    extension(OID.subjectKeyIdentifier, false, octets(U.octetString, keyIdentifier(profile.subjectKey))),
  );
  if (profile.authorityKeyId) {
    exts.push(extension(OID.authorityKeyIdentifier, false, sequence(octets(ctx(0), profile.authorityKeyId))));
  }
  if (profile.permittedDirectoryName) {
    const subtree = sequence(constructed(ctx(4, true), encodeName(profile.permittedDirectoryName)));
    exts.push(extension(OID.nameConstraints, true, sequence(constructed(ctx(0, true), subtree))));
  }
  for (const e of profile.extraExtensions ?? []) exts.push(extension(e.oid, e.critical, e.value));
  const issuer = profile.issuer instanceof Uint8Array ? profile.issuer : encodeName(profile.issuer);
  return sequence(
    constructed(ctx(0, true), integer(U.integer, 2)),
    tlv(U.integer, unsignedIntegerBytes(profile.serial ?? randomSerial())),
    alg,
    issuer,
    sequence(x509Time(profile.notBefore), x509Time(profile.notAfter)),
    encodeName(profile.subject),
    spkiOf(profile.subjectKey),
    constructed(ctx(3, true), sequence(...exts)),
  );
}

/** Signs a TBSCertificate (ECDSA-SHA256, DER signature) and returns the whole certificate DER. */
export function signTbs(tbs: Uint8Array, issuerKey: KeyObject): Uint8Array {
  return sequence(tbs, sequence(oid(OID.ecdsaWithSha256)), bitString(ecdsaSign(issuerKey, tbs, 'der')));
}

/** The low-level issuer: no profile rules are checked here (the role functions check them). */
export function issueCertificate(profile: CertificateProfile, issuerKey: KeyObject): Certificate {
  return parseCertificate(signTbs(buildTbs(profile), issuerKey));
}

// ---- the four roles ----

function validity(opts: ValidityOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  // Whole seconds: X.509 times carry no fraction.
  const notBefore = opts.notBefore ?? new Date(Math.floor(Date.now() / 1000) * 1000);
  const notAfter =
    opts.notAfter ?? new Date(notBefore.getTime() + (opts.validityDays ?? defaultDays) * DAY_MS);
  if (notAfter.getTime() <= notBefore.getTime()) {
    throw new InvalidInput('InvalidValidity', 'notAfter must be later than notBefore');
  }
  return { notBefore, notAfter };
}

function finish(profile: CertificateProfile, issuerKey: KeyObject, privateKey: KeyObject): IssuedCertificate {
  const certificate = issueCertificate(profile, issuerKey);
  return { certificate, pem: certificateToPem(certificate), privateKey };
}

function subjectKeyFor(opts: IssuerOptions): KeyObject {
  const issuerCurve = opts.issuerCert.curve;
  if (!issuerCurve)
    throw new InvalidInput('InvalidIssuer', 'the issuer certificate has no P-256/brainpool key');
  if (!bytesEqual(publicPointOf(opts.issuerKey), opts.issuerCert.publicPoint)) {
    throw new InvalidInput('InvalidIssuer', 'the issuer key does not belong to the issuer certificate');
  }
  const key = opts.key ?? generateKeyPair(issuerCurve).privateKey;
  if (curveOfKey(key) !== issuerCurve) {
    throw new InvalidInput('CurveMismatch', `the subject key must be on the issuer's curve (${issuerCurve})`);
  }
  return key;
}

function authorityKeyId(issuerCert: Certificate): Uint8Array {
  return (
    issuerCert.extensions.subjectKeyIdentifier ??
    keyIdentifier(createPublicKey({ key: Buffer.from(issuerCert.spki), format: 'der', type: 'spki' }))
  );
}

export interface IssueCiOptions extends ValidityOptions {
  readonly curve: Curve;
  readonly commonName?: string;
  readonly organization?: string;
  /** The CI's private key; default: a new key pair on `curve`. */
  readonly key?: KeyObject;
  readonly overrides?: Partial<CertificateProfile>;
}

/** A self-signed CI: CA, keyCertSign + cRLSign, policy 2.23.146.1.2.1.0 (PROTOCOL.md §3). */
export function issueCi(opts: IssueCiOptions): IssuedCertificate {
  const key = opts.key ?? generateKeyPair(opts.curve).privateKey;
  if (curveOfKey(key) !== opts.curve)
    throw new InvalidInput('CurveMismatch', `the CI key is not on ${opts.curve}`);
  const subject = [
    attr(OID.commonName, opts.commonName ?? 'Handover Dev CI'),
    attr(OID.organization, opts.organization ?? 'Handover'),
  ];
  const profile: CertificateProfile = {
    issuer: subject,
    subject,
    ...validity(opts, DEFAULT_VALIDITY_DAYS.ci),
    subjectKey: key,
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    policies: [POLICY_CI],
    ...opts.overrides,
  };
  return finish(profile, key, key);
}

export interface IssueEumOptions extends IssuerOptions, ValidityOptions {
  /** The manufacturer: subject O and the name constraint's O. */
  readonly org: string;
  /** EID prefix the EUM may issue chips for (name constraint serialNumber), 1–31 digits. */
  readonly eidPrefix: string;
  readonly commonName?: string;
}

/** An EUM under the CI: CA pathlen 0, keyCertSign, policy …2, critical name constraint {O, EID prefix}. */
export function issueEum(opts: IssueEumOptions): IssuedCertificate {
  if (!/^\d{1,31}$/.test(opts.eidPrefix)) {
    throw new InvalidInput(
      'InvalidEidPrefix',
      `EID prefix must be 1 to 31 decimal digits, got "${opts.eidPrefix}"`,
    );
  }
  if (opts.org.length === 0)
    throw new InvalidInput('InvalidCertificateName', 'the EUM organisation is empty');
  const key = subjectKeyFor(opts);
  const profile: CertificateProfile = {
    issuer: opts.issuerCert.subject.raw,
    subject: [attr(OID.organization, opts.org), attr(OID.commonName, opts.commonName ?? 'EUM')],
    ...validity(opts, DEFAULT_VALIDITY_DAYS.eum),
    subjectKey: key,
    basicConstraints: { ca: true, pathLen: 0 },
    keyUsage: ['keyCertSign'],
    policies: [POLICY_EUM],
    permittedDirectoryName: [attr(OID.organization, opts.org), attr(OID.serialNumber, opts.eidPrefix)],
    authorityKeyId: authorityKeyId(opts.issuerCert),
    ...opts.overrides,
  };
  return finish(profile, opts.issuerKey, key);
}

export interface IssueChipOptions extends IssuerOptions, ValidityOptions {
  /** The chip's EID (32 digits, valid check digits, inside the EUM's prefix). */
  readonly eid: string;
  readonly commonName?: string;
}

/** A chip (eUICC) under an EUM: O = the EUM's constrained O, serialNumber = EID; digitalSignature; policy …1. */
export function issueChip(opts: IssueChipOptions): IssuedCertificate {
  const eid = parseEid(opts.eid);
  const constraint = opts.issuerCert.extensions.nameConstraints?.permittedDirectoryNames.find(
    (dn) => dn.organization !== undefined && dn.serialNumber !== undefined,
  );
  if (!constraint?.organization || constraint.serialNumber === undefined) {
    throw new InvalidInput(
      'InvalidIssuer',
      'the issuer is not an EUM with a name constraint (O, EID prefix)',
    );
  }
  if (!eid.startsWith(constraint.serialNumber)) {
    throw new InvalidInput('InvalidEid', `EID ${eid} is outside the EUM's prefix ${constraint.serialNumber}`);
  }
  const key = subjectKeyFor(opts);
  const profile: CertificateProfile = {
    issuer: opts.issuerCert.subject.raw,
    subject: [
      attr(OID.organization, constraint.organization),
      attr(OID.serialNumber, eid),
      attr(OID.commonName, opts.commonName ?? 'eUICC'),
    ],
    ...validity(opts, DEFAULT_VALIDITY_DAYS.chip),
    subjectKey: key,
    keyUsage: ['digitalSignature'],
    policies: [POLICY_EUICC],
    authorityKeyId: authorityKeyId(opts.issuerCert),
    ...opts.overrides,
  };
  return finish(profile, opts.issuerKey, key);
}

export interface IssueSmOptions extends IssuerOptions, ValidityOptions {
  /** The SM id: the subject CN (PROTOCOL.md §2). */
  readonly smId: string;
  readonly organization?: string;
}

/** An SM under the CI: CN = SM id, CA false, digitalSignature, the project's SM-role policy. */
export function issueSm(opts: IssueSmOptions): IssuedCertificate {
  const problem = smIdProblem(opts.smId);
  if (problem) throw new InvalidInput('InvalidSmId', `SM id ${problem}`);
  const key = subjectKeyFor(opts);
  const subject = [attr(OID.commonName, opts.smId)];
  if (opts.organization) subject.unshift(attr(OID.organization, opts.organization));
  const profile: CertificateProfile = {
    issuer: opts.issuerCert.subject.raw,
    subject,
    ...validity(opts, DEFAULT_VALIDITY_DAYS.sm),
    subjectKey: key,
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    policies: [POLICY_SM],
    authorityKeyId: authorityKeyId(opts.issuerCert),
    ...opts.overrides,
  };
  return finish(profile, opts.issuerKey, key);
}
