/**
 * A PeerTransport over HTTPS (PROTOCOL.md §9 peer API): POST <baseUrl>/peer/v1/messages with
 * this SM's certificate as the TLS client certificate. The server is checked as an SM: its
 * certificate must validate under the configured CIs with the SM role, and its CN must be the
 * SM id the directory names for that URL (http/tls.ts).
 *
 * What the outbox makes of the outcome (outbox.ts): a 4xx with a typed error body is the peer's
 * final word and rejects with a HandoverError carrying the peer's code; anything else (network
 * failure, TLS failure, timeout, 408, 429, 5xx, an unreadable reply) rejects with a plain Error
 * and is retried.
 */
import { Agent, request } from 'node:https';
import { HandoverError } from '../protocol/errors.ts';
import type { Certificate } from '../protocol/pki/certificate.ts';
import { decodePeerReply, encodePeerMessage } from './http/peer-codec.ts';
import { clientTlsOptions, type TlsIdentity } from './http/tls.ts';
import { DEFAULT_PEER_CONCURRENCY } from './outbox.ts';
import type { PeerAddress, PeerMessage, PeerReply, PeerTransport } from './peer-api.ts';

export interface HttpPeerTransportOptions {
  /** This SM's id: the CN of `identity.certificate`. */
  readonly smId: string;
  readonly identity: TlsIdentity;
  readonly trustedCis: readonly Certificate[];
  readonly clock?: () => Date;
  /** Whole request, connect to last byte (default 10 s). */
  readonly timeoutMs?: number;
}

/** A reply larger than this is not a PeerReply. */
const MAX_REPLY = 64 * 1024;
export const PEER_MESSAGES_PATH = 'peer/v1/messages';

/** `path` under `baseUrl`, keeping a base path such as https://host/handover. */
export function peerUrl(baseUrl: string, path: string): URL {
  return new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
}

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

function errorOfBody(
  body: string,
): { code: string; message: string; details: Record<string, unknown> } | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    const e = (parsed as { error?: unknown }).error as
      | { code?: unknown; message?: unknown; details?: unknown }
      | undefined;
    if (typeof e?.code !== 'string' || typeof e.message !== 'string') return undefined;
    const details =
      typeof e.details === 'object' && e.details !== null && !Array.isArray(e.details)
        ? (e.details as Record<string, unknown>)
        : {};
    return { code: e.code, message: e.message, details };
  } catch {
    return undefined;
  }
}

export class HttpPeerTransport implements PeerTransport {
  readonly #o: HttpPeerTransportOptions;
  /** One agent per peer: keep-alive and TLS sessions never cross from one SM id to another. */
  readonly #agents = new Map<string, Agent>();

  constructor(o: HttpPeerTransportOptions) {
    this.#o = o;
  }

  async send(callerSmId: string, target: PeerAddress, message: PeerMessage): Promise<PeerReply> {
    if (callerSmId !== this.#o.smId) {
      throw new HandoverError(
        'NotAuthorised',
        `this transport speaks for ${this.#o.smId}, not ${callerSmId}`,
      );
    }
    const url = peerUrl(target.address, PEER_MESSAGES_PATH);
    const answer = await this.#post(target.smId, url, JSON.stringify(encodePeerMessage(message)));
    if (answer.status === 200) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(answer.body);
      } catch {
        parsed = undefined;
      }
      const reply = decodePeerReply(parsed);
      if (!reply)
        throw new Error(`${target.smId} answered ${message.type} with something that is not a PeerReply`);
      return reply;
    }
    const retryable =
      answer.status >= 500 || answer.status === 408 || answer.status === 429 || answer.status < 400;
    const error = errorOfBody(answer.body);
    if (retryable || !error) {
      throw new Error(
        `${target.smId} answered ${message.type} with HTTP ${answer.status}${error ? ` ${error.code}` : ''}`,
      );
    }
    throw new HandoverError(error.code, `${target.smId} refused ${message.type}: ${error.message}`, {
      ...error.details,
      peerSmId: target.smId,
      httpStatus: answer.status,
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  #agent(smId: string): Agent {
    let agent = this.#agents.get(smId);
    if (!agent) {
      agent = new Agent({
        keepAlive: true,
        // One socket for each message the outbox may have in flight to this peer.
        maxSockets: DEFAULT_PEER_CONCURRENCY,
        ...clientTlsOptions({
          expectedSmId: smId,
          caPem: this.#o.identity.caPem,
          trustedCis: this.#o.trustedCis,
          clientIdentity: this.#o.identity,
          ...(this.#o.clock && { clock: this.#o.clock }),
        }),
      });
      this.#agents.set(smId, agent);
    }
    return agent;
  }

  #post(smId: string, url: URL, body: string): Promise<HttpAnswer> {
    const timeoutMs = this.#o.timeoutMs ?? 10_000;
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          agent: this.#agent(smId),
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            accept: 'application/json',
          },
          signal: AbortSignal.timeout(timeoutMs),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_REPLY) {
              req.destroy(new Error(`the reply of ${smId} is over ${MAX_REPLY} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', (e) => reject(new Error(`cannot reach ${smId} at ${url.origin}: ${e.message}`)));
      req.end(body);
    });
  }
}
