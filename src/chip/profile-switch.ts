/**
 * Profile switch (PROTOCOL.md §7): applied in the commit write of a handover, confirmed by the
 * new SM (ConfirmProfileSwitch) or undone once by the device agent (ProfileRollback).
 */
import type { ProfileSwitch } from '../protocol/asn1/permission.ts';
import { decodeConfirmProfileSwitch, decodeProfileRollback } from '../protocol/asn1/profile.ts';
import type { Outcome } from '../protocol/asn1/results.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { MalformedMessage } from '../protocol/errors.ts';
import {
  type CommandContext,
  certificateKey,
  chipResult,
  type Handled,
  refuse,
  without,
} from './command-context.ts';
import { type ChipState, fromHex, type ProfileState, toB64 } from './state.ts';

/**
 * Disables `disableIccid` and enables `enableIccid`. The simulated chip has no profile download,
 * so a profile to enable that it does not hold is added (enabled).
 */
export function switchProfiles(
  profiles: readonly ProfileState[],
  disableIccid: string,
  enableIccid: string,
): ProfileState[] {
  const out = profiles.map((p): ProfileState => {
    if (p.iccid === disableIccid) return { ...p, state: 'disabled' };
    if (p.iccid === enableIccid) return { ...p, state: 'enabled' };
    return p;
  });
  if (!out.some((p) => p.iccid === enableIccid)) out.push({ iccid: enableIccid, state: 'enabled' });
  return out;
}

/**
 * The profile part of the commit write: apply the permission's switch, if any, and mark it
 * unconfirmed when it may be rolled back. A switch left unconfirmed by the previous SM ends here:
 * only the assigned SM could confirm it.
 */
export function applyProfileSwitch(
  state: ChipState,
  permissionIdHex: string,
  profileSwitch: ProfileSwitch | undefined,
): Pick<ChipState, 'profiles' | 'unconfirmedSwitch'> {
  if (!profileSwitch) return { profiles: state.profiles };
  const profiles = switchProfiles(state.profiles, profileSwitch.disableIccid, profileSwitch.enableIccid);
  if (!profileSwitch.rollbackOnFailure) return { profiles };
  return {
    profiles,
    unconfirmedSwitch: {
      permissionId: permissionIdHex,
      disableIccid: profileSwitch.disableIccid,
      enableIccid: profileSwitch.enableIccid,
    },
  };
}

/** ConfirmProfileSwitch: the assigned SM says the new profile works; rollback is no longer possible. */
export function confirmProfileSwitch(ctx: CommandContext): Handled {
  const { state, command } = ctx;
  let confirm: ReturnType<typeof decodeConfirmProfileSwitch>;
  try {
    confirm = decodeConfirmProfileSwitch(command);
  } catch (e) {
    if (e instanceof MalformedMessage) return refuse(ctx, 'malformed');
    throw e;
  }
  const data = confirm.data;
  const no = (outcome: Exclude<Outcome, 'ok'>) => refuse(ctx, outcome);
  if (data.eid !== state.eid) return no('invalidEid');
  if (data.smId !== state.assignment.smId) return no('notCurrentSm');
  if (!ecdsaVerify(certificateKey(state.assignment.smCertificate), confirm.dataRaw, confirm.signature)) {
    return no('badSignature');
  }
  if (data.counterValue <= state.assignment.counter) return no('replay');
  const unconfirmed = state.unconfirmedSwitch;
  if (!unconfirmed) return no('noPending');

  const after = without(state, 'unconfirmedSwitch');
  const next0: ChipState = { ...after, assignment: { ...state.assignment, counter: data.counterValue } };
  const response = chipResult(next0, 'ok', fromHex(unconfirmed.permissionId));
  const next: ChipState = { ...next0, lastResult: { command: toB64(command), response: toB64(response) } };
  return { response, state: next, answer: 'ChipResult', outcome: 'ok', repeated: false };
}

/**
 * ProfileRollback (unsigned, from the device agent): re-enable the old profile, disable the new
 * one; the assignment stays with the new SM. Accepted once, never after confirmation.
 */
export function profileRollback(ctx: CommandContext): Handled {
  const { state, command } = ctx;
  try {
    decodeProfileRollback(command);
  } catch (e) {
    if (e instanceof MalformedMessage) return refuse(ctx, 'malformed');
    throw e;
  }
  const unconfirmed = state.unconfirmedSwitch;
  if (!unconfirmed) return refuse(ctx, 'noPending');
  const next: ChipState = {
    ...without(state, 'unconfirmedSwitch'),
    profiles: switchProfiles(state.profiles, unconfirmed.enableIccid, unconfirmed.disableIccid),
  };
  const response = chipResult(next, 'ok', fromHex(unconfirmed.permissionId));
  return { response, state: next, answer: 'ChipResult', outcome: 'ok', repeated: false };
}
