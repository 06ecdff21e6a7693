/**
 * LoadTransferPermission (PROTOCOL.md §6.2): the chip checks the current SM's permission and
 * answers the new SM with a chip-signed TransferRequest.
 */
import { decodeTransferPermissionMessage } from '../protocol/asn1/permission.ts';
import { encodeTransferRequest, encodeTransferRequestData } from '../protocol/asn1/request.ts';
import type { Outcome } from '../protocol/asn1/results.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { oneTimeKeyToPem } from '../protocol/crypto/one-time-key.ts';
import { CryptoError, MalformedMessage } from '../protocol/errors.ts';
import {
  bytesEqual,
  type Certificate,
  CertificateError,
  parseCertificate,
} from '../protocol/pki/certificate.ts';
import { validateChain } from '../protocol/pki/validate.ts';
import {
  type CommandContext,
  certificateKey,
  chipSigner,
  type Handled,
  refuse,
  trustedCis,
} from './command-context.ts';
import { type ChipState, fromB64, toB64, toHex } from './state.ts';

export const CHIP_CHALLENGE_SIZE = 16;

export function loadTransferPermission(ctx: CommandContext): Handled {
  const { state, command, env } = ctx;
  // The same message again, byte for byte, while it is pending: the stored answer, no new
  // challenge, checked before anything else.
  if (state.pending && bytesEqual(fromB64(state.pending.permissionMessage), command)) {
    return {
      response: fromB64(state.pending.transferRequest),
      state,
      answer: 'TransferRequest',
      outcome: 'ok',
      repeated: true,
    };
  }

  let message: ReturnType<typeof decodeTransferPermissionMessage>;
  try {
    message = decodeTransferPermissionMessage(command);
  } catch (e) {
    if (e instanceof MalformedMessage) return refuse(ctx, 'malformed');
    throw e;
  }
  const { permission, newSmCertificate } = message;
  const data = permission.data;
  const no = (outcome: Exclude<Outcome, 'ok'>) => refuse(ctx, outcome, data.permissionId);

  if (data.eid !== state.eid) return no('invalidEid');
  if (data.currentSmId !== state.assignment.smId) return no('notCurrentSm');
  if (
    !ecdsaVerify(certificateKey(state.assignment.smCertificate), permission.dataRaw, permission.signature)
  ) {
    return no('badSignature');
  }
  if (data.counterValue <= state.assignment.counter) return no('replay');
  const certificateProblem = checkNewSmCertificate(state, newSmCertificate, data.newSmId);
  if (certificateProblem) return no(certificateProblem);
  if (state.pending) return no('pendingExists');

  const ot = env.generateOneTimeKey(state.curve);
  const chipChallenge = env.randomBytes(CHIP_CHALLENGE_SIZE);
  const dataRaw = encodeTransferRequestData({
    permission,
    newSmId: data.newSmId,
    chipChallenge,
    otPkChip: ot.publicPoint,
  });
  const transferRequest = encodeTransferRequest(dataRaw, chipSigner(state).sign(dataRaw), {
    chipCertificate: fromB64(state.chipCertificate),
    eumCertificate: fromB64(state.eumCertificate),
    currentSmCertificate: fromB64(state.assignment.smCertificate),
  });
  const next: ChipState = {
    ...state,
    assignment: { ...state.assignment, counter: data.counterValue },
    pending: {
      permissionId: toHex(data.permissionId),
      permissionMessage: toB64(command),
      newSmId: data.newSmId,
      newSmCertificate: toB64(newSmCertificate),
      counterValue: data.counterValue,
      chipChallenge: toHex(chipChallenge),
      otSkChip: oneTimeKeyToPem(ot),
      transferRequest: toB64(transferRequest),
    },
  };
  return {
    response: transferRequest,
    state: next,
    answer: 'TransferRequest',
    outcome: 'ok',
    repeated: false,
  };
}

/**
 * The new SM's certificate: chains to one of the chip's CI certificates (no date check: the
 * chip has no clock), SM role, CN = newSmId, on a curve the chip holds a CI for.
 */
function checkNewSmCertificate(
  state: ChipState,
  der: Uint8Array,
  newSmId: string,
): 'badCertificate' | 'wrongRole' | 'unsupportedCurve' | undefined {
  let cert: Certificate;
  try {
    cert = parseCertificate(der);
  } catch (e) {
    if (e instanceof CertificateError || e instanceof MalformedMessage) return 'badCertificate';
    throw e;
  }
  const cis = trustedCis(state);
  const held = (curve: Certificate['curve']) => cis.some((ci) => curve !== undefined && ci.curve === curve);
  let chain: ReturnType<typeof validateChain>;
  try {
    chain = validateChain([cert], { trusted: cis, expectRole: 'sm' });
  } catch (e) {
    if (!(e instanceof CertificateError || e instanceof CryptoError || e instanceof MalformedMessage))
      throw e;
    if (e instanceof CertificateError && e.reason === 'wrongRole') return 'wrongRole';
    if (e instanceof CertificateError && e.reason === 'unsupportedCurve') return 'unsupportedCurve';
    // It does not chain because the chip has no CI on its curve: that is the curve's fault.
    if (!held(cert.curve)) return 'unsupportedCurve';
    return 'badCertificate';
  }
  if (chain.smId !== newSmId) return 'badCertificate';
  if (!held(chain.curve)) return 'unsupportedCurve';
  return undefined;
}
