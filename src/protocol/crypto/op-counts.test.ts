import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ecdh } from './ecdh.ts';
import { ecdsaSign, ecdsaVerify } from './ecdsa.ts';
import { generateKeyPair } from './keys.ts';
import { cryptoOpCounts } from './op-counts.ts';

test('every signature, verification, key generation and ECDH is counted, failed verifications too', () => {
  const before = cryptoOpCounts();
  const a = generateKeyPair('p256');
  const b = generateKeyPair('p256');
  const data = new Uint8Array([1, 2, 3]);
  const sig = ecdsaSign(a.privateKey, data);
  assert.equal(ecdsaVerify(a.publicKey, data, sig), true);
  assert.equal(ecdsaVerify(a.publicKey, new Uint8Array([9]), sig), false);
  ecdh(a.privateKey, b.publicKey);
  const after = cryptoOpCounts();
  assert.deepEqual(
    {
      sign: after.sign - before.sign,
      verify: after.verify - before.verify,
      keygen: after.keygen - before.keygen,
      ecdh: after.ecdh - before.ecdh,
    },
    { sign: 1, verify: 2, keygen: 2, ecdh: 1 },
  );
});
