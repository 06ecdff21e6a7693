/** PROTOCOL.md §5.3-5.4: HandoverCommand (new SM → chip), HandoverResult (chip → SMs), KeyDerivationInfo. */
import { readInteger, readOctets, SequenceReader, type Tlv } from '../der/reader.ts';
import { ctx, priv } from '../der/tag.ts';
import { constructed, integer, octets } from '../der/writer.ts';
import {
  CHALLENGE_SIZE,
  eidField,
  OT_PUBLIC_KEY_SIZE,
  PERMISSION_ID_SIZE,
  RECEIPT_SIZE,
  smIdField,
} from './fields.ts';
import { decodeTop, encodeSigned, readSigned, type Signed, type SignedCodec } from './signed.ts';

export interface HandoverCommandData {
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly newSmId: string;
  readonly chipChallenge: Uint8Array;
  readonly otPkSm: Uint8Array;
  readonly keysetVersion: number;
}
export type HandoverCommand = Signed<HandoverCommandData>;

export interface HandoverResultData {
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly previousSmId: string;
  readonly newSmId: string;
  readonly receipt: Uint8Array;
}
export type HandoverResult = Signed<HandoverResultData>;

export interface KeyDerivationInfo {
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly previousSmId: string;
  readonly newSmId: string;
  readonly keysetVersion: number;
}

export const TAG_HANDOVER_COMMAND_DATA = priv(5);
export const TAG_HANDOVER_COMMAND = priv(6);
export const TAG_HANDOVER_RESULT_DATA = priv(7);
export const TAG_HANDOVER_RESULT = priv(8);
export const TAG_KEY_DERIVATION_INFO = priv(13);

export const handoverCommandDataCodec: SignedCodec<HandoverCommandData> = {
  typeName: 'HandoverCommandData',
  tag: TAG_HANDOVER_COMMAND_DATA,
  decodeData(t: Tlv): HandoverCommandData {
    const r = new SequenceReader(t, 'HandoverCommandData');
    const permissionId = readOctets(
      r.take(ctx(0), 'permissionId'),
      r.field('permissionId'),
      PERMISSION_ID_SIZE,
    );
    const eid = eidField.decode(r.take(ctx(1), 'eid'), r.field('eid'));
    const newSmId = smIdField.decode(r.take(ctx(2), 'newSmId'), r.field('newSmId'));
    const chipChallenge = readOctets(
      r.take(ctx(3), 'chipChallenge'),
      r.field('chipChallenge'),
      CHALLENGE_SIZE,
    );
    const otPkSm = readOctets(r.take(ctx(4), 'otPkSm'), r.field('otPkSm'), OT_PUBLIC_KEY_SIZE);
    const keysetVersion = readInteger(r.take(ctx(5), 'keysetVersion'), r.field('keysetVersion'), 1, 127);
    r.end();
    return { permissionId, eid, newSmId, chipChallenge, otPkSm, keysetVersion };
  },
};

export function encodeHandoverCommandData(d: HandoverCommandData): Uint8Array {
  return constructed(
    TAG_HANDOVER_COMMAND_DATA,
    octets(ctx(0), d.permissionId),
    eidField.encode(ctx(1), d.eid),
    smIdField.encode(ctx(2), d.newSmId),
    octets(ctx(3), d.chipChallenge),
    octets(ctx(4), d.otPkSm),
    integer(ctx(5), d.keysetVersion),
  );
}

export function decodeHandoverCommand(bytes: Uint8Array): HandoverCommand {
  return readHandoverCommand(decodeTop(bytes, TAG_HANDOVER_COMMAND, 'HandoverCommand'));
}
export function readHandoverCommand(top: Tlv): HandoverCommand {
  const { signed, rest } = readSigned(top, 'HandoverCommand', handoverCommandDataCodec, 'newSmSignature');
  rest.end();
  return signed;
}
export const encodeHandoverCommand = (dataRaw: Uint8Array, newSmSignature: Uint8Array): Uint8Array =>
  encodeSigned(TAG_HANDOVER_COMMAND, dataRaw, newSmSignature);

export const handoverResultDataCodec: SignedCodec<HandoverResultData> = {
  typeName: 'HandoverResultData',
  tag: TAG_HANDOVER_RESULT_DATA,
  decodeData(t: Tlv): HandoverResultData {
    const r = new SequenceReader(t, 'HandoverResultData');
    const permissionId = readOctets(
      r.take(ctx(0), 'permissionId'),
      r.field('permissionId'),
      PERMISSION_ID_SIZE,
    );
    const eid = eidField.decode(r.take(ctx(1), 'eid'), r.field('eid'));
    const previousSmId = smIdField.decode(r.take(ctx(2), 'previousSmId'), r.field('previousSmId'));
    const newSmId = smIdField.decode(r.take(ctx(3), 'newSmId'), r.field('newSmId'));
    const receipt = readOctets(r.take(ctx(4), 'receipt'), r.field('receipt'), RECEIPT_SIZE);
    r.end();
    return { permissionId, eid, previousSmId, newSmId, receipt };
  },
};

export function encodeHandoverResultData(d: HandoverResultData): Uint8Array {
  return constructed(
    TAG_HANDOVER_RESULT_DATA,
    octets(ctx(0), d.permissionId),
    eidField.encode(ctx(1), d.eid),
    smIdField.encode(ctx(2), d.previousSmId),
    smIdField.encode(ctx(3), d.newSmId),
    octets(ctx(4), d.receipt),
  );
}

export function decodeHandoverResult(bytes: Uint8Array): HandoverResult {
  return readHandoverResult(decodeTop(bytes, TAG_HANDOVER_RESULT, 'HandoverResult'));
}
export function readHandoverResult(top: Tlv): HandoverResult {
  const { signed, rest } = readSigned(top, 'HandoverResult', handoverResultDataCodec, 'chipSignature');
  rest.end();
  return signed;
}
export const encodeHandoverResult = (dataRaw: Uint8Array, chipSignature: Uint8Array): Uint8Array =>
  encodeSigned(TAG_HANDOVER_RESULT, dataRaw, chipSignature);

export function encodeKeyDerivationInfo(k: KeyDerivationInfo): Uint8Array {
  return constructed(
    TAG_KEY_DERIVATION_INFO,
    octets(ctx(0), k.permissionId),
    eidField.encode(ctx(1), k.eid),
    smIdField.encode(ctx(2), k.previousSmId),
    smIdField.encode(ctx(3), k.newSmId),
    integer(ctx(4), k.keysetVersion),
  );
}

export function readKeyDerivationInfo(t: Tlv): KeyDerivationInfo {
  const r = new SequenceReader(t, 'KeyDerivationInfo');
  const permissionId = readOctets(
    r.take(ctx(0), 'permissionId'),
    r.field('permissionId'),
    PERMISSION_ID_SIZE,
  );
  const eid = eidField.decode(r.take(ctx(1), 'eid'), r.field('eid'));
  const previousSmId = smIdField.decode(r.take(ctx(2), 'previousSmId'), r.field('previousSmId'));
  const newSmId = smIdField.decode(r.take(ctx(3), 'newSmId'), r.field('newSmId'));
  const keysetVersion = readInteger(r.take(ctx(4), 'keysetVersion'), r.field('keysetVersion'), 0, 2147483647);
  r.end();
  return { permissionId, eid, previousSmId, newSmId, keysetVersion };
}
export const decodeKeyDerivationInfo = (bytes: Uint8Array): KeyDerivationInfo =>
  readKeyDerivationInfo(decodeTop(bytes, TAG_KEY_DERIVATION_INFO, 'KeyDerivationInfo'));
