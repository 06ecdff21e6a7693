/**
 * Test helper for the chip debugging tools: runs `handover …` as a child process (from the repo
 * root, as a user would), and frames commands into APDUs as hex by hand, as a card reader does
 * (PROTOCOL.md §5), independently of src/device/apdu-client.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  decodeHandoverResult,
  encodeHandoverResult,
  encodeHandoverResultData,
} from '../../src/protocol/asn1/handover.ts';
import { decodeTransferPermissionMessage } from '../../src/protocol/asn1/permission.ts';
import {
  decodeTransferRequest,
  encodeTransferRequest,
  encodeTransferRequestData,
} from '../../src/protocol/asn1/request.ts';
import { ecdsaVerify } from '../../src/protocol/crypto/ecdsa.ts';
import { publicKeyFromPoint } from '../../src/protocol/crypto/keys.ts';
import { receiptValid } from '../../src/protocol/handover-keys.ts';
import { loadCertificates } from '../../src/protocol/pki/certificate.ts';
import { answerTransferRequest, type TestSm, transferPermissionMessage } from './sm-messages.ts';

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout split into lines, empty lines dropped. */
  readonly lines: readonly string[];
}

/** `handover ARGS…` with optional stdin (then stdin is a pipe, not a terminal). */
export function handover(args: readonly string[], input?: string): CliRun {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    ...(input !== undefined && { input }),
  });
  return {
    status: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    lines: r.stdout.split('\n').filter((l) => l.length > 0),
  };
}

/** `handover chip apdu --state FILE APDU…`: one response line per APDU, exit 0 expected. */
export function chipApdu(
  state: string,
  apdus: readonly string[],
): { lines: readonly string[]; stderr: string } {
  const r = handover(['chip', 'apdu', '--state', state, ...apdus]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.lines.length, apdus.length, `one response line per APDU, got:\n${r.stdout}`);
  return { lines: r.lines, stderr: r.stderr };
}

/** A JSON line → object (for `chip info`, `decode`, shell output). */
export function json(line: string | undefined): Record<string, unknown> {
  assert.ok(line !== undefined, 'a JSON line was expected');
  return JSON.parse(line) as Record<string, unknown>;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

export const SELECT_ISD_R = '00a4040010a0000005591010ffffffff8900000100';

/** STORE DATA blocks of ≤ 255 bytes: P1 11 then 91 on the last (with Le 00), P2 = block number. */
export function storeData(der: Uint8Array): string[] {
  const blocks: string[] = [];
  const count = Math.ceil(der.length / 255);
  for (let i = 0; i < count; i++) {
    const block = der.subarray(i * 255, (i + 1) * 255);
    const last = i === count - 1;
    blocks.push(`80e2${last ? '91' : '11'}${hex2(i)}${hex2(block.length)}${hex(block)}${last ? '00' : ''}`);
  }
  return blocks;
}

/**
 * For an answer of `length` bytes: the GET RESPONSE APDUs a reader sends after the first 256
 * bytes (Le = the xx of the previous 61xx), and the status word each response line ends with,
 * starting with the response to the last STORE DATA block.
 */
export function answerExchange(length: number): { getResponses: string[]; sws: string[] } {
  const getResponses: string[] = [];
  const sws: string[] = [];
  let remaining = Math.max(0, length - 256);
  const swFor = (rest: number) => (rest === 0 ? '9000' : `61${hex2(rest >= 256 ? 0 : rest)}`);
  sws.push(swFor(remaining));
  while (remaining > 0) {
    getResponses.push(`00c00000${hex2(remaining >= 256 ? 0 : remaining)}`);
    remaining -= Math.min(remaining, 256);
    sws.push(swFor(remaining));
  }
  return { getResponses, sws };
}

/** A response line → its data and status word (hex). */
export function splitResponse(line: string): { data: string; sw: string } {
  assert.match(line, /^(?:[0-9a-f]{2})*[0-9a-f]{4}$/, `a response line in lower-case hex, got ${line}`);
  return { data: line.slice(0, -4), sw: line.slice(-4) };
}

/** The answer carried by consecutive response lines, checking each status word. */
export function assembleAnswer(lines: readonly string[], sws: readonly string[]): Uint8Array {
  assert.deepEqual(
    lines.map((l) => splitResponse(l).sw),
    sws,
    'status words: 61xx while more remains, 9000 on the last part',
  );
  return fromHex(lines.map((l) => splitResponse(l).data).join(''));
}

/** Whole command → APDUs (STORE DATA blocks and GET RESPONSEs) and the status words expected. */
export function commandExchange(der: Uint8Array, answerLength: number): { apdus: string[]; sws: string[] } {
  const blocks = storeData(der);
  const { getResponses, sws } = answerExchange(answerLength);
  return { apdus: [...blocks, ...getResponses], sws: [...blocks.slice(1).map(() => '9000'), ...sws] };
}

/**
 * The size of the chip's TransferRequest for a permission message (PROTOCOL.md §5.2): every
 * field has a fixed size except the ones the test knows (the permission as sent, the new SM id
 * and the three certificates), so a reader that frames by hand knows how many parts to fetch.
 */
export function transferRequestLength(
  permissionMessage: Uint8Array,
  chip: { chipCertificate: Uint8Array; eumCertificate: Uint8Array },
  current: TestSm,
  next: TestSm,
): number {
  const m = decodeTransferPermissionMessage(permissionMessage);
  const dataRaw = encodeTransferRequestData({
    permission: m.permission,
    newSmId: next.smId,
    chipChallenge: new Uint8Array(16),
    otPkChip: new Uint8Array(65),
  });
  return encodeTransferRequest(dataRaw, new Uint8Array(64), {
    chipCertificate: chip.chipCertificate,
    eumCertificate: chip.eumCertificate,
    currentSmCertificate: current.certificate.der,
  }).length;
}

/** The chip's certificates as its state file holds them (base64 DER). */
export function chipCertificatesOf(statePath: string): {
  chipCertificate: Uint8Array;
  eumCertificate: Uint8Array;
} {
  const s = JSON.parse(readFileSync(statePath, 'utf8')) as {
    chipCertificate: string;
    eumCertificate: string;
  };
  return {
    chipCertificate: new Uint8Array(Buffer.from(s.chipCertificate, 'base64')),
    eumCertificate: new Uint8Array(Buffer.from(s.eumCertificate, 'base64')),
  };
}

/** The size of the HandoverResult (PROTOCOL.md §5.4): all of it is known to the new SM but the receipt and signature values. */
export function handoverResultLength(
  permissionId: Uint8Array,
  eid: string,
  current: TestSm,
  next: TestSm,
): number {
  const dataRaw = encodeHandoverResultData({
    permissionId,
    eid,
    previousSmId: current.smId,
    newSmId: next.smId,
    receipt: new Uint8Array(16),
  });
  return encodeHandoverResult(dataRaw, new Uint8Array(64)).length;
}

export interface ApduTransfer {
  readonly permissionMessage: Uint8Array;
  readonly transferRequest: Uint8Array;
  readonly handoverCommand: Uint8Array;
  readonly handoverResult: Uint8Array;
}

/**
 * A complete transfer (PROTOCOL.md §6.2-6.4) through two `chip apdu` invocations: the permission
 * (STORE DATA blocks + GET RESPONSE for the TransferRequest), then the HandoverCommand the test
 * computes as the new SM would (ECDH + KDF, signed); checks the chip's signatures and the receipt.
 */
export function transferByApdus(
  state: string,
  current: TestSm,
  next: TestSm,
  f: { eid: string; counterValue: number },
): ApduTransfer {
  const chip = chipCertificatesOf(state);
  const [chipCert] = loadCertificates(chip.chipCertificate);
  const chipKey = publicKeyFromPoint(chipCert!.curve!, chipCert!.publicPoint);

  const permissionMessage = transferPermissionMessage(current, next, f);
  const first = commandExchange(
    permissionMessage,
    transferRequestLength(permissionMessage, chip, current, next),
  );
  const transferRequest = assembleAnswer(
    chipApdu(state, [SELECT_ISD_R, ...first.apdus]).lines.slice(1),
    first.sws,
  );
  const request = decodeTransferRequest(transferRequest);
  assert.ok(ecdsaVerify(chipKey, request.dataRaw, request.signature), 'the TransferRequest is chip-signed');
  assert.deepEqual(
    request.data.permission.raw,
    decodeTransferPermissionMessage(permissionMessage).permission.raw,
  );

  const answer = answerTransferRequest(next, transferRequest);
  const second = commandExchange(
    answer.command,
    handoverResultLength(answer.permissionId, f.eid, current, next),
  );
  const handoverResult = assembleAnswer(chipApdu(state, second.apdus).lines, second.sws);
  const result = decodeHandoverResult(handoverResult);
  assert.ok(ecdsaVerify(chipKey, result.dataRaw, result.signature), 'the HandoverResult is chip-signed');
  assert.ok(receiptValid(answer.keys.receiptKey, answer.commandDataRaw, result.data.receipt), 'receipt');
  assert.deepEqual(
    { previousSmId: result.data.previousSmId, newSmId: result.data.newSmId, eid: result.data.eid },
    { previousSmId: current.smId, newSmId: next.smId, eid: f.eid },
  );
  return { permissionMessage, transferRequest, handoverCommand: answer.command, handoverResult };
}
