/**
 * The chip debugging tools as their users run them (child processes from the repo root):
 * a complete transfer driven only through `handover chip apdu`, the SM side built by the test
 * from raw bytes and the APDUs framed by hand (STORE DATA chaining over several blocks,
 * 61xx / GET RESPONSE), refusals read with `handover decode`; a chip made by `chip create` from
 * a CI and EUM the openssl CLI made; and a chip with the GSMA SGP.26 test eUICC identity.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createChipState } from '../src/chip/create.ts';
import { FileStateStore } from '../src/chip/file-store.ts';
import { decodeHandoverResult } from '../src/protocol/asn1/handover.ts';
import { decodeTransferPermissionMessage } from '../src/protocol/asn1/permission.ts';
import { decodeTransferRequest } from '../src/protocol/asn1/request.ts';
import { ecdsaVerify } from '../src/protocol/crypto/ecdsa.ts';
import { loadPrivateKeyPem, publicKeyFromPoint } from '../src/protocol/crypto/keys.ts';
import { makeEid } from '../src/protocol/eid.ts';
import { receiptValid } from '../src/protocol/handover-keys.ts';
import { loadCertificates, parseCertificate } from '../src/protocol/pki/certificate.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';
import {
  assembleAnswer,
  chipApdu,
  chipCertificatesOf,
  commandExchange,
  handover,
  handoverResultLength,
  hex,
  json,
  SELECT_ISD_R,
  storeData,
  transferByApdus,
  transferRequestLength,
} from './support/chip-apdus.ts';
import {
  answerTransferRequest,
  smOf,
  type TestSm,
  transferPermissionMessage,
} from './support/sm-messages.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-chip-tools-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SGP26 = 'test/vectors/sgp26';
const SGP26_EID = '89049032123451234512345678901235';

/** `handover decode --hex`: the decoded ChipResult's data fields. */
function decodedChipResult(answer: Uint8Array): Record<string, unknown> {
  const r = handover(['decode', '--hex', hex(answer)]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const decoded = json(r.lines[0]) as { type: string; fields: { data: { fields: Record<string, unknown> } } };
  assert.equal(decoded.type, 'ChipResult');
  return decoded.fields.data.fields;
}

describe('a transfer driven only through "handover chip apdu"', () => {
  const pki = createDevPki({
    curve: 'p256',
    dir: join(tmp, 'pki'),
    smIds: ['sm-alpha.example', 'sm-beta.example'],
  });
  const alpha = smOf(pki, 'sm-alpha.example');
  const beta = smOf(pki, 'sm-beta.example');
  const eid = makeEid(`${pki.manifest.eidPrefix}0000000000000000000077`);
  const state = join(tmp, 'chip.json');
  new FileStateStore(state).save(
    createChipState({
      identity: { kind: 'issue', eid, eumCertificate: pki.eum.certificate, eumKey: pki.eum.privateKey },
      ciCertificates: [pki.ci.certificate],
      smId: alpha.smId,
      smCertificate: alpha.certificate,
    }),
  );
  const chip = chipCertificatesOf(state);
  const chipKey = publicKeyFromPoint('p256', parseCertificate(chip.chipCertificate).publicPoint);

  const permission = transferPermissionMessage(alpha, beta, { eid, counterValue: 1 });
  const permissionId = decodeTransferPermissionMessage(permission).permission.data.permissionId;
  // Same counter, another permission: a replay once the first is accepted (§6.2 order: before pendingExists).
  const replayed = transferPermissionMessage(alpha, beta, { eid, counterValue: 1 });
  // Counter 2, one bit of the current SM's signature flipped.
  const badSignature = transferPermissionMessage(alpha, beta, { eid, counterValue: 2 });
  const signature = decodeTransferPermissionMessage(badSignature).permission.signature;
  badSignature[Buffer.from(badSignature).indexOf(Buffer.from(signature)) + 20]! ^= 0x01;
  const garbage = '80e2910004deadbeef00';
  const orphan = storeData(transferPermissionMessage(alpha, beta, { eid, counterValue: 3 }));

  const trLength = transferRequestLength(permission, chip, alpha, beta);
  const load = commandExchange(permission, trLength);
  const replay = commandExchange(replayed, 0);
  const spoiled = commandExchange(badSignature, 0);
  let transferRequest: Uint8Array = new Uint8Array();
  let refusals: { replay: Uint8Array; badSignature: Uint8Array } | undefined;

  it('loads the permission over several STORE DATA blocks and fetches the TransferRequest with GET RESPONSE', () => {
    assert.ok(permission.length > 255 && storeData(permission).length >= 3, 'the permission needs 3+ blocks');
    assert.ok(trLength > 512, 'the TransferRequest needs two or more GET RESPONSEs');
    const apdus = [SELECT_ISD_R, ...load.apdus, ...replay.apdus, ...spoiled.apdus, garbage, orphan[0]!];
    const { lines, stderr } = chipApdu(state, apdus);

    assert.equal(lines[0], '9000', 'SELECT ISD-R');
    let at = 1;
    const take = (n: number) => {
      at += n;
      return lines.slice(at - n, at);
    };
    transferRequest = assembleAnswer(take(load.apdus.length), load.sws);
    assert.equal(transferRequest.length, trLength);
    refusals = {
      replay: assembleAnswer(
        take(replay.apdus.length),
        replay.sws.map(() => '9000'),
      ),
      badSignature: assembleAnswer(
        take(spoiled.apdus.length),
        spoiled.sws.map(() => '9000'),
      ),
    };
    assert.deepEqual(take(2), ['6a80', '9000'], 'garbage: 6A80; a first block: 9000');
    assert.match(stderr, /STORE DATA chain is incomplete.*not kept between invocations/);

    // The new SM's view: chip-signed, carrying the permission byte for byte, asking for beta.
    const request = decodeTransferRequest(transferRequest);
    assert.ok(ecdsaVerify(chipKey, request.dataRaw, request.signature));
    assert.deepEqual(request.data.permission.raw, decodeTransferPermissionMessage(permission).permission.raw);
    assert.equal(request.data.newSmId, beta.smId);
    assert.deepEqual(request.chipCertificate, chip.chipCertificate);
  });

  it('the state file holds the pending transfer; chip info shows it without secrets', () => {
    const r = handover(['chip', 'info', '--state', state]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(json(r.lines[0]), {
      eid,
      curve: 'p256',
      assignedSmId: alpha.smId,
      counter: 1,
      pendingPermissionId: hex(permissionId),
      pendingNewSmId: beta.smId,
      profiles: [],
    });
    assert.doesNotMatch(r.stdout, /PRIVATE|otSk|sEnc/);
  });

  it('refusals read with "handover decode": a replayed counter, a flipped signature bit', () => {
    assert.ok(refusals);
    assert.deepEqual(decodedChipResult(refusals.replay), {
      eid,
      assignedSmId: alpha.smId,
      outcome: 'replay',
      permissionId: hex(decodeTransferPermissionMessage(replayed).permission.data.permissionId),
    });
    const bad = decodedChipResult(refusals.badSignature);
    assert.equal(bad.outcome, 'badSignature');
    assert.equal(bad.assignedSmId, alpha.smId);
  });

  it('executes the HandoverCommand the test signs as the new SM; the receipt verifies; commits', () => {
    const answer = answerTransferRequest(beta, transferRequest);
    const exchange = commandExchange(answer.command, handoverResultLength(permissionId, eid, alpha, beta));
    // A new invocation is a new card: the block 01 left over from the last one is out of sequence.
    const { lines } = chipApdu(state, [orphan[1]!, ...exchange.apdus, ...exchange.apdus]);
    assert.equal(lines[0], '6a86', 'STORE DATA chaining is not kept between invocations');
    const half = exchange.apdus.length;
    const handoverResult = assembleAnswer(lines.slice(1, 1 + half), exchange.sws);
    const result = decodeHandoverResult(handoverResult);
    assert.ok(ecdsaVerify(chipKey, result.dataRaw, result.signature), 'chip-signed');
    assert.ok(receiptValid(answer.keys.receiptKey, answer.commandDataRaw, result.data.receipt), 'receipt');
    assert.deepEqual(
      assembleAnswer(lines.slice(1 + half), exchange.sws),
      handoverResult,
      'the same command again gets the stored result (§6.4)',
    );

    const info = handover(['chip', 'info', '--state', state]);
    assert.equal(info.status, 0, info.stderr);
    assert.deepEqual(json(info.lines[0]), {
      eid,
      curve: 'p256',
      assignedSmId: beta.smId,
      counter: 0,
      keysetVersion: 1,
      profiles: [],
    });
  });
});

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

function openssl(...args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
}

describe('a chip from an openssl-made CI and EUM (chip create with explicit files)', {
  skip: hasOpenssl ? false : 'the openssl CLI is not installed',
}, () => {
  it('chip create --eum-cert --eum-key --ci-cert --sm-cert; the chip completes a transfer', () => {
    const dir = mkdtempSync(join(tmp, 'openssl-'));
    const f = (name: string) => join(dir, name);
    writeFileSync(
      f('ci.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        'x509_extensions = ci_ext',
        '[dn]',
        'CN = OpenSSL Test CI',
        'O = OpenSSL Test',
        '[ci_ext]',
        'basicConstraints = critical, CA:true',
        'keyUsage = critical, keyCertSign',
        'certificatePolicies = critical, 2.23.146.1.2.1.0',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );
    // The EUM's SGP.22 name constraint (O, EID prefix as serialNumber), written by openssl.
    writeFileSync(
      f('eum.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'O = OpenSSL EUM',
        'CN = OpenSSL EUM',
        '[eum_ext]',
        'basicConstraints = critical, CA:true, pathlen:0',
        'keyUsage = critical, keyCertSign',
        'certificatePolicies = critical, 2.23.146.1.2.1.2',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        'nameConstraints = critical, permitted;dirName:eum_nc',
        '[eum_nc]',
        'O = OpenSSL EUM',
        'serialNumber = 89049032',
        '',
      ].join('\n'),
    );
    // SEC1 keys (with EC PARAMETERS), as "openssl ecparam -genkey" writes them.
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-out', f('ci.key'));
    openssl(
      'req',
      '-x509',
      '-new',
      '-key',
      f('ci.key'),
      '-config',
      f('ci.cnf'),
      '-days',
      '3650',
      '-sha256',
      '-out',
      f('ci.pem'),
    );
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-out', f('eum.key'));
    openssl('req', '-new', '-key', f('eum.key'), '-config', f('eum.cnf'), '-out', f('eum.csr'));
    openssl(
      'x509',
      '-req',
      '-in',
      f('eum.csr'),
      '-CA',
      f('ci.pem'),
      '-CAkey',
      f('ci.key'),
      '-set_serial',
      '77',
      '-days',
      '3000',
      '-sha256',
      '-extfile',
      f('eum.cnf'),
      '-extensions',
      'eum_ext',
      '-out',
      f('eum.pem'),
    );
    assert.match(readFileSync(f('eum.key'), 'utf8'), /BEGIN EC PRIVATE KEY/);

    const sms: TestSm[] = ['sm-alpha.example', 'sm-beta.example'].map((smId) => {
      const r = handover([
        'pki',
        'issue',
        '--role',
        'sm',
        '--issuer-cert',
        f('ci.pem'),
        '--issuer-key',
        f('ci.key'),
        '--curve',
        'p256',
        '--sm-id',
        smId,
        '--out',
        f(smId),
      ]);
      assert.equal(r.status, 0, r.stderr);
      return {
        smId,
        certificate: loadCertificates(readFileSync(f(`${smId}.pem`)))[0]!,
        privateKey: loadPrivateKeyPem(readFileSync(f(`${smId}.key`), 'utf8')),
      };
    });
    const [alpha, beta] = sms as [TestSm, TestSm];

    const eid = makeEid('890490320000000000000000000555');
    const state = f('chip.json');
    const created = handover([
      'chip',
      'create',
      '--eum-cert',
      f('eum.pem'),
      '--eum-key',
      f('eum.key'),
      '--ci-cert',
      f('ci.pem'),
      '--sm-cert',
      f('sm-alpha.example.pem'),
      '--sm',
      alpha.smId,
      '--eid',
      eid,
      '--state',
      state,
    ]);
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual(json(created.lines[0]), {
      state,
      eid,
      curve: 'p256',
      assignedSmId: alpha.smId,
      counter: 0,
      profiles: [],
    });
    const chipCert = parseCertificate(chipCertificatesOf(state).chipCertificate);
    assert.equal(chipCert.issuer.organization, 'OpenSSL EUM');

    const t = transferByApdus(state, alpha, beta, { eid, counterValue: 1 });
    assert.ok(t.transferRequest.length > 256);
    const s = new FileStateStore(state).load();
    assert.deepEqual([s.assignment.smId, s.assignment.counter, s.pending], [beta.smId, 0, undefined]);
  });
});

describe('chip create with the GSMA SGP.26 test eUICC identity', () => {
  it('chip info shows its EID; the whole SGP.26 chain validates under the GSMA Test CI given as --ci-cert', () => {
    const pki = createDevPki({ curve: 'p256', dir: join(tmp, 'pki-sgp26') });
    const state = join(tmp, 'sgp26.json');
    const created = handover([
      'chip',
      'create',
      '--chip-cert',
      `${SGP26}/bc-java/CERT_EUICC_ECDSA_NIST.pem`,
      '--chip-key',
      `${SGP26}/euicc-rsp/euicc-key.pem`,
      '--eum-cert',
      `${SGP26}/bc-java/CERT_EUM_ECDSA_NIST.pem`,
      '--ci-cert',
      join(pki.dir, 'ci.pem'),
      '--ci-cert',
      `${SGP26}/bc-java/CERT_CI_ECDSA_NIST.pem`,
      '--sm-cert',
      join(pki.dir, 'sm-sm-alpha.example.pem'),
      '--sm',
      'sm-alpha.example',
      '--state',
      state,
    ]);
    assert.equal(created.status, 0, created.stderr);
    const info = handover(['chip', 'info', '--state', state]);
    assert.equal(info.status, 0, info.stderr);
    assert.deepEqual(json(info.lines[0]), {
      eid: SGP26_EID,
      curve: 'p256',
      assignedSmId: 'sm-alpha.example',
      counter: 0,
      profiles: [],
    });
    assert.equal(new FileStateStore(state).load().ciCertificates.length, 2);
  });
});
