/** ANSI X9.63 KDF with SHA-256 against NIST CAVP ansx963_2001.rsp (test/vectors/rfc). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { x963Kdf } from './x963-kdf.ts';

interface KdfFile {
  hash: string;
  tests: {
    tcId: number;
    Z: string;
    SharedInfo: string;
    key_data_length_bytes: number;
    key_data: string;
  }[];
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const data = JSON.parse(
  readFileSync(new URL('../../../test/vectors/rfc/ansx963_kdf_sha256_cavp.json', import.meta.url), 'utf8'),
) as KdfFile;

test('NIST CAVP ansx963_2001 SHA-256 vectors', (t) => {
  assert.equal(data.hash, 'SHA-256');
  let runs = 0;
  for (const v of data.tests) {
    const out = x963Kdf(hex(v.Z), hex(v.SharedInfo), v.key_data_length_bytes);
    assert.equal(Buffer.from(out).toString('hex'), v.key_data, `tcId ${v.tcId}`);
    runs++;
  }
  assert.ok(runs > 0, 'no test cases ran');
  assert.equal(runs, data.tests.length);
  t.diagnostic(`ansx963_kdf_sha256_cavp.json: ${runs} cases`);
});

test('output is the counter-mode hash stream, and shorter outputs are prefixes', () => {
  const z = new Uint8Array(32).fill(0x5a);
  const si = Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01);
  const block = (i: number) =>
    createHash('sha256')
      .update(z)
      .update(Uint8Array.of(0, 0, 0, i))
      .update(si)
      .digest();
  const full = x963Kdf(z, si, 64);
  assert.deepEqual(Buffer.from(full), Buffer.concat([block(1), block(2)]));
  for (const length of [0, 1, 16, 31, 32, 33, 48]) {
    assert.deepEqual(x963Kdf(z, si, length), full.subarray(0, length), `length ${length}`);
  }
  assert.deepEqual(Buffer.from(x963Kdf(z, si, 65)).subarray(64), block(3).subarray(0, 1));
});
