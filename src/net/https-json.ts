/**
 * A small JSON-over-HTTPS client (device agent, operator CLI): trusts the given CA certificates,
 * sends JSON, returns the parsed body, and turns `{ error: { code, message } }` answers into a
 * HandoverError with the server's code. A server certificate that is not accepted is TlsUntrusted;
 * other network failures are plain Errors (callers may retry).
 */
import { request } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { errorCode, HandoverError } from '../protocol/errors.ts';

export interface HttpsJsonOptions {
  /** PEM CA certificates (the configured CIs). */
  readonly ca: readonly string[];
  /** Client certificate and key (PEM) for mutual TLS, when the endpoint needs one. */
  readonly cert?: string;
  readonly key?: string;
  /** Extra headers (Authorization, Idempotency-Key). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /**
   * SM ids are not DNS names: the server is identified by its certificate's CN, when given;
   * otherwise only the chain to a configured CI is checked (payloads are signed end to end).
   */
  readonly expectedCommonName?: string;
}

export class HttpError extends HandoverError {
  readonly status: number;
  constructor(status: number, code: string, message: string, details: Record<string, unknown>) {
    super(code, message, { ...details, status });
    this.status = status;
  }
}

function identityCheck(expected: string | undefined) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    if (expected === undefined) return undefined;
    const cn = cert.subject?.CN;
    return cn === expected
      ? undefined
      : Object.assign(new Error(`server certificate CN "${String(cn)}" is not "${expected}"`), {
          code: 'ERR_TLS_CERT_ALTNAME_INVALID',
        });
  };
}

/** OpenSSL's and Node's codes for a server certificate that the client does not accept. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A server certificate the client does not accept is TlsUntrusted (a typed error: retrying does
 * not help, the CA file or the URL is wrong); other network failures stay plain Errors.
 */
export function untrustedServer(e: unknown, url: string): HandoverError | undefined {
  const code = errorCode(e);
  if (code === undefined || !UNTRUSTED.has(code)) return undefined;
  return new HandoverError(
    'TlsUntrusted',
    `${url}: the server's certificate is not accepted (${(e as Error).message}); check that --ca is the CI certificate its certificate chains to`,
    { tls: code },
  );
}

export function httpsJson<T>(method: string, url: string, body: unknown, o: HttpsJsonOptions): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise<T>((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: [...o.ca],
        ...(o.cert && { cert: o.cert }),
        ...(o.key && { key: o.key }),
        minVersion: 'TLSv1.2',
        ecdhCurve: 'P-256:brainpoolP256r1',
        checkServerIdentity: identityCheck(o.expectedCommonName),
        timeout: o.timeoutMs ?? 15_000,
        headers: {
          accept: 'application/json',
          ...(payload && { 'content-type': 'application/json', 'content-length': String(payload.length) }),
          ...o.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text.length === 0 ? {} : JSON.parse(text);
          } catch {
            reject(new Error(`${method} ${url}: HTTP ${res.statusCode} with a body that is not JSON`));
            return;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(parsed as T);
            return;
          }
          const err = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error;
          if (status >= 400 && status < 500 && err && typeof err.code === 'string') {
            const details =
              typeof err.details === 'object' && err.details !== null
                ? (err.details as Record<string, unknown>)
                : {};
            reject(new HttpError(status, err.code, String(err.message ?? err.code), details));
            return;
          }
          reject(new Error(`${method} ${url}: HTTP ${status}${err?.code ? ` ${String(err.code)}` : ''}`));
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`${method} ${url}: no answer in ${o.timeoutMs ?? 15_000} ms`)),
    );
    req.on('error', (e) => reject(untrustedServer(e, url) ?? e));
    if (payload) req.write(payload);
    req.end();
  });
}
