/**
 * Operator webhooks (PROTOCOL.md §6.5 "notify their operators", §9 "webhooks for events"): the
 * OperatorNotifier the SM server gives its outbox. Each notification is POSTed as JSON
 * `{event, eid, transferId?, state?, at}` to the operator's configured URL with
 *
 *   X-Handover-Event:     the event name
 *   X-Handover-Delivery:  a delivery id, the same on every retry of one notification
 *   X-Handover-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with the
 *                         operator's webhook secret> (absent when no secretFile is configured)
 *
 * A 2xx answer is a delivery. Anything else (another status, a redirect, a timeout, no
 * connection) is thrown, so the outbox retries it with exponential backoff; a receiver must
 * therefore be idempotent (dedupe on X-Handover-Delivery), and may see events out of order when
 * one was retried (order by `at`). An operator without a webhook gets NotificationNotConfigured,
 * which the outbox settles as refused (WebhookNotConfigured) instead of keeping it pending.
 * Secrets and URL paths never go into errors or logs: errors name the operator and the origin.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { errorCode, HandoverError } from '../protocol/errors.ts';
import { NotificationNotConfigured } from './errors.ts';
import type { OperatorNotification, OperatorNotifier } from './peer-api.ts';
import { ConfigInvalid, type SmServerConfig } from './server-config.ts';

export const SIGNATURE_HEADER = 'x-handover-signature';
export const DELIVERY_HEADER = 'x-handover-delivery';
export const EVENT_HEADER = 'x-handover-event';

/** Shortest accepted secret (characters of the trimmed file). */
export const MIN_SECRET_LENGTH = 16;
const DEFAULT_TIMEOUT_MS = 10_000;

export interface WebhookTarget {
  readonly operatorId: string;
  readonly url: URL;
  /** HMAC key; undefined: deliveries are not signed. */
  readonly secret?: Buffer;
}

/**
 * The webhook of every operator that has one, secrets read from their files now (so a missing
 * or too short secret stops the server at start, naming the field). Never logs a secret.
 */
export function loadWebhookTargets(config: SmServerConfig): Map<string, WebhookTarget> {
  const targets = new Map<string, WebhookTarget>();
  config.operators.forEach((op, i) => {
    if (!op.webhook) return;
    const field = `operators/${i}/webhook/secretFile`;
    let secret: Buffer | undefined;
    if (op.webhook.secretFile !== undefined) {
      const file = op.webhook.secretFile;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        const why = errorCode(e) ?? 'unreadable';
        throw new ConfigInvalid(field, `cannot read ${file} (${why}): fix the path or create the file`, {
          source: config.source,
          file,
        });
      }
      const trimmed = text.trim();
      if (trimmed.length < MIN_SECRET_LENGTH) {
        throw new ConfigInvalid(
          field,
          `${file} holds fewer than ${MIN_SECRET_LENGTH} characters: put a long random secret in it, e.g. \`openssl rand -hex 32 > ${file}\``,
          { source: config.source, file },
        );
      }
      secret = Buffer.from(trimmed, 'utf8');
    }
    targets.set(op.id, { operatorId: op.id, url: new URL(op.webhook.url), ...(secret && { secret }) });
  });
  return targets;
}

/** The body of a notification: the same bytes for every attempt (what the signature covers). */
export function webhookBody(n: OperatorNotification): string {
  // `at` is a Date when fresh, an ISO string once it went through a SQL store's JSON column.
  const at = new Date(n.at).toISOString();
  return JSON.stringify({
    event: n.event,
    eid: n.eid,
    ...(n.transferId !== undefined && { transferId: n.transferId }),
    ...(n.state !== undefined && { state: n.state }),
    at,
  });
}

/** `sha256=<hex HMAC-SHA256(secret, body)>`. */
export function webhookSignature(secret: Uint8Array | string, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** What a receiver does: recompute the HMAC over the raw body and compare in constant time. */
export function verifyWebhookSignature(
  secret: Uint8Array | string,
  body: string | Uint8Array,
  header: string | undefined,
): boolean {
  if (header === undefined) return false;
  const expected = Buffer.from(webhookSignature(secret, body), 'utf8');
  const given = Buffer.from(header, 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Stable across retries and restarts: derived from the operator and the exact body. */
export function deliveryId(operatorId: string, body: string): string {
  return `dlv_${createHash('sha256').update(`${operatorId}\n${body}`, 'utf8').digest('hex').slice(0, 32)}`;
}

/** A delivery that did not get a 2xx: retried by the outbox. */
export class WebhookFailed extends HandoverError {
  constructor(operatorId: string, origin: string, why: string, status?: number) {
    super('WebhookFailed', `webhook of operator ${operatorId} at ${origin}: ${why}`, {
      operatorId,
      ...(status !== undefined && { status }),
    });
  }
}

export interface WebhookNotifierOptions {
  /** Whole-request limit; default 10 s (the outbox drains one item at a time). */
  readonly timeoutMs?: number;
  readonly userAgent?: string;
}

export class WebhookNotifier implements OperatorNotifier {
  readonly #targets: ReadonlyMap<string, WebhookTarget>;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #http = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  readonly #https = new HttpsAgent({ keepAlive: true, maxSockets: 4 });

  constructor(targets: ReadonlyMap<string, WebhookTarget>, o: WebhookNotifierOptions = {}) {
    this.#targets = targets;
    this.#timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#userAgent = o.userAgent ?? 'handover-sm/1';
  }

  /** Operators whose deliveries go out unsigned (no secretFile): worth a warning at start. */
  unsigned(): string[] {
    return [...this.#targets.values()].filter((t) => t.secret === undefined).map((t) => t.operatorId);
  }

  notify(operatorId: string, notification: OperatorNotification): Promise<void> {
    const target = this.#targets.get(operatorId);
    if (!target) return Promise.reject(new NotificationNotConfigured(operatorId));
    const body = webhookBody(notification);
    const payload = Buffer.from(body, 'utf8');
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(payload.length),
      'user-agent': this.#userAgent,
      [EVENT_HEADER]: notification.event,
      [DELIVERY_HEADER]: deliveryId(operatorId, body),
      ...(target.secret && { [SIGNATURE_HEADER]: webhookSignature(target.secret, payload) }),
    };
    const { url } = target;
    const origin = url.origin;
    const https = url.protocol === 'https:';
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string, status?: number) =>
        reject(new WebhookFailed(operatorId, origin, why, status));
      const onResponse = (res: IncomingMessage) => {
        res.resume(); // the body is not read: only the status counts
        const status = res.statusCode ?? 0;
        res.on('end', () => {
          clearTimeout(timer);
          if (status >= 200 && status < 300) resolve();
          else fail(`answered HTTP ${status}`, status);
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          fail(`answer broken off (${codeOf(e)})`);
        });
      };
      const options = { method: 'POST', headers, agent: https ? this.#https : this.#http };
      const req = https ? httpsRequest(url, options, onResponse) : httpRequest(url, options, onResponse);
      const timer = setTimeout(() => {
        fail(`no answer in ${this.#timeoutMs} ms`);
        req.destroy();
      }, this.#timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        fail(`not reachable (${codeOf(e)})`);
      });
      req.end(payload);
    });
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

function codeOf(e: Error): string {
  return errorCode(e) ?? e.message;
}

/** The server's notifier: its operators' webhooks, read from the configuration. */
export function webhookNotifier(config: SmServerConfig, o: WebhookNotifierOptions = {}): WebhookNotifier {
  return new WebhookNotifier(loadWebhookTargets(config), o);
}
