/**
 * Queries built with kysely once and then run from their SQL text: for the statements every
 * transfer runs several times (the audit chain, a chip, a transfer, an outbox item by key),
 * where building and compiling kysely's query tree on each call cost about as much as SQLite
 * running the statement (BENCHMARKS.md, profile).
 *
 * A call's parameters are one record. The builder gets the same record with a slot in place of
 * each value, the compiled query says which bound value is which slot, and later calls with the
 * same keys (in the same order) bind their own values in that order. The SQL is exactly what
 * kysely compiles, so both dialects, and SQLite's statement cache, see the same text as before.
 * A builder must use each parameter as one bound value (`where(col, '=', p.x)`, `values(p)`,
 * `set(p)`), never as a list or an identifier: a parameter that does not come back as a bound
 * value is refused when the query is first built.
 */
import { type Compilable, CompiledQuery, type Kysely, type QueryResult } from 'kysely';
import type { Conn } from './conn.ts';
import type { WriteHint } from './errors.ts';
import type { Database } from './schema.ts';

class Slot {
  constructor(readonly name: string) {}
}

interface Plan {
  readonly sql: string;
  /** Per bound value: the parameter that goes there, or a constant of the query. */
  readonly bind: readonly (Slot | { readonly constant: unknown })[];
}

/** Distinct key lists (e.g. the changed columns of an update) kept per query, oldest dropped first. */
const PLANS_PER_QUERY = 128;

export type Prepared<P> = <R>(c: Conn, params: P, hint?: WriteHint) => Promise<QueryResult<R>>;

/** A query built by `build` once per dialect and list of parameter keys, run with `params`. */
export function prepared<P extends Record<string, unknown>>(
  build: (db: Kysely<Database>, p: P) => Compilable<unknown>,
): Prepared<P> {
  const plans = new Map<string, Plan>();
  const planFor = (c: Conn, keys: string[], id: string): Plan => {
    const slots = Object.fromEntries(keys.map((k) => [k, new Slot(k)])) as P;
    const compiled = build(c.db, slots).compile();
    const bind = compiled.parameters.map((v) => (v instanceof Slot ? v : { constant: v }));
    const bound = new Set(bind.flatMap((b) => (b instanceof Slot ? [b.name] : [])));
    for (const k of keys) {
      if (!bound.has(k))
        throw new Error(`prepared query: parameter ${k} is not a bound value in ${compiled.sql}`);
    }
    const plan = { sql: compiled.sql, bind };
    if (plans.size >= PLANS_PER_QUERY) plans.delete(plans.keys().next().value as string);
    plans.set(id, plan);
    return plan;
  };
  return <R>(c: Conn, params: P, hint?: WriteHint) => {
    const keys = Object.keys(params);
    const id = `${c.dialect}|${keys.join(',')}`;
    const plan = plans.get(id) ?? planFor(c, keys, id);
    const values = plan.bind.map((b) => (b instanceof Slot ? params[b.name] : b.constant));
    return c.run((db) => db.executeQuery<R>(CompiledQuery.raw(plan.sql, values)), hint);
  };
}
