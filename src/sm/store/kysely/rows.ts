/** Helpers shared by the repositories. */
import type { Insertable } from 'kysely';
import { StoreConstraintError } from '../types.ts';
import type { Conn } from './conn.ts';

/** Every column but the generated ones, none optional: an update then clears what is absent. */
export type Values<T> = Required<Omit<Insertable<T>, 'pos'>>;

/**
 * Compile-time check that a record was taken apart completely: the rest of a destructuring is
 * assignable here only when it has no properties, so a field added to a record type fails the
 * build until the repository stores it.
 */
export function allTaken(_rest: Record<string, never>): void {}

export const hex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Values per IN (...) list: well under SQLite's and PostgreSQL's bound-parameter limits. */
export const IN_CHUNK = 500;

/** `values` in slices of at most `size` (none for an empty list). */
export function chunked<T>(values: readonly T[], size = IN_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}

/**
 * Whether a value about to be written equals the one read from the row, as each driver reads it
 * back: SQLite gives the same text, numbers and Buffers; pg gives a Date for an ISO string, a
 * boolean for 0/1 and parsed jsonb (which is left as changed: its key order is pg's own).
 */
function sameStored(next: unknown, stored: unknown): boolean {
  if (next === stored) return true;
  if (next instanceof Uint8Array && stored instanceof Uint8Array) {
    return Buffer.from(next.buffer, next.byteOffset, next.byteLength).equals(stored);
  }
  if (typeof next === 'string' && stored instanceof Date) return Date.parse(next) === stored.getTime();
  if (typeof next === 'number' && typeof stored === 'boolean') return next === (stored ? 1 : 0);
  return false;
}

/**
 * The columns of `next` whose values differ from `row` (the row as read in the same
 * transaction). An UPDATE that sets only these leaves the indexes on the other columns alone:
 * setting every column made SQLite rewrite every index entry of the row.
 */
export function changedValues<T extends object>(next: T, row: object): Partial<T> {
  const out: Partial<T> = {};
  const stored = row as Record<string, unknown>;
  for (const key of Object.keys(next) as (keyof T & string)[]) {
    if (!sameStored(next[key], stored[key])) out[key] = next[key];
  }
  return out;
}

/**
 * An insert under a natural key (an id) that is refused, when taken, with the memory store's
 * error before any other: InvalidInput "`key.key` exists". `write` runs the other checks and ends
 * with the one statement that inserts the row, as `INSERT … ON CONFLICT (id) DO NOTHING`, giving
 * the row's values and that statement's result; the values come back once the row is in. So a
 * taken key costs no statement of its own: the insert does nothing and the key's refusal follows.
 * When `write` fails (another check refused, or the database did), `key.taken` says whether the
 * key's refusal comes first. On PostgreSQL a failed statement aborts the transaction, so
 * `key.taken` fails too and the write's own error stands (a unique violation there is a race, and
 * the transaction runs again: conn.ts); a taken key that this SERIALIZABLE snapshot cannot see is
 * a serialization failure, the same.
 */
export async function insertUnlessTaken<R>(
  key: { readonly key: string; readonly taken: () => Promise<boolean> },
  write: () => Promise<{ readonly row: R; readonly result: { readonly numAffectedRows?: bigint } }>,
): Promise<R> {
  const refusal = () => new StoreConstraintError('InvalidInput', `${key.key} exists`);
  let written: Awaited<ReturnType<typeof write>>;
  try {
    written = await write();
  } catch (e) {
    // If the key cannot be checked either, the write's own error says more.
    throw (await key.taken().catch(() => false)) ? refusal() : e;
  }
  if ((written.result.numAffectedRows ?? 0n) === 0n) throw refusal();
  return written.row;
}

/** Keeps `row` as this transaction's view of it (Conn.rows); returns it. */
export function remember<R extends { readonly id: string }>(
  c: Conn,
  table: 'transfers' | 'outbox',
  row: R,
): R {
  c.rows.set(`${table}:${row.id}`, row);
  return row;
}

/** The row as this transaction last read or wrote it, if it did. */
export function recalled(c: Conn, table: 'transfers' | 'outbox', id: string): object | undefined {
  return c.rows.get(`${table}:${id}`);
}
