/** PROTOCOL.md §5.1: TransferPermissionData, TransferPermission, TransferPermissionMessage, ProfileSwitch. */
import {
  readBoolean,
  readGeneralizedTime,
  readInteger,
  readOctets,
  readUtf8,
  SequenceReader,
  type Tlv,
} from '../der/reader.ts';
import { ctx, priv, U } from '../der/tag.ts';
import { boolean, constructed, generalizedTime, integer, octets, utf8 } from '../der/writer.ts';
import { iccidFromBytes, iccidToBytes } from '../iccid.ts';
import {
  certificateField,
  eidField,
  PERMISSION_ID_SIZE,
  printable,
  readCertificate,
  smIdField,
} from './fields.ts';
import { decodeTop, encodeSigned, readSigned, type Signed, type SignedCodec } from './signed.ts';

export const COUNTER_MAX = 2147483647;

/** ProfileSwitch ::= SEQUENCE (§7). ICCIDs as digit strings. */
export interface ProfileSwitch {
  readonly disableIccid: string;
  readonly enableIccid: string;
  readonly rollbackOnFailure: boolean;
}

export interface TransferPermissionData {
  readonly version: 1;
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly currentSmId: string;
  readonly newSmId: string;
  readonly newSmAddress: string;
  readonly counterValue: number;
  readonly notAfter: Date;
  readonly activationCodeHash?: Uint8Array;
  readonly profileSwitch?: ProfileSwitch;
}

export type TransferPermission = Signed<TransferPermissionData>;

export interface TransferPermissionMessage {
  readonly permission: TransferPermission;
  readonly currentSmCertificate: Uint8Array;
  readonly newSmCertificate: Uint8Array;
  readonly raw: Uint8Array;
}

export const TAG_TRANSFER_PERMISSION_DATA = priv(1);
export const TAG_TRANSFER_PERMISSION_MESSAGE = priv(2);

export function decodeProfileSwitch(t: Tlv, typeName: string): ProfileSwitch {
  const r = new SequenceReader(t, typeName);
  const disableIccid = iccidFromBytes(
    readOctets(r.take(ctx(0), 'disableIccid'), r.field('disableIccid'), 10),
    r.field('disableIccid'),
  );
  const enableIccid = iccidFromBytes(
    readOctets(r.take(ctx(1), 'enableIccid'), r.field('enableIccid'), 10),
    r.field('enableIccid'),
  );
  const rollbackOnFailure = readBoolean(r.take(ctx(2), 'rollbackOnFailure'), r.field('rollbackOnFailure'));
  r.end();
  return { disableIccid, enableIccid, rollbackOnFailure };
}

export function encodeProfileSwitch(
  t: typeof U.sequence | ReturnType<typeof ctx>,
  p: ProfileSwitch,
): Uint8Array {
  return constructed(
    t,
    octets(ctx(0), iccidToBytes(p.disableIccid)),
    octets(ctx(1), iccidToBytes(p.enableIccid)),
    boolean(ctx(2), p.rollbackOnFailure),
  );
}

export const transferPermissionDataCodec: SignedCodec<TransferPermissionData> = {
  typeName: 'TransferPermissionData',
  tag: TAG_TRANSFER_PERMISSION_DATA,
  decodeData(t: Tlv): TransferPermissionData {
    const r = new SequenceReader(t, 'TransferPermissionData');
    readInteger(r.take(ctx(0), 'version'), r.field('version'), 1, 1);
    const permissionId = readOctets(
      r.take(ctx(1), 'permissionId'),
      r.field('permissionId'),
      PERMISSION_ID_SIZE,
    );
    const eid = eidField.decode(r.take(ctx(2), 'eid'), r.field('eid'));
    const currentSmId = smIdField.decode(r.take(ctx(3), 'currentSmId'), r.field('currentSmId'));
    const newSmId = smIdField.decode(r.take(ctx(4), 'newSmId'), r.field('newSmId'));
    const newSmAddress = printable(
      readUtf8(r.take(ctx(5), 'newSmAddress'), r.field('newSmAddress'), 1, 255),
      r.field('newSmAddress'),
    );
    const counterValue = readInteger(r.take(ctx(6), 'counterValue'), r.field('counterValue'), 1, COUNTER_MAX);
    const notAfter = readGeneralizedTime(r.take(ctx(7), 'notAfter'), r.field('notAfter'), {
      fractionalSeconds: true,
    });
    const hashTlv = r.maybe(ctx(8), 'activationCodeHash');
    const switchTlv = r.maybe(ctx(9, true), 'profileSwitch');
    r.end();
    return {
      version: 1,
      permissionId,
      eid,
      currentSmId,
      newSmId,
      newSmAddress,
      counterValue,
      notAfter,
      ...(hashTlv && { activationCodeHash: readOctets(hashTlv, r.field('activationCodeHash'), 32) }),
      ...(switchTlv && { profileSwitch: decodeProfileSwitch(switchTlv, r.field('profileSwitch')) }),
    };
  },
};

export function encodeTransferPermissionData(d: TransferPermissionData): Uint8Array {
  return constructed(
    TAG_TRANSFER_PERMISSION_DATA,
    integer(ctx(0), 1),
    octets(ctx(1), d.permissionId),
    eidField.encode(ctx(2), d.eid),
    smIdField.encode(ctx(3), d.currentSmId),
    smIdField.encode(ctx(4), d.newSmId),
    utf8(ctx(5), d.newSmAddress),
    integer(ctx(6), d.counterValue),
    generalizedTime(ctx(7), d.notAfter, { fractionalSeconds: true }),
    d.activationCodeHash && octets(ctx(8), d.activationCodeHash),
    d.profileSwitch && encodeProfileSwitch(ctx(9, true), d.profileSwitch),
  );
}

/** TransferPermission ::= SEQUENCE { data, currentSmSignature [APPLICATION 55] } */
export function readTransferPermission(t: Tlv): TransferPermission {
  const { signed, rest } = readSigned(
    t,
    'TransferPermission',
    transferPermissionDataCodec,
    'currentSmSignature',
  );
  rest.end();
  return signed;
}

export function encodeTransferPermission(dataRaw: Uint8Array, signature: Uint8Array): Uint8Array {
  return encodeSigned(U.sequence, dataRaw, signature);
}

export function decodeTransferPermissionMessage(bytes: Uint8Array): TransferPermissionMessage {
  const top = decodeTop(bytes, TAG_TRANSFER_PERMISSION_MESSAGE, 'TransferPermissionMessage');
  return readTransferPermissionMessage(top);
}

export function readTransferPermissionMessage(top: Tlv): TransferPermissionMessage {
  const r = new SequenceReader(top, 'TransferPermissionMessage');
  const permission = readTransferPermission(r.take(U.sequence, 'permission'));
  const currentSmCertificate = readCertificate(r, 0, 'currentSmCertificate');
  const newSmCertificate = readCertificate(r, 1, 'newSmCertificate');
  r.end();
  return { permission, currentSmCertificate, newSmCertificate, raw: Uint8Array.from(top.raw) };
}

export function encodeTransferPermissionMessage(m: Omit<TransferPermissionMessage, 'raw'>): Uint8Array {
  return constructed(
    TAG_TRANSFER_PERMISSION_MESSAGE,
    m.permission.raw,
    certificateField(0, m.currentSmCertificate),
    certificateField(1, m.newSmCertificate),
  );
}
