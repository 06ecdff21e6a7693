/**
 * X.509 v3 certificates of the SGP.22 profile (PROTOCOL.md §3), read with our strict DER reader.
 * Every byte range a signature covers (tbs, names) is kept exactly as received.
 */
import type { Curve } from '../crypto/curves.ts';
import { curveOfSpki } from '../crypto/keys.ts';
import {
  children,
  expectTag,
  readBoolean,
  readGeneralizedTime,
  readInteger,
  readOid,
  readSingle,
  readTlv,
  readUtcTime,
  type Tlv,
} from '../der/reader.ts';
import { Class, ctx, sameTag, type Tag, tag, U } from '../der/tag.ts';
import { HandoverError, MalformedMessage } from '../errors.ts';
import { OID } from './oids.ts';

/** Why a certificate or chain was refused (PROTOCOL.md §3: each failure has its own typed reason). */
export type CertificateFailure =
  | 'badSignature'
  | 'expired'
  | 'notYetValid'
  | 'wrongRole'
  | 'caFlag'
  | 'keyUsage'
  | 'eidOutsidePrefix'
  | 'eidChecksum'
  | 'curveMismatch'
  | 'unknownIssuer'
  | 'unsupportedCurve'
  | 'malformed'
  | 'nameConstraint'
  | 'pathLength';

/** A certificate that does not parse or a chain that does not validate. Branch on `reason`. */
export class CertificateError extends HandoverError {
  readonly reason: CertificateFailure;
  constructor(reason: CertificateFailure, message: string, details: Record<string, unknown> = {}) {
    super('CertificateInvalid', message, { ...details, reason });
    this.reason = reason;
  }
}

export interface NameAttribute {
  readonly oid: string;
  readonly value: string;
}

export interface DistinguishedName {
  /** The whole Name SEQUENCE, exactly as received: issuer/subject matching compares these bytes. */
  readonly raw: Uint8Array;
  /** Attributes in encoding order (multi-valued RDNs flattened). */
  readonly attributes: readonly NameAttribute[];
  readonly commonName: string | undefined;
  readonly organization: string | undefined;
  /** The serialNumber attribute (2.5.4.5): a chip's EID, an EUM constraint's EID prefix. */
  readonly serialNumber: string | undefined;
}

export interface KeyUsage {
  readonly digitalSignature: boolean;
  readonly contentCommitment: boolean;
  readonly keyEncipherment: boolean;
  readonly dataEncipherment: boolean;
  readonly keyAgreement: boolean;
  readonly keyCertSign: boolean;
  readonly cRLSign: boolean;
  readonly encipherOnly: boolean;
  readonly decipherOnly: boolean;
}
export type KeyUsageName = keyof KeyUsage;
/** Bit positions of RFC 5280 §4.2.1.3. */
export const KEY_USAGE_BITS: readonly KeyUsageName[] = [
  'digitalSignature',
  'contentCommitment',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
];

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** Contents of extnValue (the DER of the extension's own value). */
  readonly value: Uint8Array;
}

export interface NameConstraints {
  readonly critical: boolean;
  /** Permitted subtrees of the directoryName form, in order. */
  readonly permittedDirectoryNames: readonly DistinguishedName[];
  /** Permitted subtrees of any other GeneralName form (not used by the SGP.22 profile). */
  readonly otherPermitted: number;
  /** Whether excludedSubtrees is present (not used by the SGP.22 profile). */
  readonly hasExcluded: boolean;
}

export interface CertificateExtensions {
  readonly all: readonly Extension[];
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen?: number } | undefined;
  readonly keyUsage: KeyUsage | undefined;
  readonly certificatePolicies: readonly string[] | undefined;
  readonly nameConstraints: NameConstraints | undefined;
  readonly subjectKeyIdentifier: Uint8Array | undefined;
  readonly authorityKeyIdentifier: Uint8Array | undefined;
  readonly extendedKeyUsage: readonly string[] | undefined;
  /** Critical extensions this module does not interpret (RFC 5280 says: refuse the certificate). */
  readonly unknownCritical: readonly string[];
}

export interface Certificate {
  /** The whole certificate, exactly as received. */
  readonly der: Uint8Array;
  /** TBSCertificate, exactly as received: what the issuer's signature covers. */
  readonly tbs: Uint8Array;
  /** 1 or 3 (the X.509 version number, not the encoded 0 or 2). */
  readonly version: number;
  /** Serial number, lower-case hex of its INTEGER contents (two's complement, as encoded). */
  readonly serial: string;
  readonly signatureAlgorithm: string;
  /** Contents of the signatureValue BIT STRING: a DER ECDSA-Sig-Value for our profile. */
  readonly signature: Uint8Array;
  readonly issuer: DistinguishedName;
  readonly subject: DistinguishedName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo DER, exactly as received. */
  readonly spki: Uint8Array;
  /** The key's curve when it is an EC key on one of ours, else undefined. */
  readonly curve: Curve | undefined;
  /** Contents of the subjectPublicKey BIT STRING (for EC: the point 04||X||Y). */
  readonly publicPoint: Uint8Array;
  readonly extensions: CertificateExtensions;
}

const EXPLICIT_0 = ctx(0, true);
const EXPLICIT_3 = ctx(3, true);

/** Parses one DER certificate. Any deviation from DER or RFC 5280 structure is a `malformed` CertificateError. */
export function parseCertificate(der: Uint8Array): Certificate {
  try {
    return parse(der);
  } catch (e) {
    if (e instanceof MalformedMessage) {
      throw new CertificateError('malformed', `certificate does not parse: ${e.message}`, { field: e.field });
    }
    throw e;
  }
}

/** Certificates parsed by parseCertificateCached, by their DER (at most PARSED_CACHE_SIZE). */
const PARSED_CACHE_SIZE = 1024;
const parsed = new Map<string, Certificate>();

/**
 * parseCertificate for a server that sees the same certificates again and again (a peer SM's, an
 * EUM's, a chip's within one transfer): the parse of DER bytes seen before is returned again,
 * the same object, so the caller must not change it (its fields are readonly). A certificate
 * that does not parse is never cached, so it is refused again each time.
 */
export function parseCertificateCached(der: Uint8Array): Certificate {
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
  const hit = parsed.get(key);
  if (hit !== undefined) return hit;
  const certificate = parseCertificate(der);
  if (parsed.size >= PARSED_CACHE_SIZE) parsed.delete(parsed.keys().next().value as string);
  parsed.set(key, certificate);
  return certificate;
}

function fail(field: string, message: string): never {
  throw new MalformedMessage(field, message);
}

function parse(input: Uint8Array): Certificate {
  const der = Uint8Array.from(input);
  const top = expectTag(readSingle(der, 'Certificate'), U.sequence, 'Certificate');
  const [tbsTlv, algTlv, sigTlv, extra] = children(top, 'Certificate');
  if (!tbsTlv || !algTlv || !sigTlv)
    fail('Certificate', 'expected tbsCertificate, signatureAlgorithm, signature');
  if (extra) fail('Certificate', 'unexpected element after the signature');
  expectTag(tbsTlv, U.sequence, 'Certificate.tbsCertificate');
  const signatureAlgorithm = readAlgorithm(algTlv, 'Certificate.signatureAlgorithm');
  const signature = readBitString(sigTlv, 'Certificate.signature');

  const items = children(tbsTlv, 'TBSCertificate');
  let i = 0;
  const next = (): Tlv | undefined => items[i];
  let version = 1;
  const v = next();
  if (v && sameTag(v, EXPLICIT_0)) {
    const inner = readSingle(v.value, 'TBSCertificate.version');
    expectTag(inner, U.integer, 'TBSCertificate.version');
    const n = readInteger(inner, 'TBSCertificate.version', 0, 2);
    if (n === 0) fail('TBSCertificate.version', 'v1 must be omitted in DER (DEFAULT)');
    version = n + 1;
    i++;
  }
  const take = (t: Tag, name: string): Tlv => {
    const item = items[i];
    if (!item) fail(`TBSCertificate.${name}`, 'missing mandatory field');
    expectTag(item, t, `TBSCertificate.${name}`);
    i++;
    return item;
  };
  const serialTlv = take(U.integer, 'serialNumber');
  const serial = readSerial(serialTlv);
  const innerAlg = take(U.sequence, 'signature');
  if (!bytesEqual(innerAlg.raw, algTlv.raw)) {
    fail('TBSCertificate.signature', 'differs from Certificate.signatureAlgorithm');
  }
  const issuer = parseName(take(U.sequence, 'issuer'), 'TBSCertificate.issuer');
  const validity = children(take(U.sequence, 'validity'), 'TBSCertificate.validity');
  if (validity.length !== 2) fail('TBSCertificate.validity', 'expected notBefore and notAfter');
  const notBefore = readTime(validity[0]!, 'TBSCertificate.validity.notBefore');
  const notAfter = readTime(validity[1]!, 'TBSCertificate.validity.notAfter');
  const subject = parseName(take(U.sequence, 'subject'), 'TBSCertificate.subject');
  const spkiTlv = take(U.sequence, 'subjectPublicKeyInfo');
  const spkiParts = children(spkiTlv, 'SubjectPublicKeyInfo');
  if (spkiParts.length !== 2) fail('SubjectPublicKeyInfo', 'expected algorithm and subjectPublicKey');
  expectTag(spkiParts[0]!, U.sequence, 'SubjectPublicKeyInfo.algorithm');
  const publicPoint = readBitString(spkiParts[1]!, 'SubjectPublicKeyInfo.subjectPublicKey');
  const spki = Uint8Array.from(spkiTlv.raw);
  let curve: Curve | undefined;
  try {
    curve = curveOfSpki(spki);
  } catch {
    fail('SubjectPublicKeyInfo', 'bad algorithm identifier');
  }
  // issuerUniqueID [1] and subjectUniqueID [2] (v2/v3 only): tolerated, not used.
  for (const n of [1, 2]) {
    const u = next();
    if (u && u.cls === Class.context && u.num === n) {
      if (version < 2) fail('TBSCertificate', 'unique identifiers need v2 or v3');
      i++;
    }
  }
  let extensions = emptyExtensions();
  const ext = next();
  if (ext && sameTag(ext, EXPLICIT_3)) {
    if (version !== 3) fail('TBSCertificate.extensions', 'extensions need a v3 certificate');
    extensions = parseExtensions(readSingle(ext.value, 'TBSCertificate.extensions'));
    i++;
  }
  if (i !== items.length) fail('TBSCertificate', 'unexpected field after the extensions');

  return {
    der,
    tbs: Uint8Array.from(tbsTlv.raw),
    version,
    serial,
    signatureAlgorithm,
    signature,
    issuer,
    subject,
    notBefore,
    notAfter,
    spki,
    curve,
    publicPoint,
    extensions,
  };
}

function readSerial(t: Tlv): string {
  const v = t.value;
  if (v.length === 0) fail('TBSCertificate.serialNumber', 'empty INTEGER');
  if (v.length > 1 && ((v[0] === 0 && (v[1]! & 0x80) === 0) || (v[0] === 0xff && (v[1]! & 0x80) !== 0))) {
    fail('TBSCertificate.serialNumber', 'non-minimal INTEGER');
  }
  // RFC 5280 §4.1.2.2 allows 20 octets; the SGP.26 eUICC serial has 9. Accept a little slack.
  if (v.length > 21) fail('TBSCertificate.serialNumber', 'longer than 20 octets');
  return Buffer.from(v).toString('hex');
}

function readAlgorithm(t: Tlv, field: string): string {
  expectTag(t, U.sequence, field);
  const parts = children(t, field);
  const first = parts[0];
  if (!first || parts.length > 2) fail(field, 'expected algorithm [parameters]');
  return readOid(expectTag(first, U.oid, field), field);
}

function readBitString(t: Tlv, field: string): Uint8Array {
  expectTag(t, U.bitString, field);
  if (t.value.length === 0) fail(field, 'empty BIT STRING');
  if (t.value[0] !== 0) fail(field, 'expected a whole number of bytes (unused bits 0)');
  return Uint8Array.from(t.value.subarray(1));
}

function readTime(t: Tlv, field: string): Date {
  if (sameTag(t, U.utcTime)) return readUtcTime(t, field);
  if (sameTag(t, U.generalizedTime)) {
    const d = readGeneralizedTime(t, field);
    if (d.getUTCMilliseconds() !== 0) fail(field, 'fractional seconds are not allowed in X.509 (RFC 5280)');
    return d;
  }
  return fail(field, 'expected UTCTime or GeneralizedTime');
}

const T61 = tag(Class.universal, false, 20);
const BMP = tag(Class.universal, false, 30);
const UNIVERSAL = tag(Class.universal, false, 28);
const NUMERIC = tag(Class.universal, false, 18);
const VISIBLE = tag(Class.universal, false, 26);
// ignoreBOM: a leading U+FEFF stays in the name (a CN "\uFEFFsm" is not the CN "sm").
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function readDirectoryString(t: Tlv, field: string): string {
  if (t.constructed) fail(field, 'attribute value must be primitive');
  const v = t.value;
  if (sameTag(t, U.utf8String)) {
    try {
      return utf8Decoder.decode(v);
    } catch {
      return fail(field, 'not valid UTF-8');
    }
  }
  if (
    sameTag(t, U.printableString) ||
    sameTag(t, U.ia5String) ||
    sameTag(t, NUMERIC) ||
    sameTag(t, VISIBLE)
  ) {
    for (const b of v) if (b > 0x7f) fail(field, 'non-ASCII byte in an ASCII string type');
    return Buffer.from(v).toString('latin1');
  }
  if (sameTag(t, T61)) return Buffer.from(v).toString('latin1');
  if (sameTag(t, BMP)) {
    if (v.length % 2) fail(field, 'BMPString of odd length');
    let s = '';
    for (let k = 0; k < v.length; k += 2) s += String.fromCharCode((v[k]! << 8) | v[k + 1]!);
    return s;
  }
  if (sameTag(t, UNIVERSAL)) {
    if (v.length % 4) fail(field, 'UniversalString length not a multiple of 4');
    let s = '';
    for (let k = 0; k < v.length; k += 4) {
      s += String.fromCodePoint(((v[k]! << 24) | (v[k + 1]! << 16) | (v[k + 2]! << 8) | v[k + 3]!) >>> 0);
    }
    return s;
  }
  // Any other type: keep it visible rather than guessing (RFC 4514 hex form).
  return `#${Buffer.from(t.raw).toString('hex')}`;
}

/** Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue). */
export function parseName(seq: Tlv, field: string): DistinguishedName {
  expectTag(seq, U.sequence, field);
  const attributes: NameAttribute[] = [];
  for (const rdn of children(seq, field)) {
    expectTag(rdn, U.set, field);
    const atvs = children(rdn, field);
    if (atvs.length === 0) fail(field, 'empty RelativeDistinguishedName');
    for (const atv of atvs) {
      expectTag(atv, U.sequence, field);
      const [type, value, more] = children(atv, field);
      if (!type || !value || more) fail(field, 'AttributeTypeAndValue must have a type and a value');
      const oid = readOid(expectTag(type, U.oid, field), field);
      attributes.push({ oid, value: readDirectoryString(value, `${field}.${oid}`) });
    }
  }
  const first = (oid: string) => attributes.find((a) => a.oid === oid)?.value;
  return {
    raw: Uint8Array.from(seq.raw),
    attributes,
    commonName: first(OID.commonName),
    organization: first(OID.organization),
    serialNumber: first(OID.serialNumber),
  };
}

const SHORT_NAMES: Record<string, string> = {
  [OID.commonName]: 'CN',
  [OID.serialNumber]: 'serialNumber',
  [OID.country]: 'C',
  [OID.organization]: 'O',
  [OID.organizationalUnit]: 'OU',
};

/** A readable one-line form for messages: "CN=Test CI, OU=TESTCERT, O=RSPTEST, C=IT" (encoding order). */
export function formatName(name: DistinguishedName): string {
  if (name.attributes.length === 0) return '(empty name)';
  return name.attributes.map((a) => `${SHORT_NAMES[a.oid] ?? a.oid}=${a.value}`).join(', ');
}

function emptyExtensions(): CertificateExtensions {
  return {
    all: [],
    basicConstraints: undefined,
    keyUsage: undefined,
    certificatePolicies: undefined,
    nameConstraints: undefined,
    subjectKeyIdentifier: undefined,
    authorityKeyIdentifier: undefined,
    extendedKeyUsage: undefined,
    unknownCritical: [],
  };
}

/** Extensions that carry no constraint this profile must enforce, but that we recognise. */
const RECOGNISED_WITHOUT_CHECKS = new Set<string>([
  OID.subjectAltName,
  '2.5.29.31', // cRLDistributionPoints
]);

const EXTENDED_KEY_USAGE = '2.5.29.37';

function parseExtensions(seq: Tlv): CertificateExtensions {
  const field = 'Extensions';
  expectTag(seq, U.sequence, field);
  const all: Extension[] = [];
  const unknownCritical: string[] = [];
  let basicConstraints: CertificateExtensions['basicConstraints'];
  let keyUsage: KeyUsage | undefined;
  let certificatePolicies: string[] | undefined;
  let nameConstraints: NameConstraints | undefined;
  let subjectKeyIdentifier: Uint8Array | undefined;
  let authorityKeyIdentifier: Uint8Array | undefined;
  let extendedKeyUsage: string[] | undefined;
  for (const e of children(seq, field)) {
    expectTag(e, U.sequence, field);
    const parts = children(e, field);
    const oidTlv = parts[0];
    if (!oidTlv) fail(field, 'empty Extension');
    const oid = readOid(expectTag(oidTlv, U.oid, field), field);
    const f = `Extension ${oid}`;
    let k = 1;
    let critical = false;
    const flag = parts[k];
    if (flag && sameTag(flag, U.boolean)) {
      critical = readBoolean(flag, f);
      if (!critical) fail(f, 'critical FALSE must be omitted in DER (DEFAULT)');
      k++;
    }
    const valueTlv = parts[k];
    if (!valueTlv || parts.length !== k + 1) fail(f, 'expected extnID [critical] extnValue');
    expectTag(valueTlv, U.octetString, f);
    if (all.some((x) => x.oid === oid)) fail(f, 'appears twice (RFC 5280 §4.2)');
    const value = Uint8Array.from(valueTlv.value);
    all.push({ oid, critical, value });
    const inner = readSingle(value, f);
    switch (oid) {
      case OID.basicConstraints:
        basicConstraints = parseBasicConstraints(inner, f);
        break;
      case OID.keyUsage:
        keyUsage = parseKeyUsage(inner, f);
        break;
      case OID.certificatePolicies:
        certificatePolicies = children(expectTag(inner, U.sequence, f), f).map((pi) => {
          const first = children(expectTag(pi, U.sequence, f), f)[0];
          if (!first) fail(f, 'empty PolicyInformation');
          return readOid(expectTag(first, U.oid, f), f);
        });
        break;
      case OID.nameConstraints:
        nameConstraints = parseNameConstraints(inner, critical, f);
        break;
      case OID.subjectKeyIdentifier:
        subjectKeyIdentifier = Uint8Array.from(expectTag(inner, U.octetString, f).value);
        break;
      case OID.authorityKeyIdentifier: {
        const keyId = children(expectTag(inner, U.sequence, f), f).find((c) => sameTag(c, ctx(0)));
        authorityKeyIdentifier = keyId ? Uint8Array.from(keyId.value) : undefined;
        break;
      }
      case EXTENDED_KEY_USAGE:
        extendedKeyUsage = children(expectTag(inner, U.sequence, f), f).map((o) =>
          readOid(expectTag(o, U.oid, f), f),
        );
        break;
      default:
        if (critical && !RECOGNISED_WITHOUT_CHECKS.has(oid)) unknownCritical.push(oid);
    }
  }
  return {
    all,
    basicConstraints,
    keyUsage,
    certificatePolicies,
    nameConstraints,
    subjectKeyIdentifier,
    authorityKeyIdentifier,
    extendedKeyUsage,
    unknownCritical,
  };
}

function parseBasicConstraints(t: Tlv, f: string): { ca: boolean; pathLen?: number } {
  const parts = children(expectTag(t, U.sequence, f), f);
  let k = 0;
  let ca = false;
  if (parts[k] && sameTag(parts[k]!, U.boolean)) {
    ca = readBoolean(parts[k]!, f);
    if (!ca) fail(f, 'cA FALSE must be omitted in DER (DEFAULT)');
    k++;
  }
  let pathLen: number | undefined;
  if (parts[k]) {
    pathLen = readInteger(expectTag(parts[k]!, U.integer, f), f, 0, 2 ** 31 - 1);
    k++;
  }
  if (k !== parts.length) fail(f, 'unexpected element');
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

function parseKeyUsage(t: Tlv, f: string): KeyUsage {
  expectTag(t, U.bitString, f);
  const v = t.value;
  const unused = v[0] ?? 8;
  if (unused > 7 || (v.length === 1 && unused !== 0)) fail(f, 'bad BIT STRING');
  if ((v[v.length - 1]! & ((1 << unused) - 1)) !== 0) fail(f, 'unused bits must be zero in DER');
  const bits = v.subarray(1);
  const on = (n: number) => ((bits[n >> 3] ?? 0) & (0x80 >> (n & 7))) !== 0;
  return {
    digitalSignature: on(0),
    contentCommitment: on(1),
    keyEncipherment: on(2),
    dataEncipherment: on(3),
    keyAgreement: on(4),
    keyCertSign: on(5),
    cRLSign: on(6),
    encipherOnly: on(7),
    decipherOnly: on(8),
  };
}

const DIRECTORY_NAME = ctx(4, true);

function parseNameConstraints(t: Tlv, critical: boolean, f: string): NameConstraints {
  const parts = children(expectTag(t, U.sequence, f), f);
  const permittedDirectoryNames: DistinguishedName[] = [];
  let otherPermitted = 0;
  let hasExcluded = false;
  for (const p of parts) {
    if (sameTag(p, ctx(0, true))) {
      for (const subtree of children(p, f)) {
        const base = children(expectTag(subtree, U.sequence, f), f)[0];
        if (!base) fail(f, 'empty GeneralSubtree');
        if (sameTag(base, DIRECTORY_NAME)) {
          permittedDirectoryNames.push(parseName(readSingle(base.value, f), `${f}.directoryName`));
        } else {
          otherPermitted++;
        }
      }
    } else if (sameTag(p, ctx(1, true))) {
      hasExcluded = true;
    } else {
      fail(f, 'unexpected element');
    }
  }
  return { critical, permittedDirectoryNames, otherPermitted, hasExcluded };
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

// ---- loading ----

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * Loads every certificate in a file's content: any number of "CERTIFICATE" PEM blocks (other
 * blocks ignored), or DER (one certificate, or several concatenated).
 */
export function loadCertificates(input: string | Uint8Array): Certificate[] {
  const bytes = typeof input === 'string' ? undefined : input;
  if (bytes && bytes[0] === 0x30) return splitDer(bytes).map(parseCertificate);
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const certs: Certificate[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (m[1] !== 'CERTIFICATE') continue;
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) {
      throw new CertificateError('malformed', 'a CERTIFICATE PEM block is not valid base64');
    }
    certs.push(parseCertificate(new Uint8Array(Buffer.from(body, 'base64'))));
  }
  if (certs.length === 0) {
    throw new CertificateError('malformed', 'no certificate found: expected PEM "CERTIFICATE" blocks or DER');
  }
  return certs;
}

function splitDer(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  try {
    while (pos < bytes.length) {
      const { tlv, next } = readTlv(bytes, pos, 'Certificate');
      out.push(tlv.raw);
      pos = next;
    }
  } catch (e) {
    if (e instanceof MalformedMessage) {
      throw new CertificateError('malformed', `certificate does not parse: ${e.message}`, { field: e.field });
    }
    throw e;
  }
  return out;
}

/** PEM text of one certificate (64-character base64 lines). */
export function certificateToPem(cert: Certificate | Uint8Array): string {
  const der = cert instanceof Uint8Array ? cert : cert.der;
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}
