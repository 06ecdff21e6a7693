/** PROTOCOL.md §5 and §7: ConfirmProfileSwitch (new SM → chip) and ProfileRollback (device agent → chip). */
import { readInteger, SequenceReader, type Tlv } from '../der/reader.ts';
import { ctx, priv } from '../der/tag.ts';
import { constructed, integer } from '../der/writer.ts';
import { eidField, smIdField } from './fields.ts';
import { readEmpty } from './info.ts';
import { COUNTER_MAX } from './permission.ts';
import { decodeTop, encodeSigned, readSigned, type Signed, type SignedCodec } from './signed.ts';

export interface ConfirmProfileSwitchData {
  readonly eid: string;
  readonly smId: string;
  readonly counterValue: number;
}
export type ConfirmProfileSwitch = Signed<ConfirmProfileSwitchData>;

export const TAG_CONFIRM_PROFILE_SWITCH_DATA = priv(16);
export const TAG_CONFIRM_PROFILE_SWITCH = priv(17);
export const TAG_PROFILE_ROLLBACK = priv(18);

export const confirmProfileSwitchDataCodec: SignedCodec<ConfirmProfileSwitchData> = {
  typeName: 'ConfirmProfileSwitchData',
  tag: TAG_CONFIRM_PROFILE_SWITCH_DATA,
  decodeData(t: Tlv): ConfirmProfileSwitchData {
    const r = new SequenceReader(t, 'ConfirmProfileSwitchData');
    const eid = eidField.decode(r.take(ctx(0), 'eid'), r.field('eid'));
    const smId = smIdField.decode(r.take(ctx(1), 'smId'), r.field('smId'));
    const counterValue = readInteger(r.take(ctx(2), 'counterValue'), r.field('counterValue'), 1, COUNTER_MAX);
    r.end();
    return { eid, smId, counterValue };
  },
};

export function encodeConfirmProfileSwitchData(d: ConfirmProfileSwitchData): Uint8Array {
  return constructed(
    TAG_CONFIRM_PROFILE_SWITCH_DATA,
    eidField.encode(ctx(0), d.eid),
    smIdField.encode(ctx(1), d.smId),
    integer(ctx(2), d.counterValue),
  );
}
export function decodeConfirmProfileSwitch(bytes: Uint8Array): ConfirmProfileSwitch {
  return readConfirmProfileSwitch(decodeTop(bytes, TAG_CONFIRM_PROFILE_SWITCH, 'ConfirmProfileSwitch'));
}
export function readConfirmProfileSwitch(top: Tlv): ConfirmProfileSwitch {
  const { signed, rest } = readSigned(
    top,
    'ConfirmProfileSwitch',
    confirmProfileSwitchDataCodec,
    'smSignature',
  );
  rest.end();
  return signed;
}
export const encodeConfirmProfileSwitch = (dataRaw: Uint8Array, smSignature: Uint8Array): Uint8Array =>
  encodeSigned(TAG_CONFIRM_PROFILE_SWITCH, dataRaw, smSignature);

export const encodeProfileRollback = (): Uint8Array => constructed(TAG_PROFILE_ROLLBACK);
export const decodeProfileRollback = (bytes: Uint8Array): void =>
  readEmpty(decodeTop(bytes, TAG_PROFILE_ROLLBACK, 'ProfileRollback'), 'ProfileRollback');
