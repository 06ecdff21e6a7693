/**
 * `handover chip …`: create a simulated chip's state file, and show what it holds (no secrets).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createChipState, parseProfileArgument } from '../chip/create.ts';
import { FileStateStore } from '../chip/file-store.ts';
import { summarizeChipState } from '../chip/state.ts';
import { loadPrivateKeyPem } from '../protocol/crypto/keys.ts';
import { parseEid } from '../protocol/eid.ts';
import { type HandoverError, InvalidInput } from '../protocol/errors.ts';
import { bytesEqual, type Certificate, loadCertificates } from '../protocol/pki/certificate.ts';
import { type DevPki, loadDevPki } from '../protocol/pki/dev-pki.ts';

interface CreateOptions {
  state: string;
  sm: string;
  pki?: string;
  eid?: string;
  profile: string[];
  chipCert?: string;
  chipKey?: string;
  eumCert?: string;
  ciCert: string[];
  smCert?: string;
  force?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function usage(message: string): HandoverError {
  return new InvalidInput('UsageError', message);
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new InvalidInput(
      'FileNotReadable',
      `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      {
        path,
      },
    );
  }
}

function firstCertificate(path: string, what: string): Certificate {
  return loadCertificates(readFile(path, what))[0]!;
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function create(o: CreateOptions): void {
  const store = new FileStateStore(o.state);
  if (store.exists() && !o.force) throw usage(`${o.state} exists already; use --force to replace it`);
  const pki: DevPki | undefined = o.pki === undefined ? undefined : loadDevPki(o.pki);

  const existing = [o.chipCert, o.chipKey, o.eumCert].filter((v) => v !== undefined).length;
  if (existing !== 0 && existing !== 3) {
    throw usage('--chip-cert, --chip-key and --eum-cert go together (an existing chip identity)');
  }

  const cis: Certificate[] = pki ? [pki.ci.certificate] : [];
  for (const path of o.ciCert) {
    for (const c of loadCertificates(readFile(path, 'CI certificate'))) {
      if (!cis.some((known) => bytesEqual(known.der, c.der))) cis.push(c);
    }
  }
  if (cis.length === 0) throw usage('give --pki DIR or --ci-cert FILE: the chip needs a CI to validate SMs');

  let smCertificate: Certificate;
  if (o.smCert !== undefined) smCertificate = firstCertificate(o.smCert, 'SM certificate');
  else if (pki) {
    const sm = pki.sms.get(o.sm);
    if (!sm)
      throw usage(`the PKI in ${o.pki} has no SM "${o.sm}" (it has: ${[...pki.sms.keys()].join(', ')})`);
    smCertificate = sm.certificate;
  } else throw usage('give --pki DIR or --sm-cert FILE for the SM certificate');

  let state: ReturnType<typeof createChipState>;
  const common = {
    ciCertificates: cis,
    smId: o.sm,
    smCertificate,
    profiles: o.profile.map((p, i) => parseProfileArgument(p, i === 0)),
  };
  if (existing === 3) {
    const chipCertificate = firstCertificate(o.chipCert!, 'chip certificate');
    if (o.eid !== undefined && parseEid(o.eid) !== chipCertificate.subject.serialNumber) {
      throw usage(
        `--eid ${o.eid} is not the EID in the chip certificate (${chipCertificate.subject.serialNumber})`,
      );
    }
    state = createChipState({
      ...common,
      identity: {
        kind: 'existing',
        chipCertificate,
        chipKey: loadPrivateKeyPem(readFile(o.chipKey!, 'chip key').toString('utf8')),
        eumCertificate: firstCertificate(o.eumCert!, 'EUM certificate'),
      },
    });
  } else {
    if (!pki) throw usage('give --pki DIR (its EUM issues the chip certificate) or an existing identity');
    if (o.eid === undefined) throw usage('give --eid EID for the new chip certificate');
    state = createChipState({
      ...common,
      identity: {
        kind: 'issue',
        eid: parseEid(o.eid),
        eumCertificate: pki.eum.certificate,
        eumKey: pki.eum.privateKey,
      },
    });
  }
  store.save(state);
  print({ state: o.state, ...summarizeChipState(state) });
}

export function registerChipCommands(program: Command): void {
  const chip = program.command('chip').description('A simulated eUICC: its state file and identity');

  chip
    .command('create')
    .description(
      "Create a chip state file: a chip certificate issued now by the PKI folder's EUM for --eid, " +
        'or an existing identity (--chip-cert, --chip-key, --eum-cert, e.g. the GSMA SGP.26 test eUICC); ' +
        "assigned to SM --sm; trusting the PKI folder's CI (and any --ci-cert) for SM certificates",
    )
    .requiredOption('--state <file>', 'chip state file to write')
    .requiredOption('--sm <smId>', 'the SM the chip starts assigned to')
    .option('--pki <dir>', 'development PKI folder (ci.pem, eum.pem/.key, sm-<id>.pem, pki.json)')
    .option('--eid <eid>', '32-digit EID inside the EUM prefix (with a valid mod-97 check value)')
    .option(
      '--profile <iccid[:operator]>',
      'a profile on the chip; the first is enabled (repeatable)',
      collect,
      [],
    )
    .option('--chip-cert <file>', 'existing chip certificate (PEM or DER)')
    .option('--chip-key <file>', 'its private key (PEM: PKCS#8 or SEC1)')
    .option('--eum-cert <file>', 'the EUM certificate that issued it')
    .option('--ci-cert <file>', 'a CI certificate to trust for SM certificates (repeatable)', collect, [])
    .option('--sm-cert <file>', "the assigned SM's certificate (default: from --pki)")
    .option('--force', 'replace an existing state file')
    .action((o: CreateOptions) => create(o));

  chip
    .command('info')
    .description(
      'Print what a chip state file holds as JSON: EID, assigned SM, counter, pending transfer, profiles (no secrets)',
    )
    .requiredOption('--state <file>', 'chip state file')
    .action((o: { state: string }) => print(summarizeChipState(new FileStateStore(o.state).load())));
}
