/**
 * Peer SMs: a peer is known when the directory lists it, and trusted only while its SM
 * certificate validates to a configured CI, as an SM certificate whose CN is its SM id (§3, §6.1).
 */
import type { KeyObject } from 'node:crypto';
import { type Certificate, CertificateError, parseCertificateCached } from '../protocol/pki/certificate.ts';
import { validateChain } from '../protocol/pki/validate.ts';
import type { SmContext } from './config.ts';
import { SmError } from './errors.ts';

export interface TrustedPeer {
  readonly smId: string;
  readonly address: string;
  readonly certificate: Uint8Array;
}

/** Validates an SM certificate (DER) for `smId` at `at`; PeerCertificateInvalid with the reason otherwise. */
export function validateSmCertificate(
  ctx: SmContext,
  der: Uint8Array,
  smId: string,
  at: Date,
): { publicKey: KeyObject; certificate: Certificate } {
  try {
    const certificate = parseCertificateCached(der);
    const chain = validateChain([certificate], { trusted: ctx.trustedCis, at, expectRole: 'sm' });
    if (chain.smId !== smId) {
      throw new SmError(
        'PeerCertificateInvalid',
        `the SM certificate is for "${chain.smId}", not "${smId}"`,
        {
          smId,
          reason: 'smIdMismatch',
        },
      );
    }
    return { publicKey: chain.publicKey, certificate };
  } catch (e) {
    if (e instanceof CertificateError) {
      throw new SmError(
        'PeerCertificateInvalid',
        `the certificate of SM "${smId}" is not valid: ${e.message}`,
        {
          smId,
          reason: e.reason,
        },
      );
    }
    throw e;
  }
}

/** A peer from the directory whose certificate validates now; UnknownPeer or PeerCertificateInvalid otherwise. */
export function requirePeer(ctx: SmContext, smId: string, at: Date): TrustedPeer {
  const entry = smId === ctx.smId ? undefined : ctx.directory.get(smId);
  if (!entry) throw new SmError('UnknownPeer', `"${smId}" is not a peer SM in this SM's directory`, { smId });
  validateSmCertificate(ctx, entry.certificate, smId, at);
  return { smId, address: entry.address, certificate: entry.certificate };
}
