/**
 * Test helper for SM tests: the chip side of the protocol reduced to signing with a chip key
 * from the test PKI (no chip state, no §6.2 checks: the real chip lives in src/chip, which SM
 * code never imports). Each function builds one chip-signed message, optionally spoiled.
 */
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import {
  decodeHandoverCommand,
  encodeHandoverResult,
  encodeHandoverResultData,
} from '../../src/protocol/asn1/handover.ts';
import {
  decodeTransferPermissionMessage,
  encodeTransferPermission,
  encodeTransferPermissionData,
  encodeTransferPermissionMessage,
  readTransferPermission,
} from '../../src/protocol/asn1/permission.ts';
import { encodeTransferRequest, encodeTransferRequestData } from '../../src/protocol/asn1/request.ts';
import { encodeChipResult, encodeChipResultData, type Outcome } from '../../src/protocol/asn1/results.ts';
import { ecdh } from '../../src/protocol/crypto/ecdh.ts';
import { ecdsaSign } from '../../src/protocol/crypto/ecdsa.ts';
import { curveOfKey, generateKeyPair, publicKeyFromPoint } from '../../src/protocol/crypto/keys.ts';
import { readSingle } from '../../src/protocol/der/reader.ts';
import { computeReceipt, deriveHandoverKeys } from '../../src/protocol/handover-keys.ts';
import { issueChip } from '../../src/protocol/pki/issue.ts';
import type { SmWorld } from './sm-world.ts';

export interface TestChipKeys {
  readonly eid: string;
  readonly key: KeyObject;
  readonly chipCertificate: Uint8Array;
  readonly eumCertificate: Uint8Array;
}

export function issueTestChip(world: SmWorld, eid: string): TestChipKeys {
  const issued = issueChip({ issuerCert: world.eum.certificate, issuerKey: world.eum.privateKey, eid });
  return {
    eid,
    key: issued.privateKey,
    chipCertificate: issued.certificate.der,
    eumCertificate: world.eum.certificate.der,
  };
}

export const registration = (chip: TestChipKeys) => ({
  chipCertificate: chip.chipCertificate,
  eumCertificate: chip.eumCertificate,
});

/** What a chip keeps between its TransferRequest and the HandoverCommand (a slice of §4 `pending`). */
export interface PendingTransfer {
  readonly request: Uint8Array;
  readonly permissionMessage: Uint8Array;
  readonly otPrivate: KeyObject;
  readonly chipChallenge: Uint8Array;
}

export interface RequestOptions {
  readonly newSmId?: string;
  /** Sign with this key instead of the chip's. */
  readonly signWith?: KeyObject;
  /** Use these certificates in place of the chip's. */
  readonly chipCertificate?: Uint8Array;
  readonly eumCertificate?: Uint8Array;
  readonly currentSmCertificate?: Uint8Array;
  readonly otPkChip?: Uint8Array;
}

/** The chip-signed TransferRequest answering a TransferPermissionMessage. */
export function transferRequest(
  chip: TestChipKeys,
  permissionMessage: Uint8Array,
  o: RequestOptions = {},
): PendingTransfer {
  const m = decodeTransferPermissionMessage(permissionMessage);
  const ot = generateKeyPair(curveOfKey(chip.key));
  const chipChallenge = new Uint8Array(randomBytes(16));
  const dataRaw = encodeTransferRequestData({
    permission: m.permission,
    newSmId: o.newSmId ?? m.permission.data.newSmId,
    chipChallenge,
    otPkChip: o.otPkChip ?? ot.publicPoint,
  });
  const request = encodeTransferRequest(dataRaw, ecdsaSign(o.signWith ?? chip.key, dataRaw), {
    chipCertificate: o.chipCertificate ?? chip.chipCertificate,
    eumCertificate: o.eumCertificate ?? chip.eumCertificate,
    currentSmCertificate: o.currentSmCertificate ?? m.currentSmCertificate,
  });
  return { request, permissionMessage, otPrivate: ot.privateKey, chipChallenge };
}

export interface ResultOptions {
  readonly signWith?: KeyObject;
  readonly receipt?: Uint8Array;
  readonly previousSmId?: string;
  readonly newSmId?: string;
}

/** The chip-signed HandoverResult for a HandoverCommand, with the receipt computed as §2 says. */
export function handoverResult(
  chip: TestChipKeys,
  pending: PendingTransfer,
  command: Uint8Array,
  o: ResultOptions = {},
): Uint8Array {
  const cmd = decodeHandoverCommand(command);
  const pd = decodeTransferPermissionMessage(pending.permissionMessage).permission.data;
  const keys = deriveHandoverKeys(
    ecdh(pending.otPrivate, publicKeyFromPoint(curveOfKey(chip.key), cmd.data.otPkSm)),
    {
      permissionId: pd.permissionId,
      eid: pd.eid,
      previousSmId: pd.currentSmId,
      newSmId: pd.newSmId,
      keysetVersion: cmd.data.keysetVersion,
    },
  );
  const dataRaw = encodeHandoverResultData({
    permissionId: pd.permissionId,
    eid: pd.eid,
    previousSmId: o.previousSmId ?? pd.currentSmId,
    newSmId: o.newSmId ?? pd.newSmId,
    receipt: o.receipt ?? computeReceipt(keys.receiptKey, cmd.dataRaw),
  });
  return encodeHandoverResult(dataRaw, ecdsaSign(o.signWith ?? chip.key, dataRaw));
}

export function chipResult(
  chip: TestChipKeys,
  f: { permissionId?: Uint8Array; assignedSmId: string; outcome: Outcome; signWith?: KeyObject },
): Uint8Array {
  const dataRaw = encodeChipResultData({
    eid: chip.eid,
    ...(f.permissionId && { permissionId: f.permissionId }),
    assignedSmId: f.assignedSmId,
    outcome: f.outcome,
  });
  return encodeChipResult(dataRaw, ecdsaSign(f.signWith ?? chip.key, dataRaw));
}

export const permissionIdOf = (permissionMessage: Uint8Array): Uint8Array =>
  decodeTransferPermissionMessage(permissionMessage).permission.data.permissionId;

export interface PermissionFields {
  readonly eid: string;
  readonly currentSmId: string;
  readonly newSmId: string;
  readonly currentSmCertificate: Uint8Array;
  readonly newSmCertificate: Uint8Array;
  readonly signWith: KeyObject;
  readonly notAfter: Date;
  readonly counterValue?: number;
  readonly activationCodeHash?: Uint8Array;
}

/** A TransferPermissionMessage built by hand (an SM other than the one under test, or a forgery). */
export function permissionMessage(f: PermissionFields): Uint8Array {
  const dataRaw = encodeTransferPermissionData({
    version: 1,
    permissionId: new Uint8Array(randomBytes(16)),
    eid: f.eid,
    currentSmId: f.currentSmId,
    newSmId: f.newSmId,
    newSmAddress: `https://${f.newSmId}/handover`,
    counterValue: f.counterValue ?? 1,
    notAfter: f.notAfter,
    ...(f.activationCodeHash && { activationCodeHash: f.activationCodeHash }),
  });
  const raw = encodeTransferPermission(dataRaw, ecdsaSign(f.signWith, dataRaw));
  return encodeTransferPermissionMessage({
    permission: readTransferPermission(readSingle(raw, 'TransferPermission')),
    currentSmCertificate: f.currentSmCertificate,
    newSmCertificate: f.newSmCertificate,
  });
}
