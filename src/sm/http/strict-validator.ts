/**
 * The validator of every route: typebox's, with one rule of our own before it for the parts
 * that arrive as text (query string, path parameters, headers). Typebox converts such text to
 * the schema's type leniently: `limit=1.5` became 1, `0x10` 16, `1e3` 1000, `true` 1. Here a
 * text value for an integer must be written as one (`-?(0|[1-9][0-9]*)`), a number as a
 * decimal, a boolean as `true` or `false`; anything else is refused as the body would be.
 */

import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { FastifySchemaCompiler } from 'fastify';

const WRITTEN_AS: Readonly<Record<string, RegExp>> = {
  integer: /^-?(0|[1-9][0-9]*)$/,
  number: /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/,
  boolean: /^(true|false)$/,
};

type Schema = { readonly type?: unknown; readonly properties?: Record<string, Schema> };

/** The top-level properties whose text must be written in a strict form, with that form. */
function strictProperties(schema: Schema): [string, string, RegExp][] {
  const out: [string, string, RegExp][] = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const type = typeof property.type === 'string' ? property.type : undefined;
    const form = type === undefined ? undefined : WRITTEN_AS[type];
    if (type !== undefined && form !== undefined) out.push([name, type, form]);
  }
  return out;
}

export const strictValidatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  const typebox = TypeBoxValidatorCompiler(route as Parameters<typeof TypeBoxValidatorCompiler>[0]);
  if (route.httpPart === 'body' || route.httpPart === undefined) return typebox;
  const strict = strictProperties(route.schema as Schema);
  if (strict.length === 0) return typebox;
  return (data: unknown) => {
    if (data !== null && typeof data === 'object') {
      const record = data as Record<string, unknown>;
      for (const [name, type, form] of strict) {
        const value = record[name];
        if (typeof value === 'string' && !form.test(value)) {
          return {
            error: [
              {
                keyword: 'type',
                instancePath: `/${name}`,
                schemaPath: `#/properties/${name}`,
                params: { type },
                message: `must be ${type === 'integer' ? 'an integer' : type === 'number' ? 'a number' : 'true or false'}`,
              },
            ],
          };
        }
      }
    }
    return typebox(data);
  };
};
