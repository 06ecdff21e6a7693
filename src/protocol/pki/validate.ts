/**
 * Certificate chain validation of PROTOCOL.md §3: CI → EUM → chip and CI → SM, each failure
 * with its own reason. Checks run in the order §3 lists them: signatures up to a configured
 * CI, validity dates (only when a time is given: chips have no clock), basic constraints,
 * key usage and role policy per position, one curve along the chain, the EUM name
 * constraint read the SGP.22 way, and the EID.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { isPrintable } from '../asn1/fields.ts';
import type { Curve } from '../crypto/curves.ts';
import { ecdsaVerify } from '../crypto/ecdsa.ts';
import { publicKeyFromPoint } from '../crypto/keys.ts';
import { eidChecksumValid } from '../eid.ts';
import { CryptoError } from '../errors.ts';
import {
  bytesEqual,
  type Certificate,
  CertificateError,
  type CertificateFailure,
  formatName,
} from './certificate.ts';
import { OID, POLICY_CI, POLICY_EUICC, POLICY_EUM, POLICY_SM } from './oids.ts';

export type CertificateRole = 'ci' | 'eum' | 'chip' | 'sm' | 'other';

export interface ValidateOptions {
  /** The configured CI certificates (trust anchors). */
  readonly trusted: readonly Certificate[];
  /** Validation time; undefined = dates are not checked (a chip has no clock, PROTOCOL.md §1). */
  readonly at?: Date;
  /** The role the leaf must have; anything else is `wrongRole`. */
  readonly expectRole?: Exclude<CertificateRole, 'other'>;
}

export interface ValidatedChain {
  readonly role: CertificateRole;
  readonly curve: Curve;
  readonly leaf: Certificate;
  readonly publicKey: KeyObject;
  /** The chip's EID (subject serialNumber), for role 'chip'. */
  readonly eid?: string;
  /** The SM id (subject CN), for role 'sm'. */
  readonly smId?: string;
  /** The trusted CI the chain ends in. */
  readonly ci: Certificate;
  /** Leaf first, ending with the trusted CI. */
  readonly path: readonly Certificate[];
}

const ROLE_POLICIES: readonly (readonly [string, Exclude<CertificateRole, 'other'>])[] = [
  [POLICY_CI, 'ci'],
  [POLICY_EUM, 'eum'],
  [POLICY_EUICC, 'chip'],
  [POLICY_SM, 'sm'],
];

/** "a CI", "an EUM": for messages such as "is an EUM certificate". */
const ROLE_LABEL: Record<CertificateRole, string> = {
  ci: 'a CI',
  eum: 'an EUM',
  chip: 'a chip (eUICC)',
  sm: 'an SM',
  other: 'a non-Handover',
};

/**
 * The role a certificate claims by its policy OID (PROTOCOL.md §3). Policies outside the
 * profile (e.g. SGP.22 SM-DP+ 2.23.146.1.2.1.3/4/5) give 'other'; two role policies are refused.
 */
export function roleOf(cert: Certificate): CertificateRole {
  const policies = cert.extensions.certificatePolicies ?? [];
  const roles = ROLE_POLICIES.filter(([oid]) => policies.includes(oid)).map(([, role]) => role);
  if (roles.length > 1) {
    throw failure('wrongRole', cert, `carries more than one role policy (${roles.join(', ')})`);
  }
  return roles[0] ?? 'other';
}

/** Why an SM id is not acceptable (PROTOCOL.md §2: UTF-8, 1–128 bytes, printable), or undefined. */
export function smIdProblem(smId: string): string | undefined {
  const n = Buffer.byteLength(smId, 'utf8');
  if (n < 1 || n > 128) return `must be 1 to 128 bytes of UTF-8, got ${n}`;
  if (!isPrintable(smId)) return 'must be printable (no control or format characters)';
  if (smId.trim() !== smId) return 'must not start or end with white space';
  return undefined;
}

function describe(cert: Certificate): string {
  return `certificate "${formatName(cert.subject)}" (serial ${cert.serial})`;
}

function failure(reason: CertificateFailure, cert: Certificate, message: string): CertificateError {
  return new CertificateError(reason, `${describe(cert)}: ${message}`, {
    subject: formatName(cert.subject),
    serial: cert.serial,
  });
}

function hex(b: Uint8Array | undefined): string {
  return b ? Buffer.from(b).toString('hex') : '';
}

/**
 * Validates `chainLeafFirst` (leaf, then its issuers; the CI itself may end the list) up to one
 * of `opts.trusted`. A single trusted CI certificate validates as role 'ci'.
 */
export function validateChain(chainLeafFirst: readonly Certificate[], opts: ValidateOptions): ValidatedChain {
  const leaf = chainLeafFirst[0];
  if (!leaf) throw new CertificateError('malformed', 'no certificate to validate (the chain is empty)');

  // The given certificates, minus a trailing copy of a trusted CI.
  const given = [...chainLeafFirst];
  const last = given[given.length - 1]!;
  let ci = opts.trusted.find((t) => bytesEqual(t.der, last.der));
  if (ci) given.pop();

  // Each given certificate must be issued by the next one (issuer DN bytes = subject DN bytes).
  for (let i = 0; i + 1 < given.length; i++) {
    const child = given[i]!;
    const parent = given[i + 1]!;
    if (!bytesEqual(child.issuer.raw, parent.subject.raw)) {
      throw failure(
        'unknownIssuer',
        child,
        `its issuer "${formatName(child.issuer)}" is not the next certificate in the chain ` +
          `("${formatName(parent.subject)}"); give the chain leaf first, each certificate followed by its issuer`,
      );
    }
  }

  // Signatures up the chain to a configured CI; every key on the way must be on one of our curves.
  const top = given[given.length - 1];
  if (top) ci = findIssuingCi(top, opts.trusted);
  if (!ci) throw new CertificateError('malformed', 'no certificate to validate (the chain is empty)');
  const path = [...given, ci];
  for (const cert of path) {
    if (!cert.curve) {
      throw failure('unsupportedCurve', cert, 'its key is not an EC key on P-256 or brainpoolP256r1');
    }
  }
  checkSignature(ci, ci, 'the trusted CI');
  for (let i = path.length - 2; i >= 0; i--) checkSignature(path[i]!, path[i + 1]!, 'its issuer');

  // Validity dates, only when a time is given.
  if (opts.at) {
    const at = opts.at;
    for (let i = path.length - 1; i >= 0; i--) {
      const cert = path[i]!;
      if (at.getTime() < cert.notBefore.getTime()) {
        throw failure(
          'notYetValid',
          cert,
          `not valid before ${cert.notBefore.toISOString()} (checked at ${at.toISOString()})`,
        );
      }
      if (at.getTime() > cert.notAfter.getTime()) {
        throw failure(
          'expired',
          cert,
          `expired at ${cert.notAfter.toISOString()} (checked at ${at.toISOString()}); renew it`,
        );
      }
    }
  }

  // Basic constraints, key usage and role policy per position.
  const roles = path.map(roleOf);
  for (let i = path.length - 1; i >= 0; i--) {
    const cert = path[i]!;
    if (cert.extensions.unknownCritical.length > 0) {
      throw failure(
        'malformed',
        cert,
        `has critical extension(s) this profile does not know: ${cert.extensions.unknownCritical.join(', ')}`,
      );
    }
    if (i > 0) checkIssuerPosition(cert, i - 1);
  }
  const role = checkRoles(path, roles);
  if (opts.expectRole && role !== opts.expectRole) {
    throw failure(
      'wrongRole',
      leaf,
      `is ${ROLE_LABEL[role]} certificate where ${ROLE_LABEL[opts.expectRole]} certificate is required` +
        (role === 'other'
          ? ` (policies: ${(leaf.extensions.certificatePolicies ?? []).join(', ') || 'none'})`
          : ''),
    );
  }

  // One curve along the chain.
  const curve = ci.curve!;
  for (const cert of path) {
    if (cert.curve !== curve) {
      throw failure(
        'curveMismatch',
        cert,
        `its key is on ${cert.curve}, but the CI's is on ${curve}; a chain uses one curve throughout`,
      );
    }
  }

  let eid: string | undefined;
  let smId: string | undefined;
  if (role === 'chip') eid = checkChip(leaf, path[1]!);
  if (role === 'eum') eumConstraint(leaf);
  if (role === 'sm') {
    smId = leaf.subject.commonName;
    const problem = smId === undefined ? 'has no CN' : smIdProblem(smId);
    if (problem) throw failure('malformed', leaf, `subject CN is the SM id and ${problem}`);
  }

  const publicKey = keyOf(leaf);
  return {
    role,
    curve,
    leaf,
    publicKey,
    ...(eid === undefined ? {} : { eid }),
    ...(smId === undefined ? {} : { smId }),
    ci,
    path,
  };
}

/** The trusted CI whose subject is `cert`'s issuer (and whose key id matches, when both are given). */
function findIssuingCi(cert: Certificate, trusted: readonly Certificate[]): Certificate {
  if (bytesEqual(cert.issuer.raw, cert.subject.raw)) {
    throw failure(
      'unknownIssuer',
      cert,
      'is a self-signed root that is not one of the configured CI certificates; configure it as a CI if it is one',
    );
  }
  const byName = trusted.filter((t) => bytesEqual(t.subject.raw, cert.issuer.raw));
  const aki = cert.extensions.authorityKeyIdentifier;
  const byKey = byName.filter((t) => {
    const ski = t.extensions.subjectKeyIdentifier;
    return !aki || !ski || bytesEqual(aki, ski);
  });
  if (byKey.length === 0) {
    const keyNote = byName.length > 0 ? ` with key id ${hex(aki)}` : '';
    throw failure(
      'unknownIssuer',
      cert,
      `its issuer "${formatName(cert.issuer)}"${keyNote} is not a configured CI certificate; ` +
        'add that CI (or give the missing intermediate certificate)',
    );
  }
  // Several CIs may share a name and key id (re-issued roots): take the first whose key verifies.
  const verifying = byKey.find((t) => t.curve && verifies(cert, t));
  return verifying ?? byKey[0]!;
}

/** The certified key; it must be an uncompressed point on the certificate's curve. */
function keyOf(cert: Certificate): KeyObject {
  const curve = cert.curve;
  if (!curve) throw failure('unsupportedCurve', cert, 'its key is not an EC key on P-256 or brainpoolP256r1');
  try {
    return publicKeyFromPoint(curve, cert.publicPoint);
  } catch (e) {
    if (e instanceof CryptoError)
      throw failure('malformed', cert, `its public key is unusable: ${e.message}`);
    throw e;
  }
}

/**
 * Certificate signatures already verified, keyed by SHA-256 of the certificate's DER and of the
 * issuer's key: SMs see the same chip, EUM and peer certificates on every request. Only
 * successes are kept, and every other check of validateChain still runs each time.
 */
const VERIFIED_MAX = 4096;
const verified = new Set<string>();

function verifiedKey(cert: Certificate, issuer: Certificate): string {
  const h = (b: Uint8Array) => createHash('sha256').update(b).digest('base64');
  return `${h(cert.der)}:${h(issuer.spki)}`;
}

function verifies(cert: Certificate, issuer: Certificate): boolean {
  if (cert.signatureAlgorithm !== OID.ecdsaWithSha256 || !issuer.curve) return false;
  const key = verifiedKey(cert, issuer);
  if (verified.has(key)) return true;
  const ok = ecdsaVerify(keyOf(issuer), cert.tbs, cert.signature, 'der');
  if (ok) {
    if (verified.size >= VERIFIED_MAX) verified.delete(verified.values().next().value as string);
    verified.add(key);
  }
  return ok;
}

function checkSignature(cert: Certificate, issuer: Certificate, issuerLabel: string): void {
  if (cert.signatureAlgorithm !== OID.ecdsaWithSha256) {
    throw failure(
      'badSignature',
      cert,
      `signature algorithm ${cert.signatureAlgorithm} is not ecdsa-with-SHA256 (${OID.ecdsaWithSha256})`,
    );
  }
  if (!verifies(cert, issuer)) {
    throw failure(
      'badSignature',
      cert,
      `its signature does not verify under the key of ${issuerLabel} "${formatName(issuer.subject)}"`,
    );
  }
}

/** A certificate that issued another: CA flag, keyCertSign, and pathLen for `below` CAs under it. */
function checkIssuerPosition(cert: Certificate, below: number): void {
  const bc = cert.extensions.basicConstraints;
  if (!bc?.ca) throw failure('caFlag', cert, 'issues certificates but is not a CA (basicConstraints cA)');
  if (!cert.extensions.keyUsage?.keyCertSign) {
    throw failure('keyUsage', cert, 'issues certificates but its key usage lacks keyCertSign');
  }
  if (bc.pathLen !== undefined && below > bc.pathLen) {
    throw failure(
      'pathLength',
      cert,
      `allows ${bc.pathLen} intermediate CA certificate(s) below it (pathLenConstraint), the chain has ${below}`,
    );
  }
}

/** Role policy per position (PROTOCOL.md §3 table). Returns the leaf's role. */
function checkRoles(path: readonly Certificate[], roles: readonly CertificateRole[]): CertificateRole {
  const ciIndex = path.length - 1;
  const ci = path[ciIndex]!;
  if (roles[ciIndex] !== 'ci') {
    throw failure('wrongRole', ci, `is configured as a CI but lacks the CI role policy ${POLICY_CI}`);
  }
  const leaf = path[0]!;
  const leafRole = roles[0]!;
  const expectedLength: Record<CertificateRole, number> = { ci: 1, eum: 2, sm: 2, other: 2, chip: 3 };
  for (let i = ciIndex - 1; i >= 1; i--) {
    // Intermediates: only an EUM, and only directly under the CI.
    const cert = path[i]!;
    if (roles[i] !== 'eum' || i !== ciIndex - 1) {
      throw failure(
        'wrongRole',
        cert,
        `is ${ROLE_LABEL[roles[i]!]} certificate used as an intermediate; only an EUM issued by the CI may be one`,
      );
    }
  }
  if (path.length !== expectedLength[leafRole]) {
    const issuerRole = roles[1] ?? 'ci';
    const want = leafRole === 'chip' ? 'an EUM' : leafRole === 'ci' ? 'nobody (it is a root)' : 'the CI';
    throw failure(
      'wrongRole',
      leaf,
      `is ${ROLE_LABEL[leafRole]} certificate issued by ${issuerRole === 'ci' ? 'the CI' : ROLE_LABEL[issuerRole]}; it must be issued by ${want}`,
    );
  }
  const bc = leaf.extensions.basicConstraints;
  const ku = leaf.extensions.keyUsage;
  switch (leafRole) {
    case 'ci':
    case 'eum':
      if (!bc?.ca)
        throw failure('caFlag', leaf, `${ROLE_LABEL[leafRole]} certificate must be a CA (cA TRUE)`);
      if (leafRole === 'eum' && bc.pathLen !== 0) {
        throw failure('pathLength', leaf, 'an EUM certificate must have pathLenConstraint 0');
      }
      if (!ku?.keyCertSign) {
        throw failure(
          'keyUsage',
          leaf,
          `${ROLE_LABEL[leafRole]} certificate needs the keyCertSign key usage`,
        );
      }
      break;
    case 'chip':
    case 'sm':
      if (bc?.ca) throw failure('caFlag', leaf, `${ROLE_LABEL[leafRole]} certificate must not be a CA`);
      if (!ku?.digitalSignature) {
        throw failure(
          'keyUsage',
          leaf,
          `${ROLE_LABEL[leafRole]} certificate needs the digitalSignature key usage`,
        );
      }
      break;
    case 'other':
      break;
  }
  if (leafRole === 'chip') {
    const eum = path[1]!;
    if (eum.extensions.basicConstraints?.pathLen !== 0) {
      throw failure('pathLength', eum, 'an EUM certificate must have pathLenConstraint 0');
    }
  }
  return leafRole;
}

/** The EUM's critical name constraint: permitted directoryName { O, serialNumber = EID prefix }. */
function eumConstraint(eum: Certificate): { organization: string; prefix: string }[] {
  const nc = eum.extensions.nameConstraints;
  if (!nc)
    throw failure('nameConstraint', eum, 'an EUM certificate needs a name constraint (O and EID prefix)');
  if (!nc.critical) throw failure('nameConstraint', eum, 'the EUM name constraint must be critical');
  const out: { organization: string; prefix: string }[] = [];
  for (const dn of nc.permittedDirectoryNames) {
    if (dn.organization !== undefined && dn.serialNumber !== undefined) {
      out.push({ organization: dn.organization, prefix: dn.serialNumber });
    }
  }
  if (out.length === 0) {
    throw failure(
      'nameConstraint',
      eum,
      'the name constraint has no permitted directoryName with both O and serialNumber (the EID prefix)',
    );
  }
  return out;
}

/** SGP.22 reading of the EUM constraint (chip O equal, EID starts with the prefix), then the EID itself. */
function checkChip(chip: Certificate, eum: Certificate): string {
  const constraints = eumConstraint(eum);
  const org = chip.subject.organization;
  const eid = chip.subject.serialNumber;
  const sameOrg = constraints.filter((c) => c.organization === org);
  if (sameOrg.length === 0) {
    throw failure(
      'nameConstraint',
      chip,
      `its O "${org ?? ''}" is not the O the EUM may issue for (${constraints.map((c) => `"${c.organization}"`).join(', ')})`,
    );
  }
  if (eid === undefined) throw failure('eidChecksum', chip, 'its subject has no serialNumber (the EID)');
  if (!sameOrg.some((c) => eid.startsWith(c.prefix))) {
    throw failure(
      'eidOutsidePrefix',
      chip,
      `EID ${eid} is outside the EUM's EID range (prefix ${sameOrg.map((c) => c.prefix).join(' or ')})`,
    );
  }
  if (!/^\d{32}$/.test(eid))
    throw failure('eidChecksum', chip, `subject serialNumber "${eid}" is not a 32-digit EID`);
  if (!eidChecksumValid(eid))
    throw failure('eidChecksum', chip, `EID ${eid} fails the mod-97 check (digits 31-32)`);
  return eid;
}
