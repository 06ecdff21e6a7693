/**
 * Values in and out of SQL, the same way for both dialects (schema.ts). Reads always give back
 * what the memory store gives: plain Uint8Arrays (never Buffers), fresh Date objects, numbers.
 *
 * Nested records (a lock policy, an accepted request, a peer message, ...) are stored as JSON
 * with two tagged forms: `{"$bytes": "<base64>"}` for a Uint8Array and `{"$date": "<ISO>"}` for a
 * Date. Keys whose value is undefined are left out, as in JSON.
 */
import { StoreConstraintError } from '../types.ts';

const BYTES = '$bytes';
const DATE = '$date';

function invalid(message: string, details: Record<string, unknown> = {}): StoreConstraintError {
  return new StoreConstraintError('InvalidInput', message, details);
}

/** A Buffer over the same bytes, as both drivers bind it. */
export function bytesIn(b: Uint8Array, field = 'bytes'): Buffer {
  if (!(b instanceof Uint8Array)) throw invalid(`${field} must be bytes`, { field });
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export function bytesOrNull(b: Uint8Array | undefined, field?: string): Buffer | null {
  return b === undefined ? null : bytesIn(b, field);
}

/** A copy as a plain Uint8Array. */
export function bytesOut(v: Uint8Array): Uint8Array {
  return new Uint8Array(v);
}

export function timeIn(d: Date, field = 'time'): string {
  if (!(d instanceof Date) || Number.isNaN(d.getTime()))
    throw invalid(`${field} must be a valid date`, { field });
  return d.toISOString();
}

export function timeOrNull(d: Date | undefined, field?: string): string | null {
  return d === undefined ? null : timeIn(d, field);
}

export function timeOut(v: Date | string | number): Date {
  return new Date(v instanceof Date ? v.getTime() : v);
}

export function boolIn(b: boolean): number {
  return b ? 1 : 0;
}

export function boolOut(v: boolean | number): boolean {
  return v === true || v === 1;
}

export function intOut(v: number | string | bigint): number {
  return Number(v);
}

function tag(v: unknown, field: string): unknown {
  if (v instanceof Uint8Array) return { [BYTES]: bytesIn(v).toString('base64') };
  if (v instanceof Date) return { [DATE]: timeIn(v, field) };
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : tag(x, field)));
  if (v !== null && typeof v === 'object') {
    const out: [string, unknown][] = [];
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      if (k === BYTES || k === DATE) throw invalid(`${field} has a reserved key ${k}`, { field });
      out.push([k, tag(x, field)]);
    }
    return Object.fromEntries(out);
  }
  if (typeof v === 'bigint' || typeof v === 'function' || typeof v === 'symbol') {
    throw invalid(`${field} holds a ${typeof v}, which the store cannot keep`, { field });
  }
  return v;
}

function untag(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(untag);
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v);
    const [only] = entries;
    if (entries.length === 1 && only !== undefined && typeof only[1] === 'string') {
      if (only[0] === BYTES) return new Uint8Array(Buffer.from(only[1], 'base64'));
      if (only[0] === DATE) return new Date(only[1]);
    }
    // fromEntries defines own properties: a "__proto__" key stays a plain key.
    return Object.fromEntries(entries.map(([k, x]) => [k, untag(x)]));
  }
  return v;
}

export function jsonIn(v: unknown, field = 'json'): string {
  return JSON.stringify(tag(v, field));
}

export function jsonOrNull(v: unknown, field?: string): string | null {
  return v === undefined ? null : jsonIn(v, field);
}

/** SQLite gives the JSON text, pg gives jsonb parsed. The caller names the type it stored. */
export function jsonOut<T>(v: unknown): T {
  return untag(typeof v === 'string' ? JSON.parse(v) : v) as T;
}

/** Audit details: scalars only; undefined is kept as null so the hash chain still verifies. */
export function detailsIn(details: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(
    Object.fromEntries(Object.entries(details).map(([k, x]) => [k, x === undefined ? null : x])),
  );
}
