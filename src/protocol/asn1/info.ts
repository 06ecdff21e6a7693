/** PROTOCOL.md §5: GetChipInfo and ChipInfo (unsigned, never evidence of anything). */
import { readInteger, readOctets, SequenceReader, type Tlv } from '../der/reader.ts';
import { ctx, priv } from '../der/tag.ts';
import { constructed, integer, octets } from '../der/writer.ts';
import { certificateField, eidField, PERMISSION_ID_SIZE, readCertificate, smIdField } from './fields.ts';
import { COUNTER_MAX } from './permission.ts';
import { decodeTop } from './signed.ts';

export interface ChipInfo {
  readonly eid: string;
  readonly assignedSmId: string;
  readonly counter: number;
  readonly pendingPermissionId?: Uint8Array;
  readonly chipCertificate: Uint8Array;
  readonly eumCertificate: Uint8Array;
}

export const TAG_GET_CHIP_INFO = priv(14);
export const TAG_CHIP_INFO = priv(15);

export const encodeGetChipInfo = (): Uint8Array => constructed(TAG_GET_CHIP_INFO);

export function readEmpty(t: Tlv, typeName: string): void {
  new SequenceReader(t, typeName).end();
}
export const decodeGetChipInfo = (bytes: Uint8Array): void =>
  readEmpty(decodeTop(bytes, TAG_GET_CHIP_INFO, 'GetChipInfo'), 'GetChipInfo');

export function encodeChipInfo(i: ChipInfo): Uint8Array {
  return constructed(
    TAG_CHIP_INFO,
    eidField.encode(ctx(0), i.eid),
    smIdField.encode(ctx(1), i.assignedSmId),
    integer(ctx(2), i.counter),
    i.pendingPermissionId && octets(ctx(3), i.pendingPermissionId),
    certificateField(4, i.chipCertificate),
    certificateField(5, i.eumCertificate),
  );
}

export function readChipInfo(t: Tlv): ChipInfo {
  const r = new SequenceReader(t, 'ChipInfo');
  const eid = eidField.decode(r.take(ctx(0), 'eid'), r.field('eid'));
  const assignedSmId = smIdField.decode(r.take(ctx(1), 'assignedSmId'), r.field('assignedSmId'));
  const counter = readInteger(r.take(ctx(2), 'counter'), r.field('counter'), 0, COUNTER_MAX);
  const pending = r.maybe(ctx(3), 'pendingPermissionId');
  const chipCertificate = readCertificate(r, 4, 'chipCertificate');
  const eumCertificate = readCertificate(r, 5, 'eumCertificate');
  r.end();
  return {
    eid,
    assignedSmId,
    counter,
    ...(pending && {
      pendingPermissionId: readOctets(pending, r.field('pendingPermissionId'), PERMISSION_ID_SIZE),
    }),
    chipCertificate,
    eumCertificate,
  };
}
export const decodeChipInfo = (bytes: Uint8Array): ChipInfo =>
  readChipInfo(decodeTop(bytes, TAG_CHIP_INFO, 'ChipInfo'));
