/**
 * What every chip command handler shares: the state it reads, the chip's own key, the keys of
 * the certificates it holds (parsed once and cached), and the signed ChipResult it answers
 * with (PROTOCOL.md §5.6).
 */
import { createPublicKey, type KeyObject, randomBytes } from 'node:crypto';
import { encodeChipResult, encodeChipResultData, type Outcome } from '../protocol/asn1/results.ts';
import type { Curve } from '../protocol/crypto/curves.ts';
import { type EcKeyPair, generateKeyPair, loadPrivateKeyPem } from '../protocol/crypto/keys.ts';
import { keySigner, type Signer } from '../protocol/crypto/signer.ts';
import { type Certificate, parseCertificate } from '../protocol/pki/certificate.ts';
import { type ChipState, fromB64 } from './state.ts';

/** The chip's sources of randomness; injectable so tests can pin them. */
export interface ChipEnvironment {
  randomBytes(n: number): Uint8Array;
  generateKeyPair(curve: Curve): EcKeyPair;
}

export const defaultChipEnvironment: ChipEnvironment = {
  randomBytes: (n) => new Uint8Array(randomBytes(n)),
  generateKeyPair,
};

export type CommandName =
  | 'LoadTransferPermission'
  | 'ExecuteHandover'
  | 'CancelPermission'
  | 'GetChipInfo'
  | 'ConfirmProfileSwitch'
  | 'ProfileRollback';

export type AnswerType = 'TransferRequest' | 'HandoverResult' | 'ChipResult' | 'ChipInfo';

/** A handler's answer: the DER to send back and the state after the command. */
export interface Handled {
  readonly response: Uint8Array;
  /** The same object as the input state when the command changed nothing. */
  readonly state: ChipState;
  readonly answer: AnswerType;
  /** The ChipResult outcome; 'ok' for TransferRequest, HandoverResult and ChipInfo. */
  readonly outcome: Outcome;
  /** True when the answer is a stored one, returned again for a repeated command (§6.6). */
  readonly repeated: boolean;
}

export interface CommandContext {
  readonly state: ChipState;
  /** The command's DER exactly as received. */
  readonly command: Uint8Array;
  readonly env: ChipEnvironment;
}

// Parsing PEM keys and certificates on every command would dominate a chip farm's time; the
// state holds them as strings, so the strings are the cache keys.
const CACHE_LIMIT = 512;
function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const value = make();
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
  return value;
}

const signers = new Map<string, Signer>();
const certKeys = new Map<string, KeyObject>();
const certs = new Map<string, Certificate>();

/** The chip's signing key behind the Signer seam (ARCHITECTURE.md). */
export function chipSigner(state: ChipState): Signer {
  return cached(signers, state.chipPrivateKey, () => keySigner(loadPrivateKeyPem(state.chipPrivateKey)));
}

/** A certificate (base64 DER) the chip stores, parsed. */
export function storedCertificate(b64: string): Certificate {
  return cached(certs, b64, () => parseCertificate(fromB64(b64)));
}

/** The public key of a certificate the chip stores (its assigned or pending SM). */
export function certificateKey(b64: string): KeyObject {
  return cached(certKeys, b64, () =>
    createPublicKey({ key: Buffer.from(storedCertificate(b64).spki), format: 'der', type: 'spki' }),
  );
}

export function trustedCis(state: ChipState): Certificate[] {
  return state.ciCertificates.map(storedCertificate);
}

/** A chip-signed ChipResult: outcome, own EID, the assignment after the command. */
export function chipResult(state: ChipState, outcome: Outcome, permissionId?: Uint8Array): Uint8Array {
  const dataRaw = encodeChipResultData({
    eid: state.eid,
    ...(permissionId && { permissionId }),
    assignedSmId: state.assignment.smId,
    outcome,
  });
  return encodeChipResult(dataRaw, chipSigner(state).sign(dataRaw));
}

/** A refusal: signed ChipResult, state unchanged (PROTOCOL.md §6.2). */
export function refuse(
  ctx: CommandContext,
  outcome: Exclude<Outcome, 'ok'>,
  permissionId?: Uint8Array,
): Handled {
  return {
    response: chipResult(ctx.state, outcome, permissionId),
    state: ctx.state,
    answer: 'ChipResult',
    outcome,
    repeated: false,
  };
}

/** A state without the given optional properties (for clearing `pending` and friends). */
export function without<K extends keyof ChipState>(state: ChipState, ...keys: K[]): ChipState {
  const copy: Partial<Record<keyof ChipState, unknown>> = { ...state };
  for (const k of keys) delete copy[k];
  return copy as ChipState;
}
