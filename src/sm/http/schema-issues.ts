/**
 * Turns the issues a JSON-schema check reports (typebox's, as the HTTP validator and the config
 * loader produce them) into one field and one plain problem. A missing or an unknown field is
 * named rather than the noise it causes elsewhere (typebox also reports an unknown field as
 * "schema is false" under additionalProperties).
 */
export interface SchemaIssue {
  readonly keyword?: string;
  readonly instancePath?: string;
  readonly schemaPath?: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

export interface DescribedIssue {
  /** JSON path without the leading slash, e.g. "peers/0/baseUrl"; "" for the whole value. */
  readonly field: string;
  readonly kind: 'missing' | 'unknown' | 'invalid';
  readonly message: string;
}

const join = (at: string, name: string): string => (at === '' ? name : `${at}/${name}`);
const first = (v: unknown): string | undefined =>
  Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;

function missing(i: SchemaIssue): string | undefined {
  if (i.keyword !== 'required') return undefined;
  return first(i.params?.requiredProperties) ?? (i.params?.missingProperty as string | undefined);
}

function unknown(i: SchemaIssue, at: string): string | undefined {
  if (i.keyword === 'additionalProperties') {
    const name =
      first(i.params?.additionalProperties) ?? (i.params?.additionalProperty as string | undefined);
    return name === undefined ? undefined : join(at, name);
  }
  if (i.keyword === 'boolean' && i.schemaPath?.endsWith('additionalProperties')) return at;
  return undefined;
}

export function describeIssues(issues: readonly SchemaIssue[]): DescribedIssue {
  const at = (i: SchemaIssue) => (i.instancePath ?? '').replace(/^\//, '');
  for (const i of issues) {
    const name = missing(i);
    if (name !== undefined) return { field: join(at(i), name), kind: 'missing', message: 'is missing' };
  }
  for (const i of issues) {
    const field = unknown(i, at(i));
    if (field !== undefined) return { field, kind: 'unknown', message: 'is not a known field' };
  }
  const i = issues[0];
  if (!i) return { field: '', kind: 'invalid', message: 'is invalid' };
  // A choice of constants (a union of literals) fails once per constant: name them all.
  const allowed = issues
    .filter((o) => o.keyword === 'const' && at(o) === at(i))
    .map((o) => o.params?.allowedValue)
    .filter((v) => v !== undefined);
  if (allowed.length > 1) {
    return {
      field: at(i),
      kind: 'invalid',
      message: `must be one of: ${allowed.map((v) => JSON.stringify(v)).join(', ')}`,
    };
  }
  return { field: at(i), kind: 'invalid', message: i.message ?? 'is invalid' };
}
