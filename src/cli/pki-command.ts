/**
 * `handover pki init`: writes a development PKI folder (CI, EUM, SMs; PROTOCOL.md §3).
 * `handover pki verify`: validates a certificate chain and prints one JSON verdict
 * (exit 0 valid, 1 invalid, 2 usage error).
 * `handover pki issue`: one certificate under an existing issuer (pki-issue-command.ts).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { errorCode, InvalidInput } from '../protocol/errors.ts';
import { type Certificate, CertificateError, loadCertificates } from '../protocol/pki/certificate.ts';
import { createDevPki, DEFAULT_EID_PREFIX, DEFAULT_EUM_ORG } from '../protocol/pki/dev-pki.ts';
import { type CertificateRole, roleOf, validateChain } from '../protocol/pki/validate.ts';
import { curveArg } from './args.ts';
import { registerPkiIssueCommand } from './pki-issue-command.ts';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const usage = (message: string): InvalidInput => new InvalidInput('UsageError', message);

interface InitOptions {
  curve: string;
  out: string;
  sm?: string[];
  eidPrefix: string;
  org: string;
  force?: boolean;
}

export interface VerifyOptions {
  ci: string[];
  at?: string;
  checkTime: boolean;
  role?: string;
}

/** The verdict `pki verify` prints. */
export interface VerifyVerdict {
  valid: boolean;
  role?: CertificateRole;
  eid?: string;
  smId?: string;
  reason?: string;
  message?: string;
}

function readInput(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const why = errorCode(e) ?? 'unreadable';
    throw usage(`cannot read ${what} "${file}" (${why})`);
  }
}

function loadTrusted(files: readonly string[]): Certificate[] {
  return files.flatMap((file) => {
    try {
      return loadCertificates(readInput(file, 'CI certificate file'));
    } catch (e) {
      if (e instanceof CertificateError) throw usage(`CI certificate file "${file}": ${e.message}`);
      throw e;
    }
  });
}

function parseAt(opts: VerifyOptions): Date | undefined {
  if (!opts.checkTime) {
    if (opts.at !== undefined) throw usage('--at and --no-check-time exclude each other');
    return undefined;
  }
  if (opts.at === undefined) return new Date();
  // ISO 8601 with a date part; Date.parse alone accepts too much (e.g. "1").
  const ms = /^\d{4}-\d{2}-\d{2}/.test(opts.at) ? Date.parse(opts.at) : Number.NaN;
  if (Number.isNaN(ms)) throw usage(`--at "${opts.at}" is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)`);
  return new Date(ms);
}

function parseRole(role: string | undefined): 'eum' | 'chip' | 'sm' | undefined {
  if (role === undefined) return undefined;
  if (role === 'eum' || role === 'chip' || role === 'sm') return role;
  throw usage(`--role must be eum, chip or sm, got "${role}"`);
}

export function verifyFiles(files: readonly string[], opts: VerifyOptions): VerifyVerdict {
  const trusted = loadTrusted(opts.ci);
  const at = parseAt(opts);
  const expectRole = parseRole(opts.role);
  const inputs = files.map((f) => readInput(f, 'certificate file'));
  let chain: Certificate[] = [];
  try {
    chain = inputs.flatMap((b) => loadCertificates(b));
    const v = validateChain(chain, { trusted, ...(at ? { at } : {}), ...(expectRole ? { expectRole } : {}) });
    return {
      valid: true,
      role: v.role,
      ...(v.eid === undefined ? {} : { eid: v.eid }),
      ...(v.smId === undefined ? {} : { smId: v.smId }),
    };
  } catch (e) {
    if (!(e instanceof CertificateError)) throw e;
    return { valid: false, ...claimedRole(chain[0]), reason: e.reason, message: e.message };
  }
}

/** The role the leaf claims by its policy, for an invalid chain's verdict (when it can be told). */
function claimedRole(leaf: Certificate | undefined): { role?: CertificateRole } {
  if (!leaf) return {};
  try {
    return { role: roleOf(leaf) };
  } catch {
    return {};
  }
}

export function registerPkiCommands(program: Command): void {
  const pki = program
    .command('pki')
    .description('certificates (PROTOCOL.md §3): a development PKI, chain checks, issuing');

  pki
    .command('init')
    .description('write a development PKI folder: ci.pem/.key, eum.pem/.key, sm-<id>.pem/.key, pki.json')
    .requiredOption('--curve <curve>', 'p256 or brainpoolp256r1')
    .requiredOption('--out <dir>', 'folder to write')
    .option(
      '--sm <id>',
      'an SM id to certify (repeat for several; default sm-alpha.example, sm-beta.example)',
      collect,
    )
    .option('--eid-prefix <digits>', "EID prefix in the EUM's name constraint", DEFAULT_EID_PREFIX)
    .option('--org <name>', "the EUM's organisation (O)", DEFAULT_EUM_ORG)
    .option('--force', 'overwrite an existing PKI in the folder')
    .action((opts: InitOptions) => {
      const curve = curveArg(opts.curve);
      if (!/^\d{1,31}$/.test(opts.eidPrefix))
        throw usage(`--eid-prefix must be 1 to 31 digits, got "${opts.eidPrefix}"`);
      let created: ReturnType<typeof createDevPki>;
      try {
        created = createDevPki({
          curve,
          dir: opts.out,
          eumOrg: opts.org,
          eidPrefix: opts.eidPrefix,
          ...(opts.sm ? { smIds: opts.sm } : {}),
          force: opts.force === true,
        });
      } catch (e) {
        if (e instanceof InvalidInput) throw usage(e.message);
        throw e;
      }
      process.stdout.write(`${JSON.stringify({ dir: created.dir, ...created.manifest })}\n`);
    });

  pki
    .command('verify')
    .description('validate a certificate chain (leaf first) against CI certificates; prints one JSON object')
    .argument(
      '<certs...>',
      'certificate files, leaf first (PEM or DER; a file may hold several certificates)',
    )
    .requiredOption('--ci <file>', 'a trusted CI certificate file (repeat for several)', collect)
    .option('--at <time>', 'validation time, ISO 8601 (default: now)')
    .option('--no-check-time', 'do not check validity dates (as a chip, which has no clock)')
    .option('--role <role>', 'the role the leaf must have: eum, chip or sm')
    .action((files: string[], opts: VerifyOptions) => {
      const verdict = verifyFiles(files, opts);
      process.stdout.write(`${JSON.stringify(verdict)}\n`);
      process.exitCode = verdict.valid ? 0 : 1;
    });

  registerPkiIssueCommand(pki);
}
