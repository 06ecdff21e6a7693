/** fast-check generators for every message of PROTOCOL.md §5, as (type, expected value, DER bytes). */
import fc from 'fast-check';
import { isPrintable } from '../../src/protocol/asn1/fields.ts';
import {
  encodeHandoverCommand,
  encodeHandoverCommandData,
  encodeHandoverResult,
  encodeHandoverResultData,
  encodeKeyDerivationInfo,
} from '../../src/protocol/asn1/handover.ts';
import { encodeChipInfo, encodeGetChipInfo } from '../../src/protocol/asn1/info.ts';
import {
  COUNTER_MAX,
  encodeTransferPermission,
  encodeTransferPermissionData,
  encodeTransferPermissionMessage,
  type ProfileSwitch,
  readTransferPermission,
  type TransferPermissionData,
} from '../../src/protocol/asn1/permission.ts';
import {
  encodeConfirmProfileSwitch,
  encodeConfirmProfileSwitchData,
  encodeProfileRollback,
} from '../../src/protocol/asn1/profile.ts';
import { encodeTransferRequest, encodeTransferRequestData } from '../../src/protocol/asn1/request.ts';
import {
  encodeCancelPermission,
  encodeCancelPermissionData,
  encodeChipResult,
  encodeChipResultData,
  OUTCOMES,
  type Outcome,
} from '../../src/protocol/asn1/results.ts';
import { readSingle } from '../../src/protocol/der/reader.ts';
import { U } from '../../src/protocol/der/tag.ts';
import { octets, sequence } from '../../src/protocol/der/writer.ts';
import { makeEid } from '../../src/protocol/eid.ts';

export interface Sample {
  readonly type: string;
  readonly value: unknown;
  readonly bytes: Uint8Array;
}

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
export const eidArb = fc.stringMatching(/^\d{30}$/).map(makeEid);
export const smIdArb = fc
  .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
  .filter(isPrintable)
  .filter((s) => {
    const n = new TextEncoder().encode(s).length;
    return n >= 1 && n <= 128;
  });
const counterArb = fc.integer({ min: 1, max: COUNTER_MAX });
/** notAfter: whole seconds (what this SM writes) or with milliseconds (a fraction, X.690 §11.7). */
const dateArb = fc
  .tuple(
    fc.integer({ min: Date.UTC(1970, 0, 1) / 1000, max: Date.UTC(9999, 11, 31, 23, 59, 59) / 1000 }),
    fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 999 })),
  )
  .map(([s, ms]) => new Date(s * 1000 + ms));
const iccidArb = fc.stringMatching(/^\d{18,20}$/);
/** Stand-in certificates: any one DER SEQUENCE is accepted by the codec (the PKI judges it). */
const certArb = fc.uint8Array({ minLength: 0, maxLength: 80 }).map((b) => sequence(octets(U.octetString, b)));
const profileSwitchArb: fc.Arbitrary<ProfileSwitch> = fc.record({
  disableIccid: iccidArb,
  enableIccid: iccidArb,
  rollbackOnFailure: fc.boolean(),
});

export const permissionDataArb: fc.Arbitrary<TransferPermissionData> = fc.record(
  {
    version: fc.constant(1 as const),
    permissionId: bytes(16),
    eid: eidArb,
    currentSmId: smIdArb,
    newSmId: smIdArb,
    newSmAddress: fc.webUrl({ validSchemes: ['https'] }).filter((u) => u.length <= 255),
    counterValue: counterArb,
    notAfter: dateArb,
    activationCodeHash: bytes(32),
    profileSwitch: profileSwitchArb,
  },
  {
    requiredKeys: [
      'version',
      'permissionId',
      'eid',
      'currentSmId',
      'newSmId',
      'newSmAddress',
      'counterValue',
      'notAfter',
    ],
  },
);

const permissionArb = fc.tuple(permissionDataArb, bytes(64)).map(([d, sig]) => {
  const raw = encodeTransferPermission(encodeTransferPermissionData(d), sig);
  return { data: d, signature: sig, raw };
});

const outcomeArb = fc.constantFrom(...(Object.keys(OUTCOMES) as Outcome[]));

export const sampleArb: fc.Arbitrary<Sample> = fc.oneof(
  permissionDataArb.map((d) => ({
    type: 'TransferPermissionData',
    value: d,
    bytes: encodeTransferPermissionData(d),
  })),
  permissionArb.map((p) => ({
    type: 'TransferPermission',
    value: { data: p.data, signature: p.signature },
    bytes: p.raw,
  })),
  fc.tuple(permissionArb, certArb, certArb).map(([p, c1, c2]) => {
    const permission = readTransferPermission(readSingle(p.raw, 'p'));
    return {
      type: 'TransferPermissionMessage',
      value: {
        permission: { data: p.data, signature: p.signature },
        currentSmCertificate: c1,
        newSmCertificate: c2,
      },
      bytes: encodeTransferPermissionMessage({ permission, currentSmCertificate: c1, newSmCertificate: c2 }),
    };
  }),
  fc
    .tuple(permissionArb, smIdArb, bytes(16), bytes(65), bytes(64), certArb, certArb, certArb)
    .chain(([p, newSmId, chipChallenge, otPkChip, sig, c1, c2, c3]) => {
      const permission = readTransferPermission(readSingle(p.raw, 'p'));
      const dataRaw = encodeTransferRequestData({ permission, newSmId, chipChallenge, otPkChip });
      const data = { permission: { data: p.data, signature: p.signature }, newSmId, chipChallenge, otPkChip };
      return fc.constantFrom<Sample>(
        { type: 'TransferRequestData', value: data, bytes: dataRaw },
        {
          type: 'TransferRequest',
          value: { data, signature: sig, chipCertificate: c1, eumCertificate: c2, currentSmCertificate: c3 },
          bytes: encodeTransferRequest(dataRaw, sig, {
            chipCertificate: c1,
            eumCertificate: c2,
            currentSmCertificate: c3,
          }),
        },
      );
    }),
  fc
    .tuple(
      fc.record({
        permissionId: bytes(16),
        eid: eidArb,
        newSmId: smIdArb,
        chipChallenge: bytes(16),
        otPkSm: bytes(65),
        keysetVersion: fc.integer({ min: 1, max: 127 }),
      }),
      bytes(64),
    )
    .chain(([d, sig]) =>
      fc.constantFrom<Sample>(
        { type: 'HandoverCommandData', value: d, bytes: encodeHandoverCommandData(d) },
        {
          type: 'HandoverCommand',
          value: { data: d, signature: sig },
          bytes: encodeHandoverCommand(encodeHandoverCommandData(d), sig),
        },
      ),
    ),
  fc
    .tuple(
      fc.record({
        permissionId: bytes(16),
        eid: eidArb,
        previousSmId: smIdArb,
        newSmId: smIdArb,
        receipt: bytes(16),
      }),
      bytes(64),
    )
    .chain(([d, sig]) =>
      fc.constantFrom<Sample>(
        { type: 'HandoverResultData', value: d, bytes: encodeHandoverResultData(d) },
        {
          type: 'HandoverResult',
          value: { data: d, signature: sig },
          bytes: encodeHandoverResult(encodeHandoverResultData(d), sig),
        },
      ),
    ),
  fc
    .tuple(
      fc.record({ permissionId: bytes(16), eid: eidArb, currentSmId: smIdArb, counterValue: counterArb }),
      bytes(64),
    )
    .chain(([d, sig]) =>
      fc.constantFrom<Sample>(
        { type: 'CancelPermissionData', value: d, bytes: encodeCancelPermissionData(d) },
        {
          type: 'CancelPermission',
          value: { data: d, signature: sig },
          bytes: encodeCancelPermission(encodeCancelPermissionData(d), sig),
        },
      ),
    ),
  fc
    .tuple(
      fc.record(
        { eid: eidArb, permissionId: bytes(16), assignedSmId: smIdArb, outcome: outcomeArb },
        { requiredKeys: ['eid', 'assignedSmId', 'outcome'] },
      ),
      bytes(64),
    )
    .chain(([d, sig]) =>
      fc.constantFrom<Sample>(
        { type: 'ChipResultData', value: d, bytes: encodeChipResultData(d) },
        {
          type: 'ChipResult',
          value: { data: d, signature: sig },
          bytes: encodeChipResult(encodeChipResultData(d), sig),
        },
      ),
    ),
  fc
    .record({
      permissionId: bytes(16),
      eid: eidArb,
      previousSmId: smIdArb,
      newSmId: smIdArb,
      keysetVersion: fc.integer({ min: 1, max: 127 }),
    })
    .map((k) => ({ type: 'KeyDerivationInfo', value: k, bytes: encodeKeyDerivationInfo(k) })),
  fc.constant({ type: 'GetChipInfo', value: {}, bytes: encodeGetChipInfo() }),
  fc.constant({ type: 'ProfileRollback', value: {}, bytes: encodeProfileRollback() }),
  fc
    .record(
      {
        eid: eidArb,
        assignedSmId: smIdArb,
        counter: fc.integer({ min: 0, max: COUNTER_MAX }),
        pendingPermissionId: bytes(16),
        chipCertificate: certArb,
        eumCertificate: certArb,
      },
      { requiredKeys: ['eid', 'assignedSmId', 'counter', 'chipCertificate', 'eumCertificate'] },
    )
    .map((i) => ({ type: 'ChipInfo', value: i, bytes: encodeChipInfo(i) })),
  fc.tuple(fc.record({ eid: eidArb, smId: smIdArb, counterValue: counterArb }), bytes(64)).chain(([d, sig]) =>
    fc.constantFrom<Sample>(
      { type: 'ConfirmProfileSwitchData', value: d, bytes: encodeConfirmProfileSwitchData(d) },
      {
        type: 'ConfirmProfileSwitch',
        value: { data: d, signature: sig },
        bytes: encodeConfirmProfileSwitch(encodeConfirmProfileSwitchData(d), sig),
      },
    ),
  ),
);

/** The decoded value without the raw-byte bookkeeping (`raw`, `dataRaw`), for comparison. */
export function stripRaw(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(stripRaw);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      if (k !== 'raw' && k !== 'dataRaw' && x !== undefined) out[k] = stripRaw(x);
    return out;
  }
  return v;
}
