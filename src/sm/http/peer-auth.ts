/**
 * Peer authentication (PROTOCOL.md §9 peer API, §6.1: "peer identity comes from the mTLS
 * certificate"): the TLS client certificate must validate, now, as an SM certificate under a
 * configured CI, and its CN (the SM id) must be a configured peer. The TLS layer asks for a
 * certificate but accepts any (operator and device clients have none); this check decides.
 */
import type { TLSSocket } from 'node:tls';
import type { Certificate } from '../../protocol/pki/certificate.ts';
import { parseCertificateCached } from '../../protocol/pki/certificate.ts';
import { validateChain } from '../../protocol/pki/validate.ts';
import { ApiError } from './errors.ts';

export interface PeerAuthOptions {
  readonly trustedCis: readonly Certificate[];
  /** SM ids of the configured peers. */
  readonly peers: ReadonlySet<string>;
  readonly clock: () => Date;
}

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return typeof (socket as Partial<TLSSocket>).getPeerCertificate === 'function';
}

/**
 * The client certificate (DER) of each TLS connection, read once: getPeerCertificate builds a
 * whole object of decoded fields on every call, and a connection's client certificate does not
 * change (the server never renegotiates). It is still validated on every request, at that time.
 */
const clientCertificates = new WeakMap<TLSSocket, Uint8Array>();

function clientCertificateOf(socket: unknown): Uint8Array | undefined {
  if (!isTlsSocket(socket)) return undefined;
  let der = clientCertificates.get(socket);
  if (der === undefined) {
    const raw: Buffer | undefined = socket.getPeerCertificate()?.raw;
    if (!raw || raw.length === 0) return undefined;
    der = new Uint8Array(raw);
    clientCertificates.set(socket, der);
  }
  return der;
}

/** The calling SM's id; ClientCertificateRequired (401) or PeerNotAuthorised (403) otherwise. */
export function authenticatePeer(socket: unknown, o: PeerAuthOptions): string {
  const raw = clientCertificateOf(socket);
  if (!raw) {
    throw new ApiError(
      'ClientCertificateRequired',
      'the peer API needs mutual TLS: present your SM certificate as the client certificate',
    );
  }
  let smId: string | undefined;
  try {
    smId = validateChain([parseCertificateCached(raw)], {
      trusted: o.trustedCis,
      at: o.clock(),
      expectRole: 'sm',
    }).smId;
  } catch (e) {
    const reason = (e as { reason?: unknown }).reason;
    throw new ApiError(
      'PeerNotAuthorised',
      'the client certificate is not a valid SM certificate under our CIs',
      {
        ...(typeof reason === 'string' && { reason }),
      },
    );
  }
  if (smId === undefined || !o.peers.has(smId)) {
    throw new ApiError('PeerNotAuthorised', `SM "${smId}" is not a peer of this SM`, { smId });
  }
  return smId;
}
