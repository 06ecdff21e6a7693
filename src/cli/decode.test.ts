/**
 * `handover decode` as a function (decode.ts): every message of PROTOCOL.md §5 gives
 * `{ type, fields }` with the spec's names, each signature with the exact bytes it covers,
 * each certificate summarised; malformed input fails with a MalformedMessage naming the field.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { sampleArb } from '../../test/support/arbitraries.ts';
import { decodeMessage } from '../protocol/asn1/decode-any.ts';
import {
  encodeHandoverCommand,
  encodeHandoverCommandData,
  encodeHandoverResult,
  encodeHandoverResultData,
  encodeKeyDerivationInfo,
} from '../protocol/asn1/handover.ts';
import { encodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import {
  encodeTransferPermission,
  encodeTransferPermissionData,
  encodeTransferPermissionMessage,
  readTransferPermission,
  type TransferPermissionData,
} from '../protocol/asn1/permission.ts';
import {
  encodeConfirmProfileSwitch,
  encodeConfirmProfileSwitchData,
  encodeProfileRollback,
} from '../protocol/asn1/profile.ts';
import { encodeTransferRequest, encodeTransferRequestData } from '../protocol/asn1/request.ts';
import {
  encodeCancelPermission,
  encodeCancelPermissionData,
  encodeChipResult,
  encodeChipResultData,
  OUTCOMES,
  type Outcome,
} from '../protocol/asn1/results.ts';
import { ecdsaSign, ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { generateKeyPair, publicKeyFromPoint } from '../protocol/crypto/keys.ts';
import { readSingle } from '../protocol/der/reader.ts';
import { makeEid } from '../protocol/eid.ts';
import { MalformedMessage } from '../protocol/errors.ts';
import { issueChip, issueCi, issueEum, issueSm } from '../protocol/pki/issue.ts';
import { type DecodedMessage, decodeToJson, hexBytes, inputBytes, type Json } from './decode.ts';

/** PROTOCOL.md §5, field names in order; a trailing '?' marks OPTIONAL. */
const SPEC_FIELDS: Record<Exclude<DecodedMessage['type'], 'Certificate'>, readonly string[]> = {
  TransferPermissionData: [
    'version',
    'permissionId',
    'eid',
    'currentSmId',
    'newSmId',
    'newSmAddress',
    'counterValue',
    'notAfter',
    'activationCodeHash?',
    'profileSwitch?',
  ],
  TransferPermission: ['data', 'currentSmSignature'],
  TransferPermissionMessage: ['permission', 'currentSmCertificate', 'newSmCertificate'],
  TransferRequestData: ['permission', 'newSmId', 'chipChallenge', 'otPkChip'],
  TransferRequest: ['data', 'chipSignature', 'chipCertificate', 'eumCertificate', 'currentSmCertificate'],
  HandoverCommandData: ['permissionId', 'eid', 'newSmId', 'chipChallenge', 'otPkSm', 'keysetVersion'],
  HandoverCommand: ['data', 'newSmSignature'],
  HandoverResultData: ['permissionId', 'eid', 'previousSmId', 'newSmId', 'receipt'],
  HandoverResult: ['data', 'chipSignature'],
  CancelPermissionData: ['permissionId', 'eid', 'currentSmId', 'counterValue'],
  CancelPermission: ['data', 'currentSmSignature'],
  ChipResultData: ['eid', 'permissionId?', 'assignedSmId', 'outcome'],
  ChipResult: ['data', 'chipSignature'],
  KeyDerivationInfo: ['permissionId', 'eid', 'previousSmId', 'newSmId', 'keysetVersion'],
  GetChipInfo: [],
  ChipInfo: ['eid', 'assignedSmId', 'counter', 'pendingPermissionId?', 'chipCertificate', 'eumCertificate'],
  ProfileSwitch: ['disableIccid', 'enableIccid', 'rollbackOnFailure'],
  ConfirmProfileSwitchData: ['eid', 'smId', 'counterValue'],
  ConfirmProfileSwitch: ['data', 'smSignature'],
  ProfileRollback: [],
};
const MESSAGES_TYPES_SORTED = Object.keys(SPEC_FIELDS)
  .filter((t) => t !== 'ProfileSwitch')
  .sort();

const SIGNATURE_FIELDS = new Set(['currentSmSignature', 'chipSignature', 'newSmSignature', 'smSignature']);
const CERTIFICATE_FIELDS = new Set([
  'currentSmCertificate',
  'newSmCertificate',
  'chipCertificate',
  'eumCertificate',
]);

const isObject = (v: Json | undefined): v is { readonly [key: string]: Json } =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Walks a decoded message: every `{ type, fields }` has the spec's fields in the spec's order,
 * every signature is `{ signature, signedBytes }` in hex, every certificate a summary or an error.
 * Returns the signatures found, for further checks.
 */
function checkShape(node: Json, path = 'message'): { signature: string; signedBytes: string }[] {
  assert.ok(isObject(node), `${path} is an object`);
  const type = node.type as Exclude<DecodedMessage['type'], 'Certificate'>;
  assert.ok(type in SPEC_FIELDS, `${path}: unknown type ${String(type)}`);
  assert.deepEqual(Object.keys(node), ['type', 'fields']);
  const fields = node.fields;
  assert.ok(isObject(fields));
  const spec = SPEC_FIELDS[type];
  const present = spec.map((f) => f.replace('?', '')).filter((f) => f in fields);
  assert.deepEqual(Object.keys(fields), present, `${path} (${type}): fields in spec order`);
  for (const f of spec) if (!f.endsWith('?')) assert.ok(f in fields, `${path}.${f} is mandatory`);
  const found: { signature: string; signedBytes: string }[] = [];
  for (const [name, value] of Object.entries(fields)) {
    const where = `${path}.${name}`;
    if (SIGNATURE_FIELDS.has(name)) {
      assert.ok(isObject(value));
      assert.deepEqual(Object.keys(value), ['signature', 'signedBytes'], where);
      assert.match(String(value.signature), /^[0-9a-f]{128}$/, where);
      assert.match(String(value.signedBytes), /^([0-9a-f]{2})+$/, where);
      found.push({ signature: String(value.signature), signedBytes: String(value.signedBytes) });
    } else if (CERTIFICATE_FIELDS.has(name)) {
      assert.ok(isObject(value));
      if ('error' in value) {
        assert.ok(isObject(value.error) && value.error.code === 'CertificateInvalid', where);
      } else {
        for (const k of ['subject', 'issuer', 'role', 'curve', 'notBefore', 'notAfter', 'serial']) {
          assert.ok(k in value, `${where}.${k}`);
        }
      }
    } else if (isObject(value)) {
      found.push(...checkShape(value, where));
    } else if (name === 'eid') {
      assert.match(String(value), /^\d{32}$/, where);
    } else if (['disableIccid', 'enableIccid'].includes(name)) {
      assert.match(String(value), /^\d{18,20}$/, where);
    } else if (name === 'notAfter') {
      assert.match(String(value), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, where);
    } else if (/Id$|Challenge$|^otPk|^receipt$|Hash$/.test(name) && !/SmId$|^smId$/.test(name)) {
      assert.match(String(value), /^([0-9a-f]{2})+$/, where);
    }
  }
  return found;
}

// ---- a small real PKI and real signatures, so certificates and signatures can be checked ----

const ci = issueCi({ curve: 'p256' });
const eum = issueEum({
  issuerCert: ci.certificate,
  issuerKey: ci.privateKey,
  org: 'Decode EUM',
  eidPrefix: '8900101',
});
const EID = makeEid('890010120000000000000000004242');
const chip = issueChip({ issuerCert: eum.certificate, issuerKey: eum.privateKey, eid: EID });
const smA = issueSm({ issuerCert: ci.certificate, issuerKey: ci.privateKey, smId: 'sm-a.example' });
const smB = issueSm({ issuerCert: ci.certificate, issuerKey: ci.privateKey, smId: 'sm-b.example' });

const sign = (key: KeyObject, data: Uint8Array): Uint8Array => ecdsaSign(key, data, 'plain');
const fill = (n: number, b: number): Uint8Array => new Uint8Array(n).fill(b);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const permissionData: TransferPermissionData = {
  version: 1,
  permissionId: fill(16, 0x11),
  eid: EID,
  currentSmId: 'sm-a.example',
  newSmId: 'sm-b.example',
  newSmAddress: 'https://sm-b.example/device',
  counterValue: 7,
  notAfter: new Date('2030-01-02T03:04:05Z'),
  activationCodeHash: fill(32, 0xac),
  profileSwitch: {
    disableIccid: '8988247000001234567',
    enableIccid: '89882470000076543210',
    rollbackOnFailure: true,
  },
};
const permissionDataRaw = encodeTransferPermissionData(permissionData);
const permissionRaw = encodeTransferPermission(permissionDataRaw, sign(smA.privateKey, permissionDataRaw));
const permission = readTransferPermission(readSingle(permissionRaw, 'permission'));
const requestDataRaw = encodeTransferRequestData({
  permission,
  newSmId: 'sm-b.example',
  chipChallenge: fill(16, 0xcc),
  otPkChip: generateKeyPair('p256').publicPoint,
});
const commandData = {
  permissionId: fill(16, 0x11),
  eid: EID,
  newSmId: 'sm-b.example',
  chipChallenge: fill(16, 0xcc),
  otPkSm: generateKeyPair('p256').publicPoint,
  keysetVersion: 3,
};
const commandDataRaw = encodeHandoverCommandData(commandData);
const resultData = {
  permissionId: fill(16, 0x11),
  eid: EID,
  previousSmId: 'sm-a.example',
  newSmId: 'sm-b.example',
  receipt: fill(16, 0x5e),
};
const resultDataRaw = encodeHandoverResultData(resultData);
const cancelDataRaw = encodeCancelPermissionData({
  permissionId: fill(16, 0x11),
  eid: EID,
  currentSmId: 'sm-a.example',
  counterValue: 8,
});
const chipResultDataRaw = encodeChipResultData({
  eid: EID,
  permissionId: fill(16, 0x11),
  assignedSmId: 'sm-a.example',
  outcome: 'pendingExists',
});
const confirmDataRaw = encodeConfirmProfileSwitchData({ eid: EID, smId: 'sm-b.example', counterValue: 1 });

/** One message of each of the 19 types of §5, signed by the party the spec names. */
const MESSAGES: Record<string, Uint8Array> = {
  TransferPermissionData: permissionDataRaw,
  TransferPermission: permissionRaw,
  TransferPermissionMessage: encodeTransferPermissionMessage({
    permission,
    currentSmCertificate: smA.certificate.der,
    newSmCertificate: smB.certificate.der,
  }),
  TransferRequestData: requestDataRaw,
  TransferRequest: encodeTransferRequest(requestDataRaw, sign(chip.privateKey, requestDataRaw), {
    chipCertificate: chip.certificate.der,
    eumCertificate: eum.certificate.der,
    currentSmCertificate: smA.certificate.der,
  }),
  HandoverCommandData: commandDataRaw,
  HandoverCommand: encodeHandoverCommand(commandDataRaw, sign(smB.privateKey, commandDataRaw)),
  HandoverResultData: resultDataRaw,
  HandoverResult: encodeHandoverResult(resultDataRaw, sign(chip.privateKey, resultDataRaw)),
  CancelPermissionData: cancelDataRaw,
  CancelPermission: encodeCancelPermission(cancelDataRaw, sign(smA.privateKey, cancelDataRaw)),
  ChipResultData: chipResultDataRaw,
  ChipResult: encodeChipResult(chipResultDataRaw, sign(chip.privateKey, chipResultDataRaw)),
  KeyDerivationInfo: encodeKeyDerivationInfo({
    permissionId: fill(16, 0x11),
    eid: EID,
    previousSmId: 'sm-a.example',
    newSmId: 'sm-b.example',
    keysetVersion: 3,
  }),
  GetChipInfo: encodeGetChipInfo(),
  ChipInfo: encodeChipInfo({
    eid: EID,
    assignedSmId: 'sm-a.example',
    counter: 7,
    pendingPermissionId: fill(16, 0x11),
    chipCertificate: chip.certificate.der,
    eumCertificate: eum.certificate.der,
  }),
  ConfirmProfileSwitchData: confirmDataRaw,
  ConfirmProfileSwitch: encodeConfirmProfileSwitch(confirmDataRaw, sign(smB.privateKey, confirmDataRaw)),
  ProfileRollback: encodeProfileRollback(),
};

const fieldsOf = (m: Json | undefined): { readonly [key: string]: Json } => {
  assert.ok(isObject(m) && isObject(m.fields), 'a decoded message');
  return m.fields;
};

describe('decodeToJson: every message of PROTOCOL.md §5', () => {
  it('has one sample of each of the 19 types', () => {
    assert.deepEqual(Object.keys(MESSAGES).sort(), [...MESSAGES_TYPES_SORTED]);
  });

  for (const [type, bytes] of Object.entries(MESSAGES)) {
    it(`${type}: its type name, the spec's field names in order, JSON-clean`, () => {
      const decoded = decodeToJson(bytes);
      assert.equal(decoded.type, type);
      checkShape(decoded);
      assert.deepEqual(JSON.parse(JSON.stringify(decoded)), decoded);
    });
  }

  it('TransferPermissionData: every field in its JSON form (hex, 32-digit EID, ISO time, ICCID digits)', () => {
    assert.deepEqual(decodeToJson(permissionDataRaw), {
      type: 'TransferPermissionData',
      fields: {
        version: 1,
        permissionId: '11'.repeat(16),
        eid: EID,
        currentSmId: 'sm-a.example',
        newSmId: 'sm-b.example',
        newSmAddress: 'https://sm-b.example/device',
        counterValue: 7,
        notAfter: '2030-01-02T03:04:05.000Z',
        activationCodeHash: 'ac'.repeat(32),
        profileSwitch: {
          type: 'ProfileSwitch',
          fields: {
            disableIccid: '8988247000001234567',
            enableIccid: '89882470000076543210',
            rollbackOnFailure: true,
          },
        },
      },
    });
  });

  it('TransferRequest: the permission nested as TransferPermission, each signature over its own …Data', () => {
    const decoded = decodeToJson(MESSAGES.TransferRequest!);
    const data = fieldsOf(decoded).data;
    assert.ok(isObject(data) && data.type === 'TransferRequestData');
    const perm = fieldsOf(data).permission;
    assert.ok(isObject(perm) && perm.type === 'TransferPermission');
    const permData = fieldsOf(perm).data;
    assert.ok(isObject(permData) && permData.type === 'TransferPermissionData');
    assert.equal(fieldsOf(permData).counterValue, 7);
    assert.deepEqual(fieldsOf(perm).currentSmSignature, {
      signature: hex(permission.signature),
      signedBytes: hex(permissionDataRaw),
    });
    const chipSig = fieldsOf(decoded).chipSignature;
    assert.ok(isObject(chipSig));
    assert.equal(chipSig.signedBytes, hex(requestDataRaw));
    // The signatures verify over exactly the bytes shown.
    const verifies = (key: KeyObject, s: Json | undefined) =>
      isObject(s) &&
      ecdsaVerify(key, hexBytes(String(s.signedBytes), 't'), hexBytes(String(s.signature), 't'));
    assert.ok(verifies(publicKeyFromPoint('p256', chip.certificate.publicPoint), chipSig));
    assert.ok(
      verifies(publicKeyFromPoint('p256', smA.certificate.publicPoint), fieldsOf(perm).currentSmSignature),
    );
  });

  it('certificates are summarised: subject, issuer, role, curve, EID or SM id, dates, serial', () => {
    const f = fieldsOf(decodeToJson(MESSAGES.TransferRequest!));
    assert.deepEqual(f.chipCertificate, {
      subject: `O=Decode EUM, serialNumber=${EID}, CN=eUICC`,
      issuer: 'O=Decode EUM, CN=EUM',
      role: 'chip',
      curve: 'p256',
      eid: EID,
      notBefore: chip.certificate.notBefore.toISOString(),
      notAfter: chip.certificate.notAfter.toISOString(),
      serial: chip.certificate.serial,
    });
    assert.equal((f.eumCertificate as { role?: string }).role, 'eum');
    assert.deepEqual(
      {
        role: (f.currentSmCertificate as { role?: string }).role,
        smId: (f.currentSmCertificate as { smId?: string }).smId,
      },
      { role: 'sm', smId: 'sm-a.example' },
    );
  });

  it('a certificate that does not parse becomes { error } and the rest still decodes', () => {
    const bogus = Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01);
    const bytes = encodeTransferPermissionMessage({
      permission,
      currentSmCertificate: bogus,
      newSmCertificate: smB.certificate.der,
    });
    const f = fieldsOf(decodeToJson(bytes));
    const error = (f.currentSmCertificate as { error?: { code?: string; reason?: string } }).error;
    assert.equal(error?.code, 'CertificateInvalid');
    assert.equal(error?.reason, 'malformed');
    assert.equal((f.newSmCertificate as { smId?: string }).smId, 'sm-b.example');
  });

  it('a ChipResult of every outcome decodes to the outcome name', () => {
    for (const outcome of Object.keys(OUTCOMES) as Outcome[]) {
      for (const permissionId of [undefined, fill(16, 0x22)]) {
        const dataRaw = encodeChipResultData({
          eid: EID,
          ...(permissionId && { permissionId }),
          assignedSmId: 'sm-a.example',
          outcome,
        });
        const decoded = decodeToJson(encodeChipResult(dataRaw, sign(chip.privateKey, dataRaw)));
        checkShape(decoded);
        const data = fieldsOf(decoded).data;
        assert.deepEqual(data, {
          type: 'ChipResultData',
          fields: {
            eid: EID,
            ...(permissionId && { permissionId: '22'.repeat(16) }),
            assignedSmId: 'sm-a.example',
            outcome,
          },
        });
      }
    }
  });

  it('any generated message (fast-check): the right type, spec field names, signedBytes = dataRaw', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(sampleArb, (s) => {
        const decoded = decodeToJson(s.bytes);
        seen.add(decoded.type);
        assert.equal(decoded.type, s.type);
        const signatures = checkShape(decoded);
        // Compare with the codec's own view: each signature covers the dataRaw it kept.
        const expected: { signature: string; signedBytes: string }[] = [];
        const collect = (v: unknown): void => {
          if (!v || typeof v !== 'object' || v instanceof Uint8Array || v instanceof Date) return;
          const o = v as {
            dataRaw?: Uint8Array;
            signature?: Uint8Array;
            data?: unknown;
            permission?: unknown;
          };
          if (o.dataRaw && o.signature)
            expected.push({ signature: hex(o.signature), signedBytes: hex(o.dataRaw) });
          collect(o.data);
          collect(o.permission);
        };
        collect(decodeMessage(s.bytes).value);
        assert.deepEqual(
          [...signatures].sort((a, b) => a.signedBytes.localeCompare(b.signedBytes)),
          [...expected].sort((a, b) => a.signedBytes.localeCompare(b.signedBytes)),
        );
      }),
      { numRuns: 1000 },
    );
    assert.deepEqual([...seen].sort(), [...MESSAGES_TYPES_SORTED]);
  });
});

describe('decodeToJson: malformed input names the field', () => {
  const cases: [string, Uint8Array, RegExp, RegExp][] = [
    ['an unknown tag ([PRIVATE 19])', Uint8Array.of(0xf3, 0x00), /^message$/, /unknown message tag/],
    ['a trailing byte', Uint8Array.of(...MESSAGES.ChipResult!, 0x00), /^message$/, /trailing/],
    ['a truncated message', MESSAGES.ChipResult!.subarray(0, 40), /^message$/, /past the end/],
    ['an empty input', new Uint8Array(0), /^message$/, /no bytes/],
  ];
  for (const [what, bytes, field, message] of cases) {
    it(what, () => {
      assert.throws(
        () => decodeToJson(bytes),
        (e: unknown) => e instanceof MalformedMessage && field.test(e.field) && message.test(e.message),
      );
    });
  }

  it('a field inside a message: a wrong tag where chipChallenge belongs', () => {
    const bad = Uint8Array.from(commandDataRaw);
    // The [3] chipChallenge tag (83) becomes [9] (89): the codec names the field it expected.
    const at = hex(bad).indexOf(`8310${'cc'.repeat(16)}`) / 2;
    assert.ok(at > 0);
    bad[at] = 0x89;
    assert.throws(
      () => decodeToJson(bad),
      (e: unknown) => e instanceof MalformedMessage && e.field === 'HandoverCommandData.chipChallenge',
    );
  });
});

describe('inputBytes: DER, hex text or base64 text', () => {
  const der = MESSAGES.ChipResult!;
  it('raw DER is taken as is', () => assert.deepEqual(inputBytes(der), der));
  it('hex, any case, with white space and line breaks', () => {
    const text = hex(der)
      .toUpperCase()
      .replace(/(.{32})/g, '$1\n  ');
    assert.deepEqual(inputBytes(Buffer.from(text)), der);
  });
  it('base64, with line breaks, and the URL-safe alphabet', () => {
    const b64 = Buffer.from(der).toString('base64');
    assert.deepEqual(inputBytes(Buffer.from(`${b64.replace(/(.{64})/g, '$1\n')}\n`)), der);
    assert.deepEqual(inputBytes(Buffer.from(Buffer.from(der).toString('base64url'))), der);
  });
  it('an odd number of hex digits is malformed input', () => {
    assert.throws(
      () => inputBytes(Buffer.from('e00')),
      (e: unknown) => e instanceof MalformedMessage && e.field === 'input',
    );
  });
  it('white space only is no input', () => assert.equal(inputBytes(Buffer.from(' \n')).length, 0));
  it('a byte order mark before hex or base64 text is not part of the text', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    assert.deepEqual(inputBytes(Buffer.concat([bom, Buffer.from(hex(der))])), der);
    assert.deepEqual(inputBytes(Buffer.concat([bom, Buffer.from(Buffer.from(der).toString('base64'))])), der);
  });
  it('PEM: the bytes of the block; a key is refused, never decoded', () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(chip.certificate.der)
      .toString('base64')
      .replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
    assert.deepEqual(inputBytes(Buffer.from(`subject=…\n${pem}`)), chip.certificate.der);
    const key = ci.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.throws(
      () => inputBytes(Buffer.from(key)),
      (e: unknown) => e instanceof MalformedMessage && /PRIVATE KEY is not a message/.test(e.message),
    );
  });
});

describe('decodeToJson: a certificate on its own', () => {
  it('is summarised as inside messages (type Certificate); other SEQUENCEs stay malformed', () => {
    const decoded = decodeToJson(chip.certificate.der);
    assert.equal(decoded.type, 'Certificate');
    assert.deepEqual(fieldsOf(decoded), fieldsOf(decodeToJson(MESSAGES.TransferRequest!)).chipCertificate);
    assert.throws(() => decodeToJson(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01)), MalformedMessage);
  });
});
