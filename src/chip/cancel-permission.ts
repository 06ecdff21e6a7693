/**
 * CancelPermission (PROTOCOL.md §5.5, §6.6): the current SM withdraws an unused permission. The
 * chip-signed answer tells it whether the chip is still its own (ok) or already moved
 * (notCurrentSm, with assignedSmId naming the new SM).
 */

import type { Outcome } from '../protocol/asn1/results.ts';
import { decodeCancelPermission } from '../protocol/asn1/results.ts';
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
import { type ChipState, toB64, toHex } from './state.ts';

export function cancelPermission(ctx: CommandContext): Handled {
  const { state, command } = ctx;
  let cancel: ReturnType<typeof decodeCancelPermission>;
  try {
    cancel = decodeCancelPermission(command);
  } catch (e) {
    if (e instanceof MalformedMessage) return refuse(ctx, 'malformed');
    throw e;
  }
  const data = cancel.data;
  const no = (outcome: Exclude<Outcome, 'ok'>) => refuse(ctx, outcome, data.permissionId);
  if (data.eid !== state.eid) return no('invalidEid');
  if (data.currentSmId !== state.assignment.smId) return no('notCurrentSm');
  if (!ecdsaVerify(certificateKey(state.assignment.smCertificate), cancel.dataRaw, cancel.signature)) {
    return no('badSignature');
  }
  if (data.counterValue <= state.assignment.counter) return no('replay');
  if (state.pending?.permissionId !== toHex(data.permissionId)) return no('noPending');

  // otSK.chip leaves the state with `pending`.
  const cleared: ChipState = {
    ...without(state, 'pending'),
    assignment: { ...state.assignment, counter: data.counterValue },
  };
  const response = chipResult(cleared, 'ok', data.permissionId);
  const next: ChipState = { ...cleared, lastResult: { command: toB64(command), response: toB64(response) } };
  return { response, state: next, answer: 'ChipResult', outcome: 'ok', repeated: false };
}
