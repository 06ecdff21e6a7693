/** PROTOCOL.md §5.5-5.6: CancelPermission (current SM → chip) and ChipResult (chip → anyone). */

import { readInteger, readOctets, SequenceReader, type Tlv } from '../der/reader.ts';
import { ctx, priv } from '../der/tag.ts';
import { constructed, integer, octets } from '../der/writer.ts';
import { MalformedMessage } from '../errors.ts';
import { eidField, PERMISSION_ID_SIZE, smIdField } from './fields.ts';
import { COUNTER_MAX } from './permission.ts';
import { decodeTop, encodeSigned, readSigned, type Signed, type SignedCodec } from './signed.ts';

export interface CancelPermissionData {
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly currentSmId: string;
  readonly counterValue: number;
}
export type CancelPermission = Signed<CancelPermissionData>;

/** ChipResultData.outcome, with the numbers of the ENUMERATED. */
export const OUTCOMES = {
  ok: 0,
  invalidEid: 1,
  notCurrentSm: 2,
  badSignature: 3,
  replay: 4,
  badCertificate: 5,
  wrongRole: 6,
  pendingExists: 7,
  noPending: 8,
  challengeMismatch: 9,
  unsupportedCurve: 10,
  malformed: 11,
  alreadyApplied: 12,
  undefined: 127,
} as const;
export type Outcome = keyof typeof OUTCOMES;
const OUTCOME_BY_NUMBER = new Map<number, Outcome>(
  (Object.entries(OUTCOMES) as [Outcome, number][]).map(([k, v]) => [v, k]),
);

export interface ChipResultData {
  readonly eid: string;
  readonly permissionId?: Uint8Array;
  readonly assignedSmId: string;
  readonly outcome: Outcome;
}
export type ChipResult = Signed<ChipResultData>;

export const TAG_CANCEL_PERMISSION_DATA = priv(9);
export const TAG_CANCEL_PERMISSION = priv(10);
export const TAG_CHIP_RESULT_DATA = priv(11);
export const TAG_CHIP_RESULT = priv(12);

export const cancelPermissionDataCodec: SignedCodec<CancelPermissionData> = {
  typeName: 'CancelPermissionData',
  tag: TAG_CANCEL_PERMISSION_DATA,
  decodeData(t: Tlv): CancelPermissionData {
    const r = new SequenceReader(t, 'CancelPermissionData');
    const permissionId = readOctets(
      r.take(ctx(0), 'permissionId'),
      r.field('permissionId'),
      PERMISSION_ID_SIZE,
    );
    const eid = eidField.decode(r.take(ctx(1), 'eid'), r.field('eid'));
    const currentSmId = smIdField.decode(r.take(ctx(2), 'currentSmId'), r.field('currentSmId'));
    const counterValue = readInteger(r.take(ctx(3), 'counterValue'), r.field('counterValue'), 1, COUNTER_MAX);
    r.end();
    return { permissionId, eid, currentSmId, counterValue };
  },
};

export function encodeCancelPermissionData(d: CancelPermissionData): Uint8Array {
  return constructed(
    TAG_CANCEL_PERMISSION_DATA,
    octets(ctx(0), d.permissionId),
    eidField.encode(ctx(1), d.eid),
    smIdField.encode(ctx(2), d.currentSmId),
    integer(ctx(3), d.counterValue),
  );
}
export function decodeCancelPermission(bytes: Uint8Array): CancelPermission {
  return readCancelPermission(decodeTop(bytes, TAG_CANCEL_PERMISSION, 'CancelPermission'));
}
export function readCancelPermission(top: Tlv): CancelPermission {
  const { signed, rest } = readSigned(
    top,
    'CancelPermission',
    cancelPermissionDataCodec,
    'currentSmSignature',
  );
  rest.end();
  return signed;
}
export const encodeCancelPermission = (dataRaw: Uint8Array, signature: Uint8Array): Uint8Array =>
  encodeSigned(TAG_CANCEL_PERMISSION, dataRaw, signature);

export const chipResultDataCodec: SignedCodec<ChipResultData> = {
  typeName: 'ChipResultData',
  tag: TAG_CHIP_RESULT_DATA,
  decodeData(t: Tlv): ChipResultData {
    const r = new SequenceReader(t, 'ChipResultData');
    const eid = eidField.decode(r.take(ctx(0), 'eid'), r.field('eid'));
    const pid = r.maybe(ctx(1), 'permissionId');
    const assignedSmId = smIdField.decode(r.take(ctx(2), 'assignedSmId'), r.field('assignedSmId'));
    const n = readInteger(r.take(ctx(3), 'outcome'), r.field('outcome'), 0, 127);
    const outcome = OUTCOME_BY_NUMBER.get(n);
    if (!outcome) throw new MalformedMessage(r.field('outcome'), `unknown outcome ${n}`);
    r.end();
    return {
      eid,
      ...(pid && { permissionId: readOctets(pid, r.field('permissionId'), PERMISSION_ID_SIZE) }),
      assignedSmId,
      outcome,
    };
  },
};

export function encodeChipResultData(d: ChipResultData): Uint8Array {
  return constructed(
    TAG_CHIP_RESULT_DATA,
    eidField.encode(ctx(0), d.eid),
    d.permissionId && octets(ctx(1), d.permissionId),
    smIdField.encode(ctx(2), d.assignedSmId),
    integer(ctx(3), OUTCOMES[d.outcome]),
  );
}
export function decodeChipResult(bytes: Uint8Array): ChipResult {
  return readChipResult(decodeTop(bytes, TAG_CHIP_RESULT, 'ChipResult'));
}
export function readChipResult(top: Tlv): ChipResult {
  const { signed, rest } = readSigned(top, 'ChipResult', chipResultDataCodec, 'chipSignature');
  rest.end();
  return signed;
}
export const encodeChipResult = (dataRaw: Uint8Array, chipSignature: Uint8Array): Uint8Array =>
  encodeSigned(TAG_CHIP_RESULT, dataRaw, chipSignature);
