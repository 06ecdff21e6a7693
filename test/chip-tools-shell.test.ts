/**
 * `handover chip shell` driven by a script piped to its stdin (no terminal: no prompt, one
 * command per line): raw APDUs with chaining across lines, `send` of whole commands (framed by
 * the shell, answer decoded), `decode`, `info`, `select`, errors that do not end the session.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createChipState } from '../src/chip/create.ts';
import { FileStateStore } from '../src/chip/file-store.ts';
import { decodeToJson } from '../src/cli/decode.ts';
import { decodeTransferPermissionMessage } from '../src/protocol/asn1/permission.ts';
import { makeEid } from '../src/protocol/eid.ts';
import { receiptValid } from '../src/protocol/handover-keys.ts';
import { createDevPki } from '../src/protocol/pki/dev-pki.ts';
import {
  answerExchange,
  assembleAnswer,
  chipCertificatesOf,
  fromHex,
  handover,
  hex,
  json,
  storeData,
  transferRequestLength,
} from './support/chip-apdus.ts';
import { answerTransferRequest, smOf, transferPermissionMessage } from './support/sm-messages.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-chip-shell-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('handover chip shell, with a script on stdin', () => {
  const pki = createDevPki({ curve: 'brainpoolP256r1', dir: join(tmp, 'pki') });
  const alpha = smOf(pki, 'sm-alpha.example');
  const beta = smOf(pki, 'sm-beta.example');
  const eid = makeEid(`${pki.manifest.eidPrefix}0000000000000000000099`);
  const state = join(tmp, 'chip.json');
  new FileStateStore(state).save(
    createChipState({
      identity: { kind: 'issue', eid, eumCertificate: pki.eum.certificate, eumKey: pki.eum.privateKey },
      ciCertificates: [pki.ci.certificate],
      smId: alpha.smId,
      smCertificate: alpha.certificate,
      profiles: [{ iccid: '89490200001234567890', operator: 'Old MNO', state: 'enabled' }],
    }),
  );
  const shell = (script: readonly string[]) =>
    handover(['chip', 'shell', '--state', state], `${script.join('\n')}\n`);

  const permission = transferPermissionMessage(alpha, beta, { eid, counterValue: 1 });
  const permissionFile = join(tmp, 'permission.der');
  writeFileSync(permissionFile, permission);
  const permissionId = decodeTransferPermissionMessage(permission).permission.data.permissionId;
  let transferRequest: Uint8Array = new Uint8Array();

  it('apdu lines share one card (chaining works across lines); send, decode, info, select; errors go on', () => {
    const blocks = storeData(permission);
    const length = transferRequestLength(permission, chipCertificatesOf(state), alpha, beta);
    const { getResponses, sws } = answerExchange(length);
    const r = shell([
      'help',
      'select',
      'info',
      '# the permission over two apdu lines, then the GET RESPONSEs on a third',
      `apdu ${blocks.slice(0, 2).join(' ')}`,
      `apdu ${blocks.slice(2).join(' ')}`,
      `apdu ${getResponses.join(' ')}`,
      '',
      `send ${permissionFile}`,
      `decode ${permissionFile}`,
      'decode 0102',
      'send ff',
      'apdu 80e2zz',
      'frobnicate',
      'info',
      'exit',
      'info',
    ]);
    assert.equal(r.status, 1, 'a command failed and stdin is not a terminal: exit 1');
    assert.equal(r.stderr, '');
    const out = [...r.lines];
    const help = out.splice(0, 7);
    assert.deepEqual(
      help.map((l) => l.trim().split(/\s+/)[0]),
      ['apdu', 'send', 'info', 'decode', 'select', 'help', 'exit'],
    );
    assert.equal(out.shift(), '9000', 'select');
    assert.deepEqual(json(out.shift()), {
      eid,
      curve: 'brainpoolP256r1',
      assignedSmId: alpha.smId,
      counter: 0,
      profiles: [{ iccid: '89490200001234567890', operator: 'Old MNO', state: 'enabled' }],
    });
    const exchange = out.splice(0, blocks.length + getResponses.length);
    transferRequest = assembleAnswer(exchange, [...blocks.slice(1).map(() => '9000'), ...sws]);
    // The same permission again, byte for byte, while pending: the stored TransferRequest (§6.2).
    assert.equal(out.shift(), JSON.stringify(decodeToJson(transferRequest)));
    assert.equal(json(out.shift()).type, 'TransferPermissionMessage');
    assert.deepEqual(json(out.shift()), {
      error: {
        code: 'MalformedMessage',
        field: 'message',
        message: 'message: content runs past the end of the input',
      },
    });
    assert.deepEqual(json(out.shift()), {
      error: { code: 'ApduError', message: 'the chip refused the command: status word 6A80' },
    });
    assert.match(out.shift() ?? '', /"code":"UsageError".*not hex: \\"z\\" at position 5/);
    assert.match(out.shift() ?? '', /"code":"UnknownShellCommand".*frobnicate/);
    const info = json(out.shift());
    assert.equal(info.pendingPermissionId, hex(permissionId));
    assert.equal(info.counter, 1);
    assert.deepEqual(out, [], 'nothing after exit');
  });

  it('send a HandoverCommand from a hex file: the HandoverResult as JSON, its receipt verifies', () => {
    const answer = answerTransferRequest(beta, transferRequest);
    const commandFile = join(tmp, 'handover-command.hex');
    writeFileSync(commandFile, `${hex(answer.command).replace(/(.{64})/g, '$1\n')}\n`);
    const r = shell([`send ${commandFile}`, 'info', 'apdu 80E2910002EE0000 00C0000000']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const result = json(r.lines[0]) as {
      type: string;
      fields: { data: { fields: { receipt: string; newSmId: string; previousSmId: string } } };
    };
    assert.equal(result.type, 'HandoverResult');
    const { receipt, newSmId, previousSmId } = result.fields.data.fields;
    assert.deepEqual([previousSmId, newSmId], [alpha.smId, beta.smId]);
    assert.ok(receiptValid(answer.keys.receiptKey, answer.commandDataRaw, fromHex(receipt)));
    const info = json(r.lines[1]);
    assert.deepEqual([info.assignedSmId, info.counter, info.pendingPermissionId], [beta.smId, 0, undefined]);
    assert.match(r.lines[2] ?? '', /^ef82[0-9a-f]{508}6100$/, 'GetChipInfo: the first 256 bytes, 61 00');
    assert.match(r.lines[3] ?? '', /^[0-9a-f]{2,512}(?:61[0-9a-f]{2}|9000)$/, 'GET RESPONSE: the next part');
  });
});
