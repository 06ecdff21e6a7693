/**
 * Test helper: the few SM-side messages a chip test needs, signed with an SM key from a dev PKI.
 * Not the SM: no checks, no store. `signWith` signs with another key (for badSignature cases).
 */
import { type KeyObject, randomBytes } from 'node:crypto';
import { encodeHandoverCommand, encodeHandoverCommandData } from '../../src/protocol/asn1/handover.ts';
import {
  encodeTransferPermission,
  encodeTransferPermissionData,
  encodeTransferPermissionMessage,
  type ProfileSwitch,
  readTransferPermission,
} from '../../src/protocol/asn1/permission.ts';
import {
  encodeConfirmProfileSwitch,
  encodeConfirmProfileSwitchData,
} from '../../src/protocol/asn1/profile.ts';
import { decodeTransferRequest } from '../../src/protocol/asn1/request.ts';
import { encodeCancelPermission, encodeCancelPermissionData } from '../../src/protocol/asn1/results.ts';
import { ecdh } from '../../src/protocol/crypto/ecdh.ts';
import { ecdsaSign } from '../../src/protocol/crypto/ecdsa.ts';
import { generateKeyPair, publicKeyFromPoint } from '../../src/protocol/crypto/keys.ts';
import { readSingle } from '../../src/protocol/der/reader.ts';
import { deriveHandoverKeys, type HandoverKeys } from '../../src/protocol/handover-keys.ts';
import { type Certificate, parseCertificate } from '../../src/protocol/pki/certificate.ts';
import type { DevPki } from '../../src/protocol/pki/dev-pki.ts';

export interface TestSm {
  readonly smId: string;
  readonly certificate: Certificate;
  readonly privateKey: KeyObject;
}

export function smOf(pki: DevPki, smId: string): TestSm {
  const entry = pki.sms.get(smId);
  if (!entry) throw new Error(`no SM ${smId} in the dev PKI`);
  return { smId, ...entry };
}

interface SignOptions {
  /** Sign with this key instead of the SM's own. */
  readonly signWith?: KeyObject;
}

const sign = (sm: TestSm, data: Uint8Array, o: SignOptions) => ecdsaSign(o.signWith ?? sm.privateKey, data);

export interface PermissionFields extends SignOptions {
  readonly eid: string;
  readonly counterValue: number;
  readonly permissionId?: Uint8Array;
  /** Default: the SM itself (to build notCurrentSm cases, name another). */
  readonly currentSmId?: string;
  /** Default: the new SM's id. */
  readonly newSmId?: string;
  /** Default: the new SM's certificate. */
  readonly newSmCertificate?: Uint8Array;
  readonly notAfter?: Date;
  readonly profileSwitch?: ProfileSwitch;
}

/** A TransferPermissionMessage from `current` naming `next` as the new SM. */
export function transferPermissionMessage(current: TestSm, next: TestSm, f: PermissionFields): Uint8Array {
  const dataRaw = encodeTransferPermissionData({
    version: 1,
    permissionId: f.permissionId ?? new Uint8Array(randomBytes(16)),
    eid: f.eid,
    currentSmId: f.currentSmId ?? current.smId,
    newSmId: f.newSmId ?? next.smId,
    newSmAddress: `https://${next.smId}/`,
    counterValue: f.counterValue,
    notAfter: f.notAfter ?? new Date(Math.floor(Date.now() / 1000 + 86400) * 1000),
    ...(f.profileSwitch && { profileSwitch: f.profileSwitch }),
  });
  const permission = readTransferPermission(
    readSingle(encodeTransferPermission(dataRaw, sign(current, dataRaw, f)), 'TransferPermission'),
  );
  return encodeTransferPermissionMessage({
    permission,
    currentSmCertificate: current.certificate.der,
    newSmCertificate: f.newSmCertificate ?? next.certificate.der,
  });
}

export interface HandoverFields extends SignOptions {
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly newSmId?: string;
  readonly chipChallenge: Uint8Array;
  readonly otPkSm: Uint8Array;
  readonly keysetVersion?: number;
}

export function handoverCommand(newSm: TestSm, f: HandoverFields): Uint8Array {
  const dataRaw = encodeHandoverCommandData({
    permissionId: f.permissionId,
    eid: f.eid,
    newSmId: f.newSmId ?? newSm.smId,
    chipChallenge: f.chipChallenge,
    otPkSm: f.otPkSm,
    keysetVersion: f.keysetVersion ?? 1,
  });
  return encodeHandoverCommand(dataRaw, sign(newSm, dataRaw, f));
}

export interface HandoverAnswer {
  readonly command: Uint8Array;
  /** What the new SM derived: the chip's receipt must verify under keys.receiptKey. */
  readonly keys: HandoverKeys;
  readonly commandDataRaw: Uint8Array;
  readonly permissionId: Uint8Array;
  readonly chipChallenge: Uint8Array;
  readonly otPkSm: Uint8Array;
}

/** What a new SM does with a TransferRequest (§6.3, minus its checks): ECDH, KDF, HandoverCommand. */
export function answerTransferRequest(
  newSm: TestSm,
  transferRequest: Uint8Array,
  o: SignOptions & { keysetVersion?: number } = {},
): HandoverAnswer {
  const request = decodeTransferRequest(transferRequest);
  const { permission, chipChallenge, otPkChip } = request.data;
  // One-time keys are on the chip's curve, the curve of its certificate (PROTOCOL.md §2).
  const chipCurve = parseCertificate(request.chipCertificate).curve;
  if (!chipCurve) throw new Error('the chip certificate is not on a supported curve');
  const ot = generateKeyPair(chipCurve);
  const keysetVersion = o.keysetVersion ?? 1;
  const keys = deriveHandoverKeys(ecdh(ot.privateKey, publicKeyFromPoint(chipCurve, otPkChip)), {
    permissionId: permission.data.permissionId,
    eid: permission.data.eid,
    previousSmId: permission.data.currentSmId,
    newSmId: newSm.smId,
    keysetVersion,
  });
  const dataRaw = encodeHandoverCommandData({
    permissionId: permission.data.permissionId,
    eid: permission.data.eid,
    newSmId: newSm.smId,
    chipChallenge,
    otPkSm: ot.publicPoint,
    keysetVersion,
  });
  return {
    command: encodeHandoverCommand(dataRaw, sign(newSm, dataRaw, o)),
    keys,
    commandDataRaw: dataRaw,
    permissionId: permission.data.permissionId,
    chipChallenge,
    otPkSm: ot.publicPoint,
  };
}

export interface CancelFields extends SignOptions {
  readonly permissionId: Uint8Array;
  readonly eid: string;
  readonly counterValue: number;
  readonly currentSmId?: string;
}

export function cancelPermission(sm: TestSm, f: CancelFields): Uint8Array {
  const dataRaw = encodeCancelPermissionData({
    permissionId: f.permissionId,
    eid: f.eid,
    currentSmId: f.currentSmId ?? sm.smId,
    counterValue: f.counterValue,
  });
  return encodeCancelPermission(dataRaw, sign(sm, dataRaw, f));
}

export interface ConfirmFields extends SignOptions {
  readonly eid: string;
  readonly counterValue: number;
  readonly smId?: string;
}

export function confirmProfileSwitch(sm: TestSm, f: ConfirmFields): Uint8Array {
  const dataRaw = encodeConfirmProfileSwitchData({
    eid: f.eid,
    smId: f.smId ?? sm.smId,
    counterValue: f.counterValue,
  });
  return encodeConfirmProfileSwitch(dataRaw, sign(sm, dataRaw, f));
}
