/**
 * `handover chip create`: a simulated chip's state file (PROTOCOL.md §4) from files. The chip's
 * identity is one of
 *   - issued now by an EUM: `--eum-cert F --eum-key F --eid EID`, or the EUM of `--pki DIR`;
 *   - an existing chip certificate and key: `--chip-cert F --chip-key F --eum-cert F` (e.g. the
 *     GSMA SGP.26 test eUICC);
 * it trusts the CI certificates of `--ci-cert` (repeatable) and of `--pki` for SM certificates,
 * and starts assigned to `--sm ID` with `--sm-cert F` (or the PKI folder's certificate for ID).
 * Every argument is checked before anything is written; each problem is a usage error (exit 2)
 * that names the option and says what to change. Keys may be PKCS#8 or SEC1 PEM.
 */
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createChipState, parseProfileArgument } from '../chip/create.ts';
import { FileStateStore } from '../chip/file-store.ts';
import {
  type ChipState,
  type ChipStateSummary,
  type ProfileState,
  summarizeChipState,
} from '../chip/state.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { loadPrivateKeyPem, publicKeyFromPoint, publicPointOf } from '../protocol/crypto/keys.ts';
import { parseEid } from '../protocol/eid.ts';
import { errorCode, HandoverError, InvalidInput } from '../protocol/errors.ts';
import {
  bytesEqual,
  type Certificate,
  CertificateError,
  formatName,
  loadCertificates,
} from '../protocol/pki/certificate.ts';
import { type DevPki, loadDevPki } from '../protocol/pki/dev-pki.ts';
import { OID } from '../protocol/pki/oids.ts';
import { type CertificateRole, roleOf, smIdProblem, validateChain } from '../protocol/pki/validate.ts';
import { eidArg } from './args.ts';

export interface ChipCreateOptions {
  state: string;
  sm: string;
  pki?: string;
  eid?: string;
  profile: string[];
  chipCert?: string;
  chipKey?: string;
  eumCert?: string;
  eumKey?: string;
  ciCert: string[];
  smCert?: string;
  force?: boolean;
}

/** What `chip create` prints: the state file and the new chip's summary (no secrets). */
export type ChipCreateResult = { readonly state: string } & ChipStateSummary;

const usage = (message: string): InvalidInput => new InvalidInput('UsageError', message);

const IDENTITY_HELP =
  'give the chip an identity: --eum-cert F --eum-key F --eid EID (a chip certificate issued now by that EUM), ' +
  "--pki DIR --eid EID (issued by the PKI folder's EUM), or --chip-cert F --chip-key F --eum-cert F (an existing chip)";

function readInput(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const why = errorCode(e) ?? 'unreadable';
    throw usage(`cannot read ${flag} "${file}" (${why})`);
  }
}

function certificatesIn(file: string, flag: string): Certificate[] {
  const bytes = readInput(file, flag);
  try {
    return loadCertificates(bytes);
  } catch (e) {
    if (e instanceof HandoverError) throw usage(`${flag} "${file}": ${e.message}`);
    throw e;
  }
}

function roleIn(cert: Certificate, flag: string, file: string): CertificateRole {
  try {
    return roleOf(cert);
  } catch (e) {
    if (e instanceof CertificateError) throw usage(`${flag} "${file}": ${e.message}`);
    throw e;
  }
}

/** The first certificate of `file`, which must have `role` (PROTOCOL.md §3). */
function certificateWithRole(file: string, flag: string, role: CertificateRole, label: string): Certificate {
  const cert = certificatesIn(file, flag)[0]!;
  const actual = roleIn(cert, flag, file);
  if (actual !== role) {
    throw usage(
      `${flag} "${file}" is not ${label} certificate: "${formatName(cert.subject)}" has role ${actual}; ` +
        `give ${label} certificate (PROTOCOL.md §3)`,
    );
  }
  return cert;
}

function privateKey(file: string, flag: string): KeyObject {
  const text = readInput(file, flag).toString('latin1');
  try {
    return loadPrivateKeyPem(text);
  } catch (e) {
    if (e instanceof HandoverError) {
      throw usage(`${flag} "${file}": ${e.message} (an EC private key in PKCS#8 or SEC1 PEM expected)`);
    }
    throw e;
  }
}

function keyOfCertificate(
  key: KeyObject,
  cert: Certificate,
  keyFlag: string,
  keyFile: string,
  certFlag: string,
  certFile: string,
): void {
  if (!bytesEqual(publicPointOf(key), cert.publicPoint)) {
    throw usage(
      `${keyFlag} "${keyFile}" is not the key of ${certFlag} "${certFile}"; give the private key that belongs to it`,
    );
  }
}

/** The EUM's name constraint (O, EID prefix) the SGP.22 way, or a usage error. */
function eumConstraint(eum: Certificate, file: string): { organization: string; prefix: string } {
  const c = eum.extensions.nameConstraints?.permittedDirectoryNames.find(
    (dn) => dn.organization !== undefined && dn.serialNumber !== undefined,
  );
  if (!c?.organization || c.serialNumber === undefined) {
    throw usage(
      `--eum-cert "${file}" has no name constraint with O and an EID prefix; an EUM needs one (PROTOCOL.md §3)`,
    );
  }
  return { organization: c.organization, prefix: c.serialNumber };
}

/** An existing chip certificate must have been issued by the given EUM, inside its EID prefix. */
function checkIssuedByEum(chip: Certificate, eum: Certificate, o: ChipCreateOptions): void {
  const issuedBy =
    bytesEqual(chip.issuer.raw, eum.subject.raw) &&
    chip.signatureAlgorithm === OID.ecdsaWithSha256 &&
    eum.curve !== undefined &&
    ecdsaVerify(publicKeyFromPoint(eum.curve, eum.publicPoint), chip.tbs, chip.signature, 'der');
  if (!issuedBy) {
    throw usage(
      `--chip-cert "${o.chipCert}" was not issued by --eum-cert "${o.eumCert}" ` +
        `(its issuer is "${formatName(chip.issuer)}"); give the EUM certificate that issued it`,
    );
  }
  const { organization, prefix } = eumConstraint(eum, o.eumCert!);
  const eid = chip.subject.serialNumber ?? '';
  if (chip.subject.organization !== organization || !eid.startsWith(prefix)) {
    throw usage(
      `--chip-cert "${o.chipCert}" (O "${chip.subject.organization}", EID ${eid}) is outside the name ` +
        `constraint of --eum-cert "${o.eumCert}" (O "${organization}", EID prefix ${prefix})`,
    );
  }
}

type Identity =
  | { kind: 'existing'; chipCertificate: Certificate; chipKey: KeyObject; eumCertificate: Certificate }
  | { kind: 'issue'; eid: string; eumCertificate: Certificate; eumKey: KeyObject };

function identityFromFiles(o: ChipCreateOptions, pki: DevPki | undefined): Identity {
  const existing = o.chipCert !== undefined || o.chipKey !== undefined;
  if (existing) {
    if (o.eumKey !== undefined) {
      throw usage(
        '--eum-key is for issuing a new chip certificate; an existing chip (--chip-cert, --chip-key) needs ' +
          'only --eum-cert, the EUM certificate that issued it',
      );
    }
    if (o.chipCert === undefined || o.chipKey === undefined || o.eumCert === undefined) {
      throw usage(
        '--chip-cert, --chip-key and --eum-cert go together (an existing chip identity: its certificate, ' +
          'its private key and the EUM certificate that issued it)',
      );
    }
    const chipCertificate = certificateWithRole(o.chipCert, '--chip-cert', 'chip', 'a chip (eUICC)');
    const eumCertificate = certificateWithRole(o.eumCert, '--eum-cert', 'eum', 'an EUM');
    const chipKey = privateKey(o.chipKey, '--chip-key');
    keyOfCertificate(chipKey, chipCertificate, '--chip-key', o.chipKey, '--chip-cert', o.chipCert);
    const certEid = chipCertificate.subject.serialNumber ?? '';
    try {
      parseEid(certEid);
    } catch (e) {
      if (e instanceof InvalidInput) throw usage(`--chip-cert "${o.chipCert}": ${e.message}`);
      throw e;
    }
    if (o.eid !== undefined && eidArg(o.eid) !== certEid) {
      throw usage(
        `--eid ${o.eid} is not the EID in --chip-cert "${o.chipCert}" (${certEid}); leave --eid out or give that one`,
      );
    }
    checkIssuedByEum(chipCertificate, eumCertificate, o);
    return { kind: 'existing', chipCertificate, chipKey, eumCertificate };
  }

  let eumCertificate: Certificate;
  let eumKey: KeyObject;
  if (o.eumCert !== undefined || o.eumKey !== undefined) {
    if (o.eumCert === undefined || o.eumKey === undefined) {
      throw usage(
        '--eum-cert and --eum-key go together to issue a chip certificate (add the missing one); ' +
          'for an existing chip give --chip-cert, --chip-key and --eum-cert',
      );
    }
    eumCertificate = certificateWithRole(o.eumCert, '--eum-cert', 'eum', 'an EUM');
    eumKey = privateKey(o.eumKey, '--eum-key');
    keyOfCertificate(eumKey, eumCertificate, '--eum-key', o.eumKey, '--eum-cert', o.eumCert);
  } else if (pki) {
    eumCertificate = pki.eum.certificate;
    eumKey = pki.eum.privateKey;
  } else {
    throw usage(IDENTITY_HELP);
  }
  if (o.eid === undefined) throw usage('give --eid EID for the new chip certificate');
  const eid = eidArg(o.eid);
  const { prefix } = eumConstraint(eumCertificate, o.eumCert ?? `${o.pki}/eum.pem`);
  if (!eid.startsWith(prefix)) {
    throw usage(
      `--eid ${eid} is outside the EUM's EID prefix ${prefix}; give an EID that starts with ${prefix}`,
    );
  }
  const bc = eumCertificate.extensions.basicConstraints;
  if (!bc?.ca || !eumCertificate.extensions.keyUsage?.keyCertSign) {
    throw usage(
      `the EUM "${formatName(eumCertificate.subject)}" cannot issue certificates: it needs basicConstraints ` +
        'CA:true and keyUsage keyCertSign',
    );
  }
  return { kind: 'issue', eid, eumCertificate, eumKey };
}

function ciCertificates(o: ChipCreateOptions, pki: DevPki | undefined): Certificate[] {
  const cis: Certificate[] = pki ? [pki.ci.certificate] : [];
  for (const file of o.ciCert) {
    for (const c of certificatesIn(file, '--ci-cert')) {
      const role = roleIn(c, '--ci-cert', file);
      if (role !== 'ci') {
        throw usage(
          `--ci-cert "${file}" holds "${formatName(c.subject)}", which has role ${role}, not ci; ` +
            'give the CI (root) certificate, with policy 2.23.146.1.2.1.0',
        );
      }
      if (!cis.some((known) => bytesEqual(known.der, c.der))) cis.push(c);
    }
  }
  if (cis.length === 0) {
    throw usage(
      'give --ci-cert FILE (or --pki DIR): the chip needs a CI to validate SM certificates against',
    );
  }
  return cis;
}

function smCertificate(
  o: ChipCreateOptions,
  pki: DevPki | undefined,
  cis: readonly Certificate[],
): Certificate {
  let cert: Certificate;
  let source: string;
  if (o.smCert !== undefined) {
    cert = certificatesIn(o.smCert, '--sm-cert')[0]!;
    source = `--sm-cert "${o.smCert}"`;
  } else if (pki) {
    const sm = pki.sms.get(o.sm);
    if (!sm) {
      throw usage(
        `the PKI in ${o.pki} has no SM "${o.sm}" (it has: ${[...pki.sms.keys()].join(', ')}); ` +
          'give one of those or --sm-cert FILE',
      );
    }
    cert = sm.certificate;
    source = `the PKI folder's certificate for ${o.sm}`;
  } else {
    throw usage('give --sm-cert FILE (or --pki DIR): the certificate of the SM the chip starts assigned to');
  }
  let smId: string | undefined;
  try {
    smId = validateChain([cert], { trusted: cis, expectRole: 'sm' }).smId;
  } catch (e) {
    if (e instanceof CertificateError) {
      throw usage(
        `${source} does not validate as an SM certificate under the chip's CI certificate(s) ` +
          `(${e.reason}): ${e.message}`,
      );
    }
    throw e;
  }
  if (smId !== o.sm) {
    throw usage(
      `${source} is for SM "${smId}", not --sm "${o.sm}"; give --sm ${smId} or that SM's certificate`,
    );
  }
  return cert;
}

function profiles(o: ChipCreateOptions): ProfileState[] {
  try {
    const list = o.profile.map((p, i) => parseProfileArgument(p, i === 0));
    const seen = new Set<string>();
    for (const p of list) {
      if (seen.has(p.iccid)) throw usage(`--profile: ICCID ${p.iccid} is given twice`);
      seen.add(p.iccid);
    }
    return list;
  } catch (e) {
    if (e instanceof InvalidInput && e.code !== 'UsageError') throw usage(`--profile: ${e.message}`);
    throw e;
  }
}

function outputStore(o: ChipCreateOptions): FileStateStore {
  const dir = dirname(resolve(o.state));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw usage(`--state: folder "${dir}" does not exist; create it first`);
  }
  const inputs = [o.chipCert, o.chipKey, o.eumCert, o.eumKey, o.smCert, ...o.ciCert]
    .filter((f) => f !== undefined)
    .map((f) => resolve(f));
  if (inputs.includes(resolve(o.state))) throw usage(`--state "${o.state}" is one of the input files`);
  if (existsSync(o.state) && statSync(o.state).isDirectory()) {
    throw usage(`--state "${o.state}" is a folder; give a file name`);
  }
  const store = new FileStateStore(o.state);
  if (store.exists() && !o.force) throw usage(`${o.state} exists already; use --force to replace it`);
  return store;
}

/** Checks every argument, builds the chip's state, writes it. Problems are UsageErrors. */
export function createChipFromFiles(o: ChipCreateOptions): ChipCreateResult {
  const problem = smIdProblem(o.sm);
  if (problem) throw usage(`--sm ${problem}`);
  const store = outputStore(o);
  let pki: DevPki | undefined;
  if (o.pki !== undefined) {
    try {
      pki = loadDevPki(o.pki);
    } catch (e) {
      if (e instanceof HandoverError) {
        throw usage(`--pki "${o.pki}": ${e.message} (a folder written by "handover pki init")`);
      }
      throw e;
    }
  }
  const profileList = profiles(o);
  const identity = identityFromFiles(o, pki);
  const cis = ciCertificates(o, pki);
  const sm = smCertificate(o, pki, cis);

  let state: ChipState;
  try {
    state = createChipState({
      identity,
      ciCertificates: cis,
      smId: o.sm,
      smCertificate: sm,
      profiles: profileList,
    });
  } catch (e) {
    // What the checks above do not cover, e.g. an EUM that does not validate under a given CI.
    if (e instanceof CertificateError) {
      throw usage(`the chip's certificate chain does not validate under the CI (${e.reason}): ${e.message}`);
    }
    if (e instanceof HandoverError) throw usage(e.message);
    throw e;
  }
  store.save(state);
  return { state: o.state, ...summarizeChipState(state) };
}
