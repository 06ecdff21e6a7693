/**
 * `handover decode` without the I/O: the bytes of any message of PROTOCOL.md §5 → one JSON-able
 * object `{ type, fields }` with the spec's type and field names, for people who debug transfers.
 *
 * Shapes: bytes as lower-case hex, EIDs as their 32 digits, SM ids as strings, times ISO 8601,
 * ICCIDs as digits, `outcome` by its name; nested messages (a TransferPermission inside a
 * TransferRequestData, a ProfileSwitch) are `{ type, fields }` again; every signature is
 * `{ signature, signedBytes }`, signedBytes being the `…Data` element exactly as received
 * (what the signature covers, PROTOCOL.md §2); every certificate is a short summary.
 */
import { type AnyMessage, decodeMessage } from '../protocol/asn1/decode-any.ts';
import type { HandoverCommandData, HandoverResultData } from '../protocol/asn1/handover.ts';
import type {
  ProfileSwitch,
  TransferPermission,
  TransferPermissionData,
} from '../protocol/asn1/permission.ts';
import type { ConfirmProfileSwitchData } from '../protocol/asn1/profile.ts';
import type { TransferRequestData } from '../protocol/asn1/request.ts';
import type { CancelPermissionData, ChipResultData } from '../protocol/asn1/results.ts';
import type { Signed } from '../protocol/asn1/signed.ts';
import { HandoverError, MalformedMessage } from '../protocol/errors.ts';
import { CertificateError, formatName, parseCertificate } from '../protocol/pki/certificate.ts';
import { type CertificateRole, roleOf } from '../protocol/pki/validate.ts';

export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };
export type JsonObject = { readonly [key: string]: Json };

/** A decoded message (or nested ProfileSwitch): the ASN.1 type name and its fields in spec order. */
export type DecodedMessage = {
  readonly type: AnyMessage['type'] | 'ProfileSwitch' | 'Certificate';
  readonly fields: JsonObject;
};

/** `[APPLICATION 55] Signature` with the exact bytes it signs. */
export type SignatureJson = { readonly signature: string; readonly signedBytes: string };

/** What `decode` says about an embedded X.509 certificate (PROTOCOL.md §3). */
export type CertificateSummary =
  | {
      readonly subject: string;
      readonly issuer: string;
      /** By policy OID; 'ambiguous' when the certificate carries more than one role policy. */
      readonly role: CertificateRole | 'ambiguous';
      /** null when the key is not on P-256 or brainpoolP256r1. */
      readonly curve: string | null;
      readonly eid?: string;
      readonly smId?: string;
      readonly notBefore: string;
      readonly notAfter: string;
      readonly serial: string;
    }
  | { readonly error: { readonly code: string; readonly reason: string; readonly message: string } };

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Decodes one complete message. Throws MalformedMessage (with `field`) for anything else. */
export function decodeToJson(bytes: Uint8Array): DecodedMessage {
  try {
    return messageJson(decodeMessage(bytes));
  } catch (e) {
    // Not a message but maybe a certificate (an X.509 SEQUENCE, as TransferPermission's tag is).
    if (e instanceof MalformedMessage && bytes[0] === 0x30) {
      const cert = certificateJson(bytes);
      if (cert) return cert;
    }
    throw e;
  }
}

/** An X.509 certificate as `decode` shows the ones inside messages; undefined when it is not one. */
function certificateJson(der: Uint8Array): DecodedMessage | undefined {
  const summary = summariseCertificate(der);
  return 'error' in summary ? undefined : { type: 'Certificate', fields: summary };
}

function messageJson(m: AnyMessage): DecodedMessage {
  switch (m.type) {
    case 'TransferPermissionData':
      return permissionData(m.value);
    case 'TransferPermission':
      return permission(m.value);
    case 'TransferPermissionMessage':
      return message(m.type, {
        permission: permission(m.value.permission),
        currentSmCertificate: summariseCertificate(m.value.currentSmCertificate),
        newSmCertificate: summariseCertificate(m.value.newSmCertificate),
      });
    case 'TransferRequestData':
      return requestData(m.value);
    case 'TransferRequest':
      return message(m.type, {
        data: requestData(m.value.data),
        chipSignature: signature(m.value),
        chipCertificate: summariseCertificate(m.value.chipCertificate),
        eumCertificate: summariseCertificate(m.value.eumCertificate),
        currentSmCertificate: summariseCertificate(m.value.currentSmCertificate),
      });
    case 'HandoverCommandData':
      return handoverCommandData(m.value);
    case 'HandoverCommand':
      return message(m.type, { data: handoverCommandData(m.value.data), newSmSignature: signature(m.value) });
    case 'HandoverResultData':
      return handoverResultData(m.value);
    case 'HandoverResult':
      return message(m.type, { data: handoverResultData(m.value.data), chipSignature: signature(m.value) });
    case 'CancelPermissionData':
      return cancelPermissionData(m.value);
    case 'CancelPermission':
      return message(m.type, {
        data: cancelPermissionData(m.value.data),
        currentSmSignature: signature(m.value),
      });
    case 'ChipResultData':
      return chipResultData(m.value);
    case 'ChipResult':
      return message(m.type, { data: chipResultData(m.value.data), chipSignature: signature(m.value) });
    case 'KeyDerivationInfo':
      return message(m.type, {
        permissionId: hex(m.value.permissionId),
        eid: m.value.eid,
        previousSmId: m.value.previousSmId,
        newSmId: m.value.newSmId,
        keysetVersion: m.value.keysetVersion,
      });
    case 'ConfirmProfileSwitchData':
      return confirmProfileSwitchData(m.value);
    case 'ConfirmProfileSwitch':
      return message(m.type, {
        data: confirmProfileSwitchData(m.value.data),
        smSignature: signature(m.value),
      });
    case 'ChipInfo':
      return message(m.type, {
        eid: m.value.eid,
        assignedSmId: m.value.assignedSmId,
        counter: m.value.counter,
        ...(m.value.pendingPermissionId && { pendingPermissionId: hex(m.value.pendingPermissionId) }),
        chipCertificate: summariseCertificate(m.value.chipCertificate),
        eumCertificate: summariseCertificate(m.value.eumCertificate),
      });
    case 'GetChipInfo':
    case 'ProfileRollback':
      return message(m.type, {});
    default:
      return unreachable(m);
  }
}

function unreachable(m: never): never {
  throw new Error(`decode: no JSON form for ${(m as { type: string }).type}`);
}

const message = (type: DecodedMessage['type'], fields: JsonObject): DecodedMessage => ({ type, fields });

// Every `[APPLICATION 55] Signature` (PROTOCOL.md §2): it covers `dataRaw`, the …Data DER as received.
function signature(s: Signed<unknown>): SignatureJson {
  return { signature: hex(s.signature), signedBytes: hex(s.dataRaw) };
}

function permissionData(d: TransferPermissionData): DecodedMessage {
  return message('TransferPermissionData', {
    version: d.version,
    permissionId: hex(d.permissionId),
    eid: d.eid,
    currentSmId: d.currentSmId,
    newSmId: d.newSmId,
    newSmAddress: d.newSmAddress,
    counterValue: d.counterValue,
    notAfter: d.notAfter.toISOString(),
    ...(d.activationCodeHash && { activationCodeHash: hex(d.activationCodeHash) }),
    ...(d.profileSwitch && { profileSwitch: profileSwitch(d.profileSwitch) }),
  });
}

function profileSwitch(p: ProfileSwitch): DecodedMessage {
  return message('ProfileSwitch', {
    disableIccid: p.disableIccid,
    enableIccid: p.enableIccid,
    rollbackOnFailure: p.rollbackOnFailure,
  });
}

function permission(p: TransferPermission): DecodedMessage {
  return message('TransferPermission', { data: permissionData(p.data), currentSmSignature: signature(p) });
}

function requestData(d: TransferRequestData): DecodedMessage {
  return message('TransferRequestData', {
    permission: permission(d.permission),
    newSmId: d.newSmId,
    chipChallenge: hex(d.chipChallenge),
    otPkChip: hex(d.otPkChip),
  });
}

// §5.3
function handoverCommandData(d: HandoverCommandData): DecodedMessage {
  return message('HandoverCommandData', {
    permissionId: hex(d.permissionId),
    eid: d.eid,
    newSmId: d.newSmId,
    chipChallenge: hex(d.chipChallenge),
    otPkSm: hex(d.otPkSm),
    keysetVersion: d.keysetVersion,
  });
}

// §5.4
function handoverResultData(d: HandoverResultData): DecodedMessage {
  return message('HandoverResultData', {
    permissionId: hex(d.permissionId),
    eid: d.eid,
    previousSmId: d.previousSmId,
    newSmId: d.newSmId,
    receipt: hex(d.receipt),
  });
}

// §5.5
function cancelPermissionData(d: CancelPermissionData): DecodedMessage {
  return message('CancelPermissionData', {
    permissionId: hex(d.permissionId),
    eid: d.eid,
    currentSmId: d.currentSmId,
    counterValue: d.counterValue,
  });
}

// §5.6
function chipResultData(d: ChipResultData): DecodedMessage {
  return message('ChipResultData', {
    eid: d.eid,
    ...(d.permissionId && { permissionId: hex(d.permissionId) }),
    assignedSmId: d.assignedSmId,
    outcome: d.outcome,
  });
}

// §7
function confirmProfileSwitchData(d: ConfirmProfileSwitchData): DecodedMessage {
  return message('ConfirmProfileSwitchData', { eid: d.eid, smId: d.smId, counterValue: d.counterValue });
}

/**
 * Summarises an embedded certificate. One that does not parse becomes `{ error }` so the rest
 * of the message still decodes (the codec only checks that it is one DER SEQUENCE).
 */
export function summariseCertificate(der: Uint8Array): CertificateSummary {
  let cert: ReturnType<typeof parseCertificate>;
  try {
    cert = parseCertificate(der);
  } catch (e) {
    if (e instanceof CertificateError)
      return { error: { code: e.code, reason: e.reason, message: e.message } };
    if (e instanceof HandoverError)
      return { error: { code: e.code, reason: 'malformed', message: e.message } };
    throw e;
  }
  let role: CertificateRole | 'ambiguous';
  try {
    role = roleOf(cert);
  } catch (e) {
    if (!(e instanceof CertificateError)) throw e;
    role = 'ambiguous';
  }
  const eid = role === 'chip' ? cert.subject.serialNumber : undefined;
  const smId = role === 'sm' ? cert.subject.commonName : undefined;
  return {
    subject: formatName(cert.subject),
    issuer: formatName(cert.issuer),
    role,
    curve: cert.curve ?? null,
    ...(eid === undefined ? {} : { eid }),
    ...(smId === undefined ? {} : { smId }),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    serial: cert.serial,
  };
}

/**
 * The bytes of an input file or stdin: hex text when it holds only hex digits and white space,
 * else base64 text when it holds only base64 characters, else the bytes as they are (DER).
 * Throws MalformedMessage (field `input`) for hex or base64 text that does not decode.
 */
const UTF8_BOM = [0xef, 0xbb, 0xbf];
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;

export function inputBytes(content: Uint8Array): Uint8Array {
  // A text file saved with a byte order mark: the mark is not part of the text.
  const body = UTF8_BOM.every((b, i) => content[i] === b) ? content.subarray(3) : content;
  const text = Buffer.from(body).toString('latin1');
  const pem = PEM_BLOCK.exec(text);
  if (pem) {
    const label = pem[1]!;
    // Never decode (and so never print) a key.
    if (/KEY/.test(label))
      throw new MalformedMessage('input', `a PEM ${label} is not a message or a certificate`);
    return inputBytes(Buffer.from(pem[2]!.replace(/\s+/g, ''), 'latin1'));
  }
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) return new Uint8Array(0);
  if (/^[0-9A-Fa-f]+$/.test(compact)) return hexBytes(compact, 'input');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) {
    // Standard or URL-safe alphabet, padding optional. Buffer never refuses base64, so check the length.
    if (compact.length % 4 === 1) throw new MalformedMessage('input', 'base64 text of impossible length');
    return new Uint8Array(Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64'));
  }
  return Uint8Array.from(body);
}

/** Hex digits (white space allowed between them) → bytes. */
export function hexBytes(text: string, field: string): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  if (!/^[0-9A-Fa-f]*$/.test(compact)) throw new MalformedMessage(field, 'not hexadecimal text');
  if (compact.length % 2 !== 0) throw new MalformedMessage(field, 'odd number of hex digits');
  return new Uint8Array(Buffer.from(compact, 'hex'));
}
