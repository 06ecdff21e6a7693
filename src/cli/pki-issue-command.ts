/**
 * `handover pki issue --role eum|chip|sm`: issues one certificate of the PROTOCOL.md §3 profile
 * under an existing issuer (a CI for eum and sm, an EUM for chip), which may come from any tool
 * (the openssl CLI included), and writes PREFIX.pem and PREFIX.key (PKCS#8 PEM, mode 0600).
 * Every argument is checked before anything is written; each problem is a usage error (exit 2)
 * that says what to change.
 */
import type { KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Curve } from '../protocol/crypto/curves.ts';
import { curveOfKey, loadPrivateKeyPem, privateKeyToPem, publicPointOf } from '../protocol/crypto/keys.ts';
import { errorCode, HandoverError, InvalidInput } from '../protocol/errors.ts';
import {
  bytesEqual,
  type Certificate,
  CertificateError,
  formatName,
  loadCertificates,
} from '../protocol/pki/certificate.ts';
import {
  DEFAULT_VALIDITY_DAYS,
  type IssuedCertificate,
  issueChip,
  issueEum,
  issueSm,
} from '../protocol/pki/issue.ts';
import { roleOf, smIdProblem, validateChain } from '../protocol/pki/validate.ts';
import { curveArg, eidArg } from './args.ts';
import { type CertificateSummary, summariseCertificate } from './decode.ts';

export type IssueRole = 'eum' | 'chip' | 'sm';

export interface IssueOptions {
  role: string;
  issuerCert: string;
  issuerKey: string;
  curve: string;
  out: string;
  eidPrefix?: string;
  org?: string;
  eid?: string;
  smId?: string;
  days?: string;
  force?: boolean;
}

/** What `pki issue` prints: the new certificate's summary (as `decode` gives it) and the files. */
export type IssueResult = CertificateSummary & { readonly cert: string; readonly key: string };

const DAY_MS = 86_400_000;
const usage = (message: string): InvalidInput => new InvalidInput('UsageError', message);

/** Which role-specific options each role needs (true) or refuses (false); absent = optional. */
const ROLE_OPTIONS: Record<IssueRole, Partial<Record<'eidPrefix' | 'org' | 'eid' | 'smId', boolean>>> = {
  eum: { eidPrefix: true, org: true, eid: false, smId: false },
  chip: { eid: true, eidPrefix: false, smId: false },
  sm: { smId: true, eidPrefix: false, eid: false },
};
const FLAG = { eidPrefix: '--eid-prefix', org: '--org', eid: '--eid', smId: '--sm-id' } as const;

function parseRole(role: string): IssueRole {
  if (role === 'eum' || role === 'chip' || role === 'sm') return role;
  throw usage(`--role must be eum, chip or sm, got "${role}"`);
}

function checkRoleOptions(role: IssueRole, opts: IssueOptions): void {
  for (const [name, needed] of Object.entries(ROLE_OPTIONS[role]) as [keyof typeof FLAG, boolean][]) {
    const given = opts[name] !== undefined;
    if (needed && !given) throw usage(`--role ${role} needs ${FLAG[name]}`);
    if (!needed && given) throw usage(`${FLAG[name]} does not apply to --role ${role}`);
  }
}

function parseDays(days: string | undefined): number | undefined {
  if (days === undefined) return undefined;
  if (!/^\d{1,6}$/.test(days) || Number(days) < 1) {
    throw usage(`--days must be a whole number of days from 1 to 999999, got "${days}"`);
  }
  return Number(days);
}

function readFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const why = errorCode(e) ?? 'unreadable';
    throw usage(`cannot read ${what} "${file}" (${why})`);
  }
}

/** PREFIX.pem and PREFIX.key: the folder must exist; existing files only with --force, never an input. */
function outputPaths(opts: IssueOptions): { cert: string; key: string } {
  const cert = `${opts.out}.pem`;
  const key = `${opts.out}.key`;
  const dir = dirname(resolve(cert));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw usage(`--out: folder "${dir}" does not exist; create it first`);
  }
  const inputs = new Set([resolve(opts.issuerCert), resolve(opts.issuerKey)]);
  for (const path of [cert, key]) {
    if (inputs.has(resolve(path))) throw usage(`--out would overwrite the issuer's file "${path}"`);
    if (!opts.force && existsSync(path)) {
      throw usage(`"${path}" exists already; use --force to overwrite it, or another --out`);
    }
  }
  return { cert, key };
}

function loadIssuer(opts: IssueOptions, curve: Curve): { cert: Certificate; key: KeyObject } {
  let cert: Certificate;
  try {
    const certs = loadCertificates(readFile(opts.issuerCert, '--issuer-cert'));
    cert = certs[0]!;
  } catch (e) {
    if (e instanceof CertificateError) throw usage(`--issuer-cert "${opts.issuerCert}": ${e.message}`);
    throw e;
  }
  let key: KeyObject;
  let keyCurve: Curve;
  try {
    key = loadPrivateKeyPem(readFile(opts.issuerKey, '--issuer-key').toString('latin1'));
    keyCurve = curveOfKey(key);
  } catch (e) {
    if (e instanceof HandoverError && e.code !== 'UsageError') {
      throw usage(`--issuer-key "${opts.issuerKey}": ${e.message} (PKCS#8 or SEC1 PEM expected)`);
    }
    throw e;
  }
  if (keyCurve !== curve) {
    throw usage(
      `--curve is ${curve} but the issuer key "${opts.issuerKey}" is on ${keyCurve}; ` +
        `use --curve ${keyCurve} (a chain uses one curve throughout, PROTOCOL.md §2)`,
    );
  }
  if (cert.curve !== curve) {
    throw usage(
      `--curve is ${curve} but the issuer certificate "${opts.issuerCert}" has a key on ${cert.curve ?? 'an unsupported curve'}`,
    );
  }
  if (!bytesEqual(publicPointOf(key), cert.publicPoint)) {
    throw usage(`--issuer-key "${opts.issuerKey}" is not the key of --issuer-cert "${opts.issuerCert}"`);
  }
  return { cert, key };
}

/** The issuer must hold the role §3 gives it for `role`, be a usable CA, and be valid now. */
function checkIssuer(role: IssueRole, issuer: Certificate, now: Date): void {
  const name = `the issuer "${formatName(issuer.subject)}"`;
  let issuerRole: string;
  try {
    issuerRole = roleOf(issuer);
  } catch (e) {
    if (e instanceof CertificateError) throw usage(`${name}: ${e.message}`);
    throw e;
  }
  const wanted = role === 'chip' ? 'eum' : 'ci';
  if (issuerRole !== wanted) {
    const needed = wanted === 'ci' ? 'a CI (policy 2.23.146.1.2.1.0)' : 'an EUM (policy 2.23.146.1.2.1.2)';
    throw usage(
      `--role ${role} must be issued by ${needed}, but ${name} has role ${issuerRole}; ` +
        `give that ${wanted === 'ci' ? 'CI' : 'EUM'}'s certificate and key (PROTOCOL.md §3)`,
    );
  }
  if (now.getTime() < issuer.notBefore.getTime() || now.getTime() > issuer.notAfter.getTime()) {
    throw usage(
      `${name} is valid from ${issuer.notBefore.toISOString()} to ${issuer.notAfter.toISOString()}, ` +
        'not now; renew it or use another issuer',
    );
  }
  if (wanted === 'ci') {
    try {
      validateChain([issuer], { trusted: [issuer], at: now, expectRole: 'ci' });
    } catch (e) {
      if (e instanceof CertificateError) throw usage(`${name} is not a usable CI: ${e.message}`);
      throw e;
    }
    return;
  }
  const bc = issuer.extensions.basicConstraints;
  if (!bc?.ca || !issuer.extensions.keyUsage?.keyCertSign) {
    throw usage(`${name} cannot issue certificates: it needs basicConstraints CA:true and keyCertSign`);
  }
}

function validityFor(role: IssueRole, issuer: Certificate, now: Date, days: number | undefined) {
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  if (days === undefined) {
    // The role's default, but never past the issuer's own end.
    const byDefault = notBefore.getTime() + DEFAULT_VALIDITY_DAYS[role] * DAY_MS;
    return { notBefore, notAfter: new Date(Math.min(byDefault, issuer.notAfter.getTime())) };
  }
  const notAfter = new Date(notBefore.getTime() + days * DAY_MS);
  if (notAfter.getTime() > issuer.notAfter.getTime()) {
    const most = Math.floor((issuer.notAfter.getTime() - notBefore.getTime()) / DAY_MS);
    throw usage(
      `--days ${days} would outlive the issuer (valid until ${issuer.notAfter.toISOString()}); use --days ${most} or fewer`,
    );
  }
  return { notBefore, notAfter };
}

function issue(
  role: IssueRole,
  opts: IssueOptions,
  issuer: { cert: Certificate; key: KeyObject },
  validity: { notBefore: Date; notAfter: Date },
): IssuedCertificate {
  const base = { issuerCert: issuer.cert, issuerKey: issuer.key, ...validity };
  switch (role) {
    case 'eum':
      return issueEum({ ...base, org: opts.org!, eidPrefix: opts.eidPrefix! });
    case 'chip':
      return issueChip({ ...base, eid: opts.eid! });
    case 'sm':
      return issueSm({
        ...base,
        smId: opts.smId!,
        ...(opts.org === undefined ? {} : { organization: opts.org }),
      });
  }
}

/** The chip-specific checks: a valid EID, inside the EUM's prefix, and --org (if given) = the EUM's O. */
function checkChipOptions(opts: IssueOptions, eum: Certificate): void {
  eidArg(opts.eid!);
  const constraint = eum.extensions.nameConstraints?.permittedDirectoryNames.find(
    (dn) => dn.organization !== undefined && dn.serialNumber !== undefined,
  );
  if (!constraint) {
    throw usage(
      `the issuer "${formatName(eum.subject)}" has no name constraint with O and an EID prefix (PROTOCOL.md §3)`,
    );
  }
  if (!opts.eid!.startsWith(constraint.serialNumber!)) {
    throw usage(
      `--eid ${opts.eid} is outside the EUM's EID prefix ${constraint.serialNumber}; ` +
        `give an EID that starts with ${constraint.serialNumber}`,
    );
  }
  if (opts.org !== undefined && opts.org !== constraint.organization) {
    throw usage(
      `--org "${opts.org}" differs from the EUM's organisation "${constraint.organization}", which a chip ` +
        'certificate must carry; leave --org out or give that one',
    );
  }
}

function checkOtherOptions(role: IssueRole, opts: IssueOptions): void {
  if (role === 'eum') {
    if (!/^\d{1,31}$/.test(opts.eidPrefix!)) {
      throw usage(`--eid-prefix must be 1 to 31 decimal digits, got "${opts.eidPrefix}"`);
    }
    if (opts.org!.trim() === '') throw usage('--org must not be empty');
  }
  if (role === 'sm') {
    const problem = smIdProblem(opts.smId!);
    if (problem) throw usage(`--sm-id ${problem}`);
    if (opts.org !== undefined && opts.org.trim() === '') throw usage('--org must not be empty');
  }
}

/** Checks every argument, issues, checks the result against its issuer, then writes both files. */
export function issueFromFiles(opts: IssueOptions, now = new Date()): IssueResult {
  const role = parseRole(opts.role);
  checkRoleOptions(role, opts);
  const curve = curveArg(opts.curve);
  const days = parseDays(opts.days);
  checkOtherOptions(role, opts);
  const out = outputPaths(opts);
  const issuer = loadIssuer(opts, curve);
  checkIssuer(role, issuer.cert, now);
  if (role === 'chip') checkChipOptions(opts, issuer.cert);
  const validity = validityFor(role, issuer.cert, now, days);

  let issued: IssuedCertificate;
  try {
    issued = issue(role, opts, issuer, validity);
  } catch (e) {
    if (e instanceof InvalidInput) throw usage(e.message);
    throw e;
  }
  if (role !== 'chip') {
    // An EUM or SM must validate under the CI it came from; if not, the CI is unfit (e.g. pathlen 0).
    try {
      validateChain([issued.certificate], { trusted: [issuer.cert], at: now, expectRole: role });
    } catch (e) {
      if (e instanceof CertificateError) {
        throw usage(`the issued certificate would not validate under this issuer: ${e.message}`);
      }
      throw e;
    }
  }

  const flag = opts.force ? 'w' : 'wx';
  writeFileSync(out.key, privateKeyToPem(issued.privateKey), { mode: 0o600, flag });
  chmodSync(out.key, 0o600); // an overwritten file keeps its old mode otherwise
  writeFileSync(out.cert, issued.pem, { flag });
  return { ...summariseCertificate(issued.certificate.der), cert: out.cert, key: out.key };
}

export function registerPkiIssueCommand(pki: Command): void {
  pki
    .command('issue')
    .description(
      'issue one certificate (PROTOCOL.md §3) under an existing CI (eum, sm) or EUM (chip); ' +
        'writes PREFIX.pem and PREFIX.key (PKCS#8, mode 0600) and prints a JSON summary',
    )
    .requiredOption('--role <role>', 'eum, chip or sm')
    .requiredOption('--issuer-cert <file>', "the issuer's certificate (PEM or DER; the first in the file)")
    .requiredOption('--issuer-key <file>', "the issuer's private key (PKCS#8 or SEC1 PEM)")
    .requiredOption('--curve <curve>', "p256 or brainpoolP256r1: must be the issuer's curve")
    .requiredOption('--out <prefix>', 'write PREFIX.pem and PREFIX.key')
    .option('--eid-prefix <digits>', 'eum: the EID prefix of its name constraint (1-31 digits)')
    .option('--org <name>', "eum: the manufacturer (O); chip: must equal the EUM's O; sm: optional O")
    .option('--eid <eid>', "chip: its EID (32 digits, mod-97 check, inside the EUM's prefix)")
    .option('--sm-id <id>', 'sm: the SM id (subject CN)')
    .option(
      '--days <n>',
      "validity in days from now (default: the role's default, capped at the issuer's end)",
    )
    .option('--force', 'overwrite existing output files')
    .action((opts: IssueOptions) => {
      process.stdout.write(`${JSON.stringify(issueFromFiles(opts))}\n`);
    });
}
