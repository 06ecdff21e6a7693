import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Type } from '@fastify/type-provider-typebox';
import type { FastifyRouteSchemaDef } from 'fastify/types/schema.js';
import { strictValidatorCompiler } from './strict-validator.ts';

const schema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1 })),
  ratio: Type.Optional(Type.Number()),
  all: Type.Optional(Type.Boolean()),
  name: Type.Optional(Type.String()),
});

function validator(httpPart: string) {
  const def = { schema, method: 'GET', url: '/x', httpPart } as FastifyRouteSchemaDef<unknown>;
  return strictValidatorCompiler(def) as (data: unknown) => { value?: unknown; error?: unknown };
}

test('query text for numbers and booleans must be written as such', () => {
  const v = validator('querystring');
  for (const [field, bad] of [
    ['limit', '1.5'],
    ['limit', '0x10'],
    ['limit', '1e3'],
    ['limit', ' 5'],
    ['limit', '007'],
    ['limit', 'true'],
    ['ratio', '1e2'],
    ['ratio', '.5'],
    ['all', '1'],
    ['all', 'yes'],
  ] as const) {
    const r = v({ [field]: bad });
    assert.ok(r.error, `${field}=${bad} refused`);
    assert.equal((r.error as { instancePath: string }[])[0]?.instancePath, `/${field}`);
  }
  assert.deepEqual(v({ limit: '12', ratio: '-0.25', all: 'false', name: '0x10' }).value, {
    limit: 12,
    ratio: -0.25,
    all: false,
    name: '0x10',
  });
  // typebox's own checks still apply after ours.
  assert.ok(v({ limit: '0' }).error);
});

test('the body is typebox’s alone (JSON has types of its own)', () => {
  const v = validator('body');
  assert.ok(v({ limit: '5' }).error, 'a string is not an integer in a body');
  assert.deepEqual(v({ limit: 5 }).value, { limit: 5 });
});
