import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { activationCodeMatches, activationHashesMatch, hashActivationCode } from './activation-code.ts';

test('the hash is SHA-256 of the UTF-8 code', () => {
  const expected = createHash('sha256').update('LPA:1$example$ABC', 'utf8').digest();
  assert.deepEqual(hashActivationCode('LPA:1$example$ABC'), new Uint8Array(expected));
  assert.deepEqual(
    Buffer.from(hashActivationCode('abc')).toString('hex'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
});

test('a code matches its own hash and no other', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/[\p{Cc}\p{Cs}]/u.test(s)),
      fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !/[\p{Cc}\p{Cs}]/u.test(s)),
      (a, b) => {
        const h = hashActivationCode(a);
        assert.ok(activationCodeMatches(a, h));
        assert.equal(activationCodeMatches(b, h), a === b);
      },
    ),
  );
});

test('hash comparison refuses other lengths and bad codes', () => {
  const h = hashActivationCode('x');
  assert.equal(activationHashesMatch(h, h.subarray(0, 31)), false);
  assert.equal(activationHashesMatch(h.subarray(0, 16), h.subarray(0, 16)), false);
  assert.throws(() => hashActivationCode(''), { code: 'InvalidInput' });
  assert.throws(() => hashActivationCode('x'.repeat(257)), { code: 'InvalidInput' });
});
