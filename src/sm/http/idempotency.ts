/**
 * Idempotency keys for the operator API's mutating calls (PROTOCOL.md §9: every mutating call
 * takes an idempotency key). A key is scoped to its operator. The first request with a key
 * reserves it with the request's fingerprint (method, path, canonical body); its response
 * (anything but a 5xx) is kept and replayed, byte for byte, for the same key and fingerprint,
 * with no second effect. The same key with another fingerprint is IdempotencyKeyReused (422);
 * a key whose first request is still running is IdempotencyKeyInUse (409, retry later). A 5xx
 * releases the key, so a retry runs again.
 *
 * Two implementations of IdempotencyStore: MemoryIdempotencyStore below (per process, lost on a
 * restart: for MemoryStore-backed servers, tests and the in-process demo), and
 * SqlIdempotencyStore (store/kysely/idempotency.ts, table idempotency_keys of migration 0002),
 * which an SM on SQLite or PostgreSQL uses: keys survive a restart and replicas on one database
 * share them. Keys expire IDEMPOTENCY_TTL_MS after their response.
 *
 * Known gap: the response is recorded by `complete`, in its own transaction, after the
 * operation's transaction has committed (the SubscriptionManager opens its transactions itself;
 * recording both in one transaction needs it to accept an outer transaction and the HTTP body
 * to be built inside it). A crash between the two commits leaves the key inProgress: a retry
 * gets IdempotencyKeyInUse until IN_PROGRESS_TTL_MS has passed, then runs again, and the
 * domain's own checks refuse a second effect (ChipExists, TransferPending, OrderPending,
 * InvalidState) for every operation except a lock change, which is applied again.
 */
import { createHash } from 'node:crypto';

export interface IdempotencyRecord {
  readonly operatorId: string;
  readonly key: string;
  readonly fingerprint: string;
  readonly statusCode: number;
  /** The JSON body as sent. */
  readonly body: string;
  readonly createdAt: Date;
}

export type IdempotencyBegin =
  | { readonly kind: 'new' }
  | { readonly kind: 'done'; readonly record: IdempotencyRecord }
  | { readonly kind: 'inProgress'; readonly fingerprint: string };

export interface IdempotencyStore {
  /** Reserves (operatorId, key) for `fingerprint`, or tells what holds it already. */
  begin(operatorId: string, key: string, fingerprint: string, now: Date): Promise<IdempotencyBegin>;
  /** Keeps the response of a reserved key. */
  complete(record: IdempotencyRecord): Promise<void>;
  /** Frees a reserved key whose request failed on the server's side. */
  release(operatorId: string, key: string): Promise<void>;
}

export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
/** A reservation older than this is taken to belong to a request that died. */
export const IN_PROGRESS_TTL_MS = 5 * 60_000;

type Entry =
  | { readonly state: 'inProgress'; readonly fingerprint: string; readonly at: Date }
  | { readonly state: 'done'; readonly record: IdempotencyRecord; readonly at: Date };

/** In memory, bounded: entries expire after `ttlMs`, and past `maxEntries` the oldest go first. */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;

  constructor(o: { ttlMs?: number; maxEntries?: number } = {}) {
    this.#ttlMs = o.ttlMs ?? IDEMPOTENCY_TTL_MS;
    this.#maxEntries = o.maxEntries ?? 100_000;
  }

  async begin(operatorId: string, key: string, fingerprint: string, now: Date): Promise<IdempotencyBegin> {
    const id = JSON.stringify([operatorId, key]);
    const entry = this.#entries.get(id);
    if (entry && !this.#stale(entry, now)) {
      return entry.state === 'done'
        ? { kind: 'done', record: entry.record }
        : { kind: 'inProgress', fingerprint: entry.fingerprint };
    }
    this.#entries.delete(id);
    this.#entries.set(id, { state: 'inProgress', fingerprint, at: now });
    this.#evict(now);
    return { kind: 'new' };
  }

  async complete(record: IdempotencyRecord): Promise<void> {
    const id = JSON.stringify([record.operatorId, record.key]);
    this.#entries.set(id, { state: 'done', record, at: record.createdAt });
  }

  async release(operatorId: string, key: string): Promise<void> {
    const id = JSON.stringify([operatorId, key]);
    if (this.#entries.get(id)?.state === 'inProgress') this.#entries.delete(id);
  }

  #stale(e: Entry, now: Date): boolean {
    const ttl = e.state === 'done' ? this.#ttlMs : IN_PROGRESS_TTL_MS;
    return now.getTime() - e.at.getTime() > ttl;
  }

  #evict(now: Date): void {
    // Map iteration is insertion order: the oldest first.
    for (const [id, e] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && !this.#stale(e, now)) break;
      this.#entries.delete(id);
    }
  }
}

/** JSON with object keys sorted, so equal bodies give equal fingerprints whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** What makes two requests "the same": method, path and body. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${canonical(body)}`, 'utf8')
    .digest('hex');
}

/** Printable ASCII, 1 to 255 characters (e.g. a UUID). */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
