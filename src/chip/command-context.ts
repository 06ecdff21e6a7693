/**
 * What every chip command handler shares: the state it reads, the chip's own key, the keys of
 * the certificates it holds (parsed once and cached), and the signed ChipResult it answers
 * with (PROTOCOL.md §5.6).
 */
import { createPrivateKey, type KeyObject, randomBytes } from 'node:crypto';
import { encodeChipResult, encodeChipResultData, type Outcome } from '../protocol/asn1/results.ts';
import type { Curve } from '../protocol/crypto/curves.ts';
import { ecdsaSign } from '../protocol/crypto/ecdsa.ts';
import {
  curveOfKey,
  loadPrivateKeyPem,
  p256Jwk,
  publicKeyFromSpki,
  publicPointOf,
} from '../protocol/crypto/keys.ts';
import {
  ecPkcs8PemParts,
  generateOneTimeKey,
  type OneTimeKeyPair,
  sec1Der,
} from '../protocol/crypto/one-time-key.ts';
import { keySigner, type Signer } from '../protocol/crypto/signer.ts';
import { type Certificate, parseCertificate } from '../protocol/pki/certificate.ts';
import { type ChipState, fromB64 } from './state.ts';

/** The chip's sources of randomness; injectable so tests can pin them. */
export interface ChipEnvironment {
  randomBytes(n: number): Uint8Array;
  /** otSK.chip / otPK.chip (PROTOCOL.md §6.2). */
  generateOneTimeKey(curve: Curve): OneTimeKeyPair;
}

export const defaultChipEnvironment: ChipEnvironment = {
  randomBytes: (n) => new Uint8Array(randomBytes(n)),
  generateOneTimeKey,
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
// state holds them as strings, so the strings are the cache keys (least recently used out).
const CACHE_LIMIT = 512;
function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const value = make();
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
  return value;
}

const signers = new Map<string, Signer>();
const certKeys = new Map<string, KeyObject>();
const certs = new Map<string, Certificate>();

/**
 * A PKCS#8 PEM EC key (named curve) built the fast way: a P-256 key that carries its public point
 * from JWK (~100 µs on OpenSSL 3.0), any other as SEC1 DER with the curve as parameters (~220 µs
 * for P-256), where OpenSSL decodes PKCS#8 itself in ~630 µs. That is what a chip farm pays for
 * every chip whose key is not cached. Undefined for anything else (SEC1 PEM, explicit
 * parameters, unknown curves): those take the general loader.
 */
function fastChipKey(
  pem: string,
): { key: KeyObject; curve: Curve; point: Uint8Array | undefined } | undefined {
  const parts = ecPkcs8PemParts(pem);
  if (!parts) return undefined;
  const { curve, scalar, point } = parts;
  try {
    const key =
      curve === 'p256' && point
        ? createPrivateKey({ key: p256Jwk(point, scalar), format: 'jwk' })
        : createPrivateKey({ key: Buffer.from(sec1Der(curve, scalar, point)), format: 'der', type: 'sec1' });
    if (curveOfKey(key) !== curve) return undefined;
    return { key, curve, point };
  } catch {
    return undefined;
  }
}

/** The chip's signing key behind the Signer seam (ARCHITECTURE.md). */
export function chipSigner(state: ChipState): Signer {
  return cached(signers, state.chipPrivateKey, () => {
    const fast = fastChipKey(state.chipPrivateKey);
    if (!fast) return keySigner(loadPrivateKeyPem(state.chipPrivateKey));
    const { key, curve } = fast;
    let point = fast.point;
    return {
      curve,
      // Computed on first use only: exporting a public key costs as much as a signature.
      get publicPoint(): Uint8Array {
        point ??= publicPointOf(key);
        return point;
      },
      sign: (data) => ecdsaSign(key, data, 'plain'),
    };
  });
}

/** A certificate (base64 DER) the chip stores, parsed. */
export function storedCertificate(b64: string): Certificate {
  return cached(certs, b64, () => parseCertificate(fromB64(b64)));
}

/** The public key of a certificate the chip stores (its assigned or pending SM). */
export function certificateKey(b64: string): KeyObject {
  return cached(certKeys, b64, () => publicKeyFromSpki(storedCertificate(b64).spki));
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
