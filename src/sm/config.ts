/**
 * What a SubscriptionManager is built from, checked once at construction: its own certificate
 * must validate as an SM certificate whose CN is the SM id and whose key is the signer's.
 */
import { randomBytes } from 'node:crypto';
import type { Signer } from '../protocol/crypto/signer.ts';
import { bytesEqual, type Certificate, parseCertificate } from '../protocol/pki/certificate.ts';
import { validateChain } from '../protocol/pki/validate.ts';
import { DEFAULT_SCRYPT, type ScryptParams } from './domain/locks.ts';
import { SmError } from './errors.ts';
import type { SmStore } from './store/types.ts';

export interface OperatorConfig {
  readonly id: string;
  /** Whether a new SM's ask for this operator's chips waits for the operator's approval (§6.1). */
  readonly approvalRequired: boolean;
  /**
   * Whether the operator has a webhook. false: its notifications are recorded already settled as
   * refused (WebhookNotConfigured), as there is nothing to deliver; undefined: every notification
   * is left to the outbox's notifier (in-process SMs, tests).
   */
  readonly webhook?: boolean;
}

export interface PeerEntry {
  /** https base URL; also the newSmAddress put into permissions naming this SM. */
  readonly address: string;
  /** The peer's SM certificate (DER). */
  readonly certificate: Uint8Array;
}

export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
}

export interface SubscriptionManagerOptions {
  readonly smId: string;
  readonly signer: Signer;
  /** This SM's certificate (DER, SM role, CN = smId). */
  readonly certificate: Uint8Array;
  readonly trustedCis: readonly Certificate[];
  readonly store: SmStore;
  readonly clock?: () => Date;
  /** CSPRNG: permissionIds, ids, salts. */
  readonly random?: (n: number) => Uint8Array;
  /** notAfter = now + this (PROTOCOL.md §6.1: default 24 h). Also the approval deadline. */
  readonly permissionValidityMs?: number;
  /** How long a port-in order waits for its transfer request (default 7 days). */
  readonly orderValidityMs?: number;
  readonly operators: readonly OperatorConfig[];
  readonly directory: ReadonlyMap<string, PeerEntry> | Readonly<Record<string, PeerEntry>>;
  readonly unlockScrypt?: ScryptParams;
  readonly outboxBackoff?: Backoff;
}

export interface SmContext {
  readonly smId: string;
  readonly signer: Signer;
  readonly certificate: Uint8Array;
  readonly trustedCis: readonly Certificate[];
  readonly store: SmStore;
  readonly clock: () => Date;
  readonly random: (n: number) => Uint8Array;
  readonly permissionValidityMs: number;
  readonly orderValidityMs: number;
  readonly operators: ReadonlyMap<string, OperatorConfig>;
  readonly directory: ReadonlyMap<string, PeerEntry>;
  readonly unlockScrypt: ScryptParams;
  readonly backoff: Backoff;
}

const HOUR = 3_600_000;
export const DEFAULT_PERMISSION_VALIDITY_MS = 24 * HOUR;
export const DEFAULT_ORDER_VALIDITY_MS = 7 * 24 * HOUR;
export const DEFAULT_BACKOFF: Backoff = { baseMs: 1000, maxMs: HOUR };

function config(message: string, details: Record<string, unknown> = {}): SmError {
  return new SmError('InvalidInput', `SM configuration: ${message}`, details);
}

function checkAddress(smId: string, address: string): void {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw config(`peer ${smId} has an address that is not a URL`, { smId });
  }
  if (url.protocol !== 'https:') throw config(`peer ${smId} must have an https address`, { smId });
  if (Buffer.byteLength(address, 'utf8') > 255)
    throw config(`peer ${smId} address is over 255 bytes`, { smId });
}

export function createContext(o: SubscriptionManagerOptions): SmContext {
  const clock = o.clock ?? (() => new Date());
  let own: Certificate;
  try {
    own = parseCertificate(o.certificate);
    const chain = validateChain([own], { trusted: o.trustedCis, at: clock(), expectRole: 'sm' });
    if (chain.smId !== o.smId)
      throw config(`the certificate's CN "${chain.smId}" is not the SM id "${o.smId}"`);
  } catch (e) {
    if (e instanceof SmError) throw e;
    throw config(`own certificate does not validate as an SM certificate: ${(e as Error).message}`);
  }
  if (!bytesEqual(own.publicPoint, o.signer.publicPoint))
    throw config("the signer's key is not the certificate's");
  const directory = new Map(o.directory instanceof Map ? o.directory : Object.entries(o.directory));
  for (const [smId, entry] of directory) checkAddress(smId, entry.address);
  const validity = o.permissionValidityMs ?? DEFAULT_PERMISSION_VALIDITY_MS;
  if (!Number.isFinite(validity) || validity < 1000) throw config('permissionValidityMs is at least 1000');
  const operators = new Map<string, OperatorConfig>();
  for (const op of o.operators) {
    if (operators.has(op.id)) throw config(`operator ${op.id} is listed twice`);
    operators.set(op.id, op);
  }
  return {
    smId: o.smId,
    signer: o.signer,
    certificate: Uint8Array.from(o.certificate),
    trustedCis: o.trustedCis,
    store: o.store,
    clock,
    random: o.random ?? ((n) => new Uint8Array(randomBytes(n))),
    permissionValidityMs: validity,
    orderValidityMs: o.orderValidityMs ?? DEFAULT_ORDER_VALIDITY_MS,
    operators,
    directory,
    unlockScrypt: o.unlockScrypt ?? DEFAULT_SCRYPT,
    backoff: o.outboxBackoff ?? DEFAULT_BACKOFF,
  };
}
