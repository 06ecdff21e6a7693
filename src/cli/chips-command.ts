/** `handover chips …`: the chips an operator manages at its own SM (operator API). */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FileStateStore } from '../chip/file-store.ts';
import { InvalidInput } from '../protocol/errors.ts';
import { loadCertificates } from '../protocol/pki/certificate.ts';
import { eidArg } from './args.ts';
import { addOperatorFlags, type OperatorFlags, operatorClient, printJson } from './operator-client.ts';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

function certificateFile(path: string, flag: string): string {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch {
    throw new InvalidInput('UsageError', `cannot read ${flag} ${path}`);
  }
  const [cert] = loadCertificates(text);
  if (!cert) throw new InvalidInput('UsageError', `${flag} ${path} holds no certificate`);
  return b64(cert.der);
}

export function registerChipsCommands(program: Command): void {
  const chips = program
    .command('chips')
    .description('chips your SM manages for you (operator API; --sm, --token, --ca or HANDOVER_* env)');

  addOperatorFlags(
    chips
      .command('register')
      .description(
        "register a chip by its certificate chain: from a chip state file, or the chip's and EUM's certificates",
      )
      .option('--state <file>', 'a simulated chip state file (its certificates are read from it)')
      .option('--chip-cert <file>', 'chip certificate (PEM or DER)')
      .option('--eum-cert <file>', 'EUM certificate (PEM or DER)'),
  ).action(async (o: OperatorFlags & { state?: string; chipCert?: string; eumCert?: string }) => {
    let body: { chipCertificate: string; eumCertificate: string };
    if (o.state) {
      const s = new FileStateStore(o.state).load();
      body = { chipCertificate: s.chipCertificate, eumCertificate: s.eumCertificate };
    } else if (o.chipCert && o.eumCert) {
      body = {
        chipCertificate: certificateFile(o.chipCert, '--chip-cert'),
        eumCertificate: certificateFile(o.eumCert, '--eum-cert'),
      };
    } else {
      throw new InvalidInput('UsageError', 'give --state FILE, or both --chip-cert and --eum-cert');
    }
    printJson(await operatorClient(o).post('/v1/chips', body));
  });

  addOperatorFlags(chips.command('list').description('chips you manage')).action(async (o: OperatorFlags) => {
    printJson(await operatorClient(o).get('/v1/chips'));
  });

  addOperatorFlags(chips.command('show <eid>').description('one chip')).action(
    async (eid: string, o: OperatorFlags) => {
      printJson(await operatorClient(o).get(`/v1/chips/${eidArg(eid, 'EID')}`));
    },
  );

  addOperatorFlags(
    chips
      .command('lock <eid>')
      .description('set the lock policy (PROTOCOL.md §8): --unlocked, --until ISO-DATE, or --code CODE')
      .option('--unlocked', 'no lock')
      .option('--until <date>', 'locked until this date (ISO 8601)')
      .option('--code <code>', 'locked until this unlock code is given (only its hash is stored)'),
  ).action(async (eid: string, o: OperatorFlags & { unlocked?: boolean; until?: string; code?: string }) => {
    const chosen = [o.unlocked, o.until, o.code].filter((x) => x !== undefined);
    if (chosen.length !== 1)
      throw new InvalidInput('UsageError', 'give exactly one of --unlocked, --until DATE, --code CODE');
    let body: Record<string, string>;
    if (o.unlocked) body = { kind: 'unlocked' };
    else if (o.until) {
      const d = new Date(o.until);
      if (Number.isNaN(d.getTime()))
        throw new InvalidInput('UsageError', `--until "${o.until}" is not an ISO 8601 date`);
      body = { kind: 'lockedUntil', until: d.toISOString() };
    } else body = { kind: 'lockedUntilCode', unlockCode: o.code! };
    printJson(await operatorClient(o).put(`/v1/chips/${eidArg(eid, 'EID')}/lock`, body));
  });
}
