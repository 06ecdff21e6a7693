/**
 * `handover decode` end to end: input from --hex, a file (DER, hex or base64 text) or stdin;
 * one JSON object on stdout; exit 0 decoded, 1 malformed (JSON error on stdout), 2 no input.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeHandoverResult, encodeHandoverResultData } from '../protocol/asn1/handover.ts';
import { encodeTransferPermission, encodeTransferPermissionData } from '../protocol/asn1/permission.ts';
import { makeEid } from '../protocol/eid.ts';

const tmp = mkdtempSync(join(tmpdir(), 'handover-decode-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function decode(args: string[], input?: Uint8Array | string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'decode', ...args], {
    input,
    encoding: 'utf8',
  });
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.ok(lines.length <= 1, `at most one line on stdout, got: ${r.stdout}`);
  const json = lines[0] === undefined ? undefined : (JSON.parse(lines[0]) as Record<string, unknown>);
  return { status: r.status, json, stderr: r.stderr };
}

function errorOf(json: Record<string, unknown> | undefined): {
  code: string;
  field: string;
  message: string;
} {
  assert.ok(json && typeof json.error === 'object', `expected {"error": …}, got ${JSON.stringify(json)}`);
  return json.error as { code: string; field: string; message: string };
}

const EID = makeEid('890010120000000000000000000077');
const resultDataRaw = encodeHandoverResultData({
  permissionId: new Uint8Array(16).fill(1),
  eid: EID,
  previousSmId: 'sm-a.example',
  newSmId: 'sm-b.example',
  receipt: new Uint8Array(16).fill(2),
});
const RESULT = encodeHandoverResult(resultDataRaw, new Uint8Array(64).fill(3));
const EXPECTED_RESULT = {
  type: 'HandoverResult',
  fields: {
    data: {
      type: 'HandoverResultData',
      fields: {
        permissionId: '01'.repeat(16),
        eid: EID,
        previousSmId: 'sm-a.example',
        newSmId: 'sm-b.example',
        receipt: '02'.repeat(16),
      },
    },
    chipSignature: { signature: '03'.repeat(64), signedBytes: Buffer.from(resultDataRaw).toString('hex') },
  },
};
const hex = Buffer.from(RESULT).toString('hex');

describe('handover decode', () => {
  it('--hex', () => {
    const r = decode(['--hex', hex]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json, EXPECTED_RESULT);
  });

  it('a file of DER, of hex text and of base64 text', () => {
    const files = {
      der: RESULT,
      hex: `${hex.replace(/(.{64})/g, '$1\n')}\n`,
      b64: `${Buffer.from(RESULT).toString('base64')}\n`,
    };
    for (const [name, content] of Object.entries(files)) {
      const file = join(tmp, `result.${name}`);
      writeFileSync(file, content);
      const r = decode([file]);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      assert.deepEqual(r.json, EXPECTED_RESULT, name);
    }
  });

  it("stdin with '-' (DER and hex)", () => {
    assert.deepEqual(decode(['-'], RESULT).json, EXPECTED_RESULT);
    const r = decode(['-'], hex);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.json, EXPECTED_RESULT);
  });

  it('a TransferPermission (outer tag SEQUENCE) with its nested data', () => {
    const dataRaw = encodeTransferPermissionData({
      version: 1,
      permissionId: new Uint8Array(16).fill(9),
      eid: EID,
      currentSmId: 'sm-a.example',
      newSmId: 'sm-b.example',
      newSmAddress: 'https://sm-b.example',
      counterValue: 1,
      notAfter: new Date('2031-05-06T07:08:09Z'),
    });
    const r = decode([
      '--hex',
      Buffer.from(encodeTransferPermission(dataRaw, new Uint8Array(64))).toString('hex'),
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.json?.type, 'TransferPermission');
    const fields = r.json?.fields as { data: { type: string; fields: { notAfter: string } } };
    assert.equal(fields.data.type, 'TransferPermissionData');
    assert.equal(fields.data.fields.notAfter, '2031-05-06T07:08:09.000Z');
  });

  it('malformed input: exit 1 and a JSON error naming the field, on stdout', () => {
    const cases: [string[], Uint8Array | string | undefined, string, RegExp][] = [
      [['--hex', 'f300'], undefined, 'message', /unknown message tag F3/],
      [['--hex', `${hex}00`], undefined, 'message', /1 trailing byte/],
      [['--hex', hex.slice(0, 60)], undefined, 'message', /past the end/],
      [['-'], RESULT.subarray(0, RESULT.length - 1), 'message', /past the end/],
      [['-'], 'e00', 'input', /odd number of hex digits/],
    ];
    for (const [args, input, field, message] of cases) {
      const r = decode(args, input);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      const error = errorOf(r.json);
      assert.equal(error.code, 'MalformedMessage');
      assert.equal(error.field, field);
      assert.match(error.message, message);
    }
  });

  it('a field deep inside: the codec names it', () => {
    // HandoverResultData.receipt of 15 bytes instead of 16 (the encoder does not check sizes).
    const badData = encodeHandoverResultData({
      permissionId: new Uint8Array(16),
      eid: EID,
      previousSmId: 'sm-a.example',
      newSmId: 'sm-b.example',
      receipt: new Uint8Array(15),
    });
    const shorter = Buffer.from(encodeHandoverResult(badData, new Uint8Array(64))).toString('hex');
    const r = decode(['--hex', shorter]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(errorOf(r.json).field, 'HandoverResultData.receipt');
  });

  it('no input, an unreadable or empty file, FILE and --hex together: usage errors (exit 2)', () => {
    const empty = join(tmp, 'empty.bin');
    writeFileSync(empty, '');
    for (const [args, why] of [
      [[], /nothing to decode/],
      [[join(tmp, 'missing.der')], /cannot read .*ENOENT/],
      [[tmp], /cannot read .*EISDIR/],
      [[empty], /is empty/],
      [[empty, '--hex', hex], /either FILE or --hex/],
      [['--hex', 'zz'], /not hexadecimal/],
    ] as [string[], RegExp][]) {
      const r = decode(args, '');
      assert.equal(r.status, 2, args.join(' '));
      assert.equal(r.json, undefined, 'nothing on stdout');
      assert.match(r.stderr, why);
    }
  });
});
