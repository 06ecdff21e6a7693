import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readSingle } from '../der/reader.ts';
import { ctx } from '../der/tag.ts';
import { MalformedMessage } from '../errors.ts';
import { smIdProblem } from '../pki/validate.ts';
import { isPrintable, smIdField } from './fields.ts';

const tag = ctx(0);
const roundTrip = (smId: string): string =>
  smIdField.decode(readSingle(smIdField.encode(tag, smId), 'smId'), 'smId');

test('SmId: printable UTF-8 decodes; controls, format characters and separators are malformed', () => {
  for (const ok of ['sm-beta.example', 'é'.repeat(64), 'SM Ω 1', ' padded ']) assert.equal(roundTrip(ok), ok);
  for (const bad of [
    'a\nb',
    'a\u0000b',
    'del\u007f',
    'c1\u0085',
    'zw\u200bsp',
    '\ufeffbom',
    'rtl\u202e',
    'ls\u2028',
  ]) {
    assert.equal(isPrintable(bad), false, JSON.stringify(bad));
    assert.throws(
      () => roundTrip(bad),
      (e: unknown) => e instanceof MalformedMessage && /not printable/.test(e.message),
      JSON.stringify(bad),
    );
    // Certificates and configuration refuse the same characters (and also white space at the ends).
    assert.match(smIdProblem(bad) ?? '', /printable/, JSON.stringify(bad));
  }
  assert.match(smIdProblem(' padded ') ?? '', /white space/);
});

test('UTF-8 is decoded as it is: a leading byte order mark is kept (and so refused), never dropped', () => {
  const withBom = Uint8Array.from([0x80, 6, 0xef, 0xbb, 0xbf, 0x73, 0x6d, 0x31]);
  assert.throws(() => smIdField.decode(readSingle(withBom, 'smId'), 'smId'), /not printable/);
});
