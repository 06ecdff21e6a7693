/** PROTOCOL.md §5.2: TransferRequestData and TransferRequest (chip → new SM). */
import { readOctets, SequenceReader, type Tlv } from '../der/reader.ts';
import { ctx, priv, U } from '../der/tag.ts';
import { constructed, octets } from '../der/writer.ts';
import {
  CHALLENGE_SIZE,
  certificateField,
  OT_PUBLIC_KEY_SIZE,
  readCertificate,
  smIdField,
} from './fields.ts';
import { readTransferPermission, type TransferPermission } from './permission.ts';
import { decodeTop, encodeSigned, readSigned, type Signed, type SignedCodec } from './signed.ts';

export interface TransferRequestData {
  /** The permission exactly as the chip received it. */
  readonly permission: TransferPermission;
  readonly newSmId: string;
  readonly chipChallenge: Uint8Array;
  readonly otPkChip: Uint8Array;
}

export interface TransferRequest extends Signed<TransferRequestData> {
  readonly chipCertificate: Uint8Array;
  readonly eumCertificate: Uint8Array;
  readonly currentSmCertificate: Uint8Array;
}

export const TAG_TRANSFER_REQUEST_DATA = priv(3);
export const TAG_TRANSFER_REQUEST = priv(4);

export const transferRequestDataCodec: SignedCodec<TransferRequestData> = {
  typeName: 'TransferRequestData',
  tag: TAG_TRANSFER_REQUEST_DATA,
  decodeData(t: Tlv): TransferRequestData {
    const r = new SequenceReader(t, 'TransferRequestData');
    const permission = readTransferPermission(r.take(U.sequence, 'permission'));
    const newSmId = smIdField.decode(r.take(ctx(0), 'newSmId'), r.field('newSmId'));
    const chipChallenge = readOctets(
      r.take(ctx(1), 'chipChallenge'),
      r.field('chipChallenge'),
      CHALLENGE_SIZE,
    );
    const otPkChip = readOctets(r.take(ctx(2), 'otPkChip'), r.field('otPkChip'), OT_PUBLIC_KEY_SIZE);
    r.end();
    return { permission, newSmId, chipChallenge, otPkChip };
  },
};

export function encodeTransferRequestData(d: TransferRequestData): Uint8Array {
  return constructed(
    TAG_TRANSFER_REQUEST_DATA,
    d.permission.raw,
    smIdField.encode(ctx(0), d.newSmId),
    octets(ctx(1), d.chipChallenge),
    octets(ctx(2), d.otPkChip),
  );
}

export function decodeTransferRequest(bytes: Uint8Array): TransferRequest {
  return readTransferRequest(decodeTop(bytes, TAG_TRANSFER_REQUEST, 'TransferRequest'));
}

export function readTransferRequest(top: Tlv): TransferRequest {
  const { signed, rest } = readSigned(top, 'TransferRequest', transferRequestDataCodec, 'chipSignature');
  const chipCertificate = readCertificate(rest, 0, 'chipCertificate');
  const eumCertificate = readCertificate(rest, 1, 'eumCertificate');
  const currentSmCertificate = readCertificate(rest, 2, 'currentSmCertificate');
  rest.end();
  return { ...signed, chipCertificate, eumCertificate, currentSmCertificate };
}

export function encodeTransferRequest(
  dataRaw: Uint8Array,
  chipSignature: Uint8Array,
  certs: { chipCertificate: Uint8Array; eumCertificate: Uint8Array; currentSmCertificate: Uint8Array },
): Uint8Array {
  return encodeSigned(
    TAG_TRANSFER_REQUEST,
    dataRaw,
    chipSignature,
    certificateField(0, certs.chipCertificate),
    certificateField(1, certs.eumCertificate),
    certificateField(2, certs.currentSmCertificate),
  );
}
