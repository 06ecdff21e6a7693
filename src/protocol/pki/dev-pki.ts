/**
 * A complete development/test PKI in one folder: a CI, an EUM (for simulated chips) and SM
 * certificates, with PKCS#8 keys and a pki.json manifest. Never for production: the CI key
 * sits in a plain file beside its certificate.
 */
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CURVES, type Curve } from '../crypto/curves.ts';
import { loadPrivateKeyPem, privateKeyToPem, publicPointOf } from '../crypto/keys.ts';
import { HandoverError, InvalidInput } from '../errors.ts';
import { bytesEqual, type Certificate, loadCertificates } from './certificate.ts';
import { type IssuedCertificate, issueCi, issueEum, issueSm } from './issue.ts';

export const DEV_PKI_MANIFEST = 'pki.json';
export const DEFAULT_SM_IDS: readonly string[] = ['sm-alpha.example', 'sm-beta.example'];
export const DEFAULT_EID_PREFIX = '89001012';
export const DEFAULT_EUM_ORG = 'Handover Dev EUM';

export interface DevPkiOptions {
  readonly curve: Curve;
  readonly dir: string;
  readonly eumOrg?: string;
  readonly eidPrefix?: string;
  /** Default: DEFAULT_SM_IDS. */
  readonly smIds?: readonly string[];
  /** Overwrite an existing pki.json in `dir` (default: refuse). */
  readonly force?: boolean;
}

export interface DevPkiFiles {
  readonly cert: string;
  readonly key: string;
}

/** The pki.json manifest. File names are relative to its folder. */
export interface DevPkiManifest {
  readonly version: 1;
  readonly curve: Curve;
  readonly eidPrefix: string;
  readonly eumOrg: string;
  readonly smIds: readonly string[];
  readonly ci: DevPkiFiles;
  readonly eum: DevPkiFiles;
  readonly sms: readonly (DevPkiFiles & { readonly smId: string })[];
}

export interface DevPkiEntry {
  readonly certificate: Certificate;
  readonly privateKey: KeyObject;
}

export interface DevPki {
  readonly dir: string;
  readonly manifest: DevPkiManifest;
  readonly ci: DevPkiEntry;
  readonly eum: DevPkiEntry;
  /** Keyed by SM id, in manifest order. */
  readonly sms: ReadonlyMap<string, DevPkiEntry>;
}

/** "sm-alpha.example" → "sm-sm-alpha.example": letters, digits, '.', '_' and '-' only. */
export function smFileBase(smId: string): string {
  return `sm-${smId.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

export function createDevPki(opts: DevPkiOptions): DevPki {
  const eumOrg = opts.eumOrg ?? DEFAULT_EUM_ORG;
  const eidPrefix = opts.eidPrefix ?? DEFAULT_EID_PREFIX;
  const smIds = opts.smIds && opts.smIds.length > 0 ? [...opts.smIds] : [...DEFAULT_SM_IDS];
  if (new Set(smIds).size !== smIds.length) throw new InvalidInput('InvalidSmId', 'an SM id is given twice');
  const bases = smIds.map(smFileBase);
  if (new Set(bases).size !== bases.length) {
    throw new InvalidInput(
      'InvalidSmId',
      'two SM ids map to the same file name; make them differ in letters or digits',
    );
  }
  if (!opts.force && existsSync(join(opts.dir, DEV_PKI_MANIFEST))) {
    throw new InvalidInput(
      'UsageError',
      `${join(opts.dir, DEV_PKI_MANIFEST)} exists already (pki init: use --force to overwrite)`,
    );
  }

  const ci = issueCi({ curve: opts.curve });
  const eum = issueEum({ issuerCert: ci.certificate, issuerKey: ci.privateKey, org: eumOrg, eidPrefix });
  const sms = smIds.map((smId) => ({
    smId,
    issued: issueSm({ issuerCert: ci.certificate, issuerKey: ci.privateKey, smId }),
  }));

  const manifest: DevPkiManifest = {
    version: 1,
    curve: opts.curve,
    eidPrefix,
    eumOrg,
    smIds,
    ci: { cert: 'ci.pem', key: 'ci.key' },
    eum: { cert: 'eum.pem', key: 'eum.key' },
    sms: smIds.map((smId, i) => ({ smId, cert: `${bases[i]}.pem`, key: `${bases[i]}.key` })),
  };

  mkdirSync(opts.dir, { recursive: true });
  const write = (files: DevPkiFiles, issued: IssuedCertificate) => {
    writeFileSync(join(opts.dir, files.cert), issued.pem);
    writeFileSync(join(opts.dir, files.key), privateKeyToPem(issued.privateKey), { mode: 0o600 });
  };
  write(manifest.ci, ci);
  write(manifest.eum, eum);
  for (const [i, s] of sms.entries()) write(manifest.sms[i]!, s.issued);
  writeFileSync(join(opts.dir, DEV_PKI_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);

  const entry = (i: IssuedCertificate): DevPkiEntry => ({
    certificate: i.certificate,
    privateKey: i.privateKey,
  });
  return {
    dir: opts.dir,
    manifest,
    ci: entry(ci),
    eum: entry(eum),
    sms: new Map(sms.map((s) => [s.smId, entry(s.issued)])),
  };
}

function badManifest(dir: string, message: string): HandoverError {
  return new HandoverError('InvalidDevPki', `${join(dir, DEV_PKI_MANIFEST)}: ${message}`);
}

function isFiles(v: unknown): v is DevPkiFiles {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.cert === 'string' && typeof o.key === 'string';
}

function readManifest(dir: string): DevPkiManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(join(dir, DEV_PKI_MANIFEST), 'utf8'));
  } catch (e) {
    throw badManifest(dir, `cannot be read as JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw badManifest(dir, 'not a JSON object');
  const m = parsed as Record<string, unknown>;
  if (m.version !== 1) throw badManifest(dir, 'unsupported version (expected 1)');
  if (typeof m.curve !== 'string' || !CURVES.includes(m.curve as Curve)) throw badManifest(dir, 'bad curve');
  if (typeof m.eidPrefix !== 'string' || typeof m.eumOrg !== 'string') {
    throw badManifest(dir, 'eidPrefix and eumOrg must be strings');
  }
  if (!isFiles(m.ci) || !isFiles(m.eum)) throw badManifest(dir, 'ci and eum need cert and key file names');
  const sms = m.sms;
  if (
    !Array.isArray(sms) ||
    !sms.every((s) => isFiles(s) && typeof (s as { smId?: unknown }).smId === 'string')
  ) {
    throw badManifest(dir, 'sms must list { smId, cert, key }');
  }
  const smList = sms as (DevPkiFiles & { smId: string })[];
  for (const f of [m.ci, m.eum, ...smList]) {
    for (const name of [f.cert, f.key]) {
      if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) {
        throw badManifest(dir, `file name "${name}" must be a plain name inside the folder`);
      }
    }
  }
  return {
    version: 1,
    curve: m.curve as Curve,
    eidPrefix: m.eidPrefix,
    eumOrg: m.eumOrg,
    smIds: smList.map((s) => s.smId),
    ci: { cert: m.ci.cert, key: m.ci.key },
    eum: { cert: m.eum.cert, key: m.eum.key },
    sms: smList.map((s) => ({ smId: s.smId, cert: s.cert, key: s.key })),
  };
}

function readIn(dir: string, name: string): Buffer {
  try {
    return readFileSync(join(dir, name));
  } catch (e) {
    throw new HandoverError(
      'InvalidDevPki',
      `cannot read ${join(dir, name)}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

/** Loads a folder written by createDevPki (certificates parsed, keys loaded). */
export function loadDevPki(dir: string): DevPki {
  const manifest = readManifest(dir);
  const load = (files: DevPkiFiles): DevPkiEntry => {
    const certificate = loadCertificates(readIn(dir, files.cert))[0]!;
    const privateKey = loadPrivateKeyPem(readIn(dir, files.key).toString('utf8'));
    if (!bytesEqual(publicPointOf(privateKey), certificate.publicPoint)) {
      throw badManifest(dir, `${files.key} is not the key of ${files.cert}`);
    }
    return { certificate, privateKey };
  };
  return {
    dir,
    manifest,
    ci: load(manifest.ci),
    eum: load(manifest.eum),
    sms: new Map(manifest.sms.map((s) => [s.smId, load(s)])),
  };
}
