/** Helpers shared by the repositories. */
import type { Insertable } from 'kysely';

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
