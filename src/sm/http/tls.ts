/**
 * TLS for an SM (ARCHITECTURE.md "HTTP"): one HTTPS listener whose certificate is the SM
 * certificate; a client certificate is asked for but not required at the TLS layer (only the peer
 * API needs one, and its hook decides, peer-auth.ts). SM ids are not DNS names, so clients check
 * the server by its certificate instead: it must validate as an SM certificate under a configured
 * CI and its CN must be the SM id the directory names.
 *
 * Brainpool: TLS 1.3 has no signature scheme for brainpool ECDSA certificates in the OpenSSL 3.0
 * of Node 20, so an endpoint whose own certificate is on brainpoolP256r1 caps TLS at 1.2 (its
 * peers then negotiate 1.2); both sides offer brainpoolP256r1 among the curves, since TLS 1.2
 * only accepts a certificate on a curve the other side listed.
 */
import type { ServerOptions } from 'node:https';
import type { ConnectionOptions, PeerCertificate, SecureVersion } from 'node:tls';
import type { Curve } from '../../protocol/crypto/curves.ts';
import type { Certificate } from '../../protocol/pki/certificate.ts';
import { parseCertificateCached } from '../../protocol/pki/certificate.ts';
import { validateChain } from '../../protocol/pki/validate.ts';

export const ECDH_CURVES = 'P-256:brainpoolP256r1';
export const MIN_TLS: SecureVersion = 'TLSv1.2';

/** The highest TLS version an endpoint with a certificate on `curve` can use. */
export const maxTlsFor = (curve: Curve | undefined): SecureVersion =>
  curve === 'brainpoolP256r1' ? 'TLSv1.2' : 'TLSv1.3';

export interface TlsIdentity {
  /** PEM private key. */
  readonly keyPem: string;
  /** PEM SM certificate. */
  readonly certPem: string;
  readonly certificate: Certificate;
  /** PEM bundle of the configured CIs. */
  readonly caPem: string;
}

export function serverTlsOptions(id: TlsIdentity): ServerOptions {
  return {
    key: id.keyPem,
    cert: id.certPem,
    ca: id.caPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: MIN_TLS,
    maxVersion: maxTlsFor(id.certificate.curve),
    ecdhCurve: ECDH_CURVES,
  };
}

/**
 * `checkServerIdentity` for a connection to the SM `expectedSmId`: Node calls it after OpenSSL
 * has verified the chain to the configured CIs; this adds the profile's rules (SM role, dates)
 * and the SM id. Returns an Error to refuse.
 */
export function smServerIdentity(
  expectedSmId: string,
  trustedCis: readonly Certificate[],
  clock: () => Date = () => new Date(),
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    try {
      const chain = validateChain([parseCertificateCached(new Uint8Array(cert.raw))], {
        trusted: trustedCis,
        at: clock(),
        expectRole: 'sm',
      });
      if (chain.smId !== expectedSmId) {
        return new Error(`the server is SM "${chain.smId}", not "${expectedSmId}"`);
      }
      return undefined;
    } catch (e) {
      return new Error(`the server certificate is not a valid SM certificate: ${(e as Error).message}`);
    }
  };
}

/** Client options to reach SM `expectedSmId`, optionally with our SM certificate as client certificate. */
export function clientTlsOptions(o: {
  readonly expectedSmId: string;
  readonly caPem: string;
  readonly trustedCis: readonly Certificate[];
  readonly clientIdentity?: TlsIdentity;
  readonly clock?: () => Date;
}): ConnectionOptions {
  return {
    ca: o.caPem,
    ...(o.clientIdentity && { key: o.clientIdentity.keyPem, cert: o.clientIdentity.certPem }),
    minVersion: MIN_TLS,
    maxVersion: maxTlsFor(o.clientIdentity?.certificate.curve),
    ecdhCurve: ECDH_CURVES,
    rejectUnauthorized: true,
    checkServerIdentity: smServerIdentity(o.expectedSmId, o.trustedCis, o.clock),
  };
}
