/**
 * ExecuteHandover (PROTOCOL.md §6.4): the commit point. The chip checks the new SM's
 * HandoverCommand against its pending transfer, derives the keys, and in one state write moves
 * its assignment to the new SM, answering with the chip-signed HandoverResult and its receipt.
 */
import { timingSafeEqual } from 'node:crypto';
import {
  decodeHandoverCommand,
  encodeHandoverResult,
  encodeHandoverResultData,
} from '../protocol/asn1/handover.ts';
import { decodeTransferPermissionMessage } from '../protocol/asn1/permission.ts';
import type { Outcome } from '../protocol/asn1/results.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { oneTimeKeyFromPem } from '../protocol/crypto/one-time-key.ts';
import { CryptoError, MalformedMessage } from '../protocol/errors.ts';
import { computeReceipt, establishKeys, type HandoverKeys } from '../protocol/handover-keys.ts';
import {
  type CommandContext,
  certificateKey,
  chipSigner,
  type Handled,
  refuse,
  without,
} from './command-context.ts';
import { applyProfileSwitch } from './profile-switch.ts';
import { type ChipState, fromB64, fromHex, toB64, toHex } from './state.ts';

export function executeHandover(ctx: CommandContext): Handled {
  const { state, command } = ctx;
  let handover: ReturnType<typeof decodeHandoverCommand>;
  try {
    handover = decodeHandoverCommand(command);
  } catch (e) {
    if (e instanceof MalformedMessage) return refuse(ctx, 'malformed');
    throw e;
  }
  const data = handover.data;
  const permissionIdHex = toHex(data.permissionId);
  const no = (outcome: Exclude<Outcome, 'ok'>) => refuse(ctx, outcome, data.permissionId);
  const pending = state.pending;

  // A different command for a permission already committed (the identical one got lastResult).
  if (state.lastHandoverPermissionId === permissionIdHex && pending?.permissionId !== permissionIdHex) {
    return no('alreadyApplied');
  }
  if (
    !pending ||
    pending.permissionId !== permissionIdHex ||
    data.eid !== state.eid ||
    data.newSmId !== pending.newSmId
  ) {
    return no('noPending');
  }
  if (!timingSafeEqual(fromHex(pending.chipChallenge), data.chipChallenge)) return no('challengeMismatch');
  if (!ecdsaVerify(certificateKey(pending.newSmCertificate), handover.dataRaw, handover.signature)) {
    return no('badSignature');
  }

  let keys: HandoverKeys;
  // otSK.chip is read for this one use, never cached, and its scalar wiped after.
  const otSkChip = oneTimeKeyFromPem(pending.otSkChip);
  try {
    keys = establishKeys(otSkChip, data.otPkSm, {
      permissionId: data.permissionId,
      eid: state.eid,
      previousSmId: state.assignment.smId,
      newSmId: pending.newSmId,
      keysetVersion: data.keysetVersion,
    });
  } catch (e) {
    // otPK.SM is not a point on the chip's curve.
    if (e instanceof CryptoError) return no('malformed');
    throw e;
  } finally {
    otSkChip.scalar.fill(0);
  }
  const receipt = computeReceipt(keys.receiptKey, handover.dataRaw);
  keys.receiptKey.fill(0);

  const resultRaw = encodeHandoverResultData({
    permissionId: data.permissionId,
    eid: state.eid,
    previousSmId: state.assignment.smId,
    newSmId: pending.newSmId,
    receipt,
  });
  const response = encodeHandoverResult(resultRaw, chipSigner(state).sign(resultRaw));

  const profileSwitch = decodeTransferPermissionMessage(fromB64(pending.permissionMessage)).permission.data
    .profileSwitch;
  const { keyset } = keys;
  // One state: the old SM's certificate and keyset, the pending transfer and otSK.chip are gone.
  const next: ChipState = {
    ...without(state, 'pending', 'unconfirmedSwitch'),
    assignment: {
      smId: pending.newSmId,
      smCertificate: pending.newSmCertificate,
      counter: 0,
      keyset: {
        version: keyset.version,
        sEnc: toHex(keyset.sEnc),
        sMac: toHex(keyset.sMac),
        initialMcv: toHex(keyset.initialMcv),
      },
    },
    ...applyProfileSwitch(state, permissionIdHex, profileSwitch),
    lastHandoverPermissionId: permissionIdHex,
    lastResult: { command: toB64(command), response: toB64(response) },
  };
  keyset.sEnc.fill(0);
  keyset.sMac.fill(0);
  keyset.initialMcv.fill(0);
  return { response, state: next, answer: 'HandoverResult', outcome: 'ok', repeated: false };
}
