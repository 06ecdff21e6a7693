/**
 * What node:crypto's key forms cost on this machine (OpenSSL 3): µs per call of building,
 * exporting and using EC keys in the ways the protocol code could. The figures behind
 * src/protocol/crypto/one-time-key.ts and the JWK import in keys.ts (BENCHMARKS.md).
 *
 *   npm run bench:keys [-- --calls N]    (default 3000 calls per row, after 200 warm-up calls)
 *
 * Prints one JSON object: usPerCall: {curve: {row: µs per call}}. One core, no other load wanted.
 */
import {
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type JsonWebKey,
  sign,
  verify,
} from 'node:crypto';
import { CURVES, OPENSSL_NAME } from '../src/protocol/crypto/curves.ts';
import { ecPkcs8Parts } from '../src/protocol/crypto/one-time-key.ts';

function scalarOf(pkcs8: Buffer): Uint8Array {
  const parts = ecPkcs8Parts(new Uint8Array(pkcs8));
  if (!parts) throw new Error('not a PKCS#8 EC key');
  return parts.scalar;
}

function callsArg(): number {
  const i = process.argv.indexOf('--calls');
  if (i < 0) return 3000;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write('--calls is a whole number from 1\n');
    process.exit(2);
  }
  return n;
}

const calls = callsArg();

/** Mean µs per call of `fn(i)`. */
function time(fn: (i: number) => unknown): number {
  for (let i = 0; i < 200; i++) fn(i);
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) fn(i);
  return Math.round(Number(process.hrtime.bigint() - start) / 100 / calls) / 10;
}

const POOL = 200;
const result: Record<string, Record<string, number>> = {};
for (const curve of CURVES) {
  const name = OPENSSL_NAME[curve];
  const keys = Array.from({ length: POOL }, () => generateKeyPairSync('ec', { namedCurve: name }));
  const pkcs8 = keys.map((k) => k.privateKey.export({ type: 'pkcs8', format: 'der' }));
  const sec1 = keys.map((k) => k.privateKey.export({ type: 'sec1', format: 'der' }));
  const spki = keys.map((k) => k.publicKey.export({ type: 'spki', format: 'der' }));
  const points = spki.map((d) => d.subarray(d.length - 65));
  const scalars = Array.from({ length: POOL }, () => {
    const e = createECDH(name);
    e.generateKeys();
    return e.getPrivateKey();
  });
  const data = Buffer.alloc(200, 1);
  const signature = sign('sha256', data, keys[0]!.privateKey);
  const one = createECDH(name);
  one.generateKeys();
  const row: Record<string, number> = {
    generateKeyPairSync: time(() => generateKeyPairSync('ec', { namedCurve: name })),
    'generateKeyPairSync + SPKI export': time(() =>
      generateKeyPairSync('ec', { namedCurve: name }).publicKey.export({ type: 'spki', format: 'der' }),
    ),
    'generateKeyPairSync + SPKI export + PKCS#8 PEM export': time(() => {
      const k = generateKeyPairSync('ec', { namedCurve: name });
      k.publicKey.export({ type: 'spki', format: 'der' });
      k.privateKey.export({ type: 'pkcs8', format: 'pem' });
    }),
    'ECDH class: key pair with point and scalar': time(() => {
      const e = createECDH(name);
      e.generateKeys();
      e.getPrivateKey();
    }),
    'private key from PKCS#8 DER': time((i) =>
      createPrivateKey({ key: pkcs8[i % POOL]!, format: 'der', type: 'pkcs8' }),
    ),
    'private key from SEC1 DER': time((i) =>
      createPrivateKey({ key: sec1[i % POOL]!, format: 'der', type: 'sec1' }),
    ),
    'public key from SPKI DER': time((i) =>
      createPublicKey({ key: spki[i % POOL]!, format: 'der', type: 'spki' }),
    ),
    'ECDH class: set scalar': time((i) => createECDH(name).setPrivateKey(scalars[i % POOL]!)),
    'ECDH class: set scalar + shared secret': time((i) => {
      const e = createECDH(name);
      e.setPrivateKey(scalars[i % POOL]!);
      e.computeSecret(points[(i + 1) % POOL]!);
    }),
    'ECDH class: shared secret only': time((i) => one.computeSecret(points[i % POOL]!)),
    'diffieHellman on two KeyObjects': time((i) =>
      diffieHellman({ privateKey: keys[i % POOL]!.privateKey, publicKey: keys[(i + 1) % POOL]!.publicKey }),
    ),
    'sign (KeyObject)': time((i) =>
      sign('sha256', data, { key: keys[i % POOL]!.privateKey, dsaEncoding: 'ieee-p1363' }),
    ),
    'verify (KeyObject)': time(() => verify('sha256', data, keys[0]!.publicKey, signature)),
  };
  if (curve === 'p256') {
    // Import only: exporting a key as JWK is what hung on this Node (keys.ts).
    const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
    const jwks: JsonWebKey[] = points.map((p, i) => ({
      kty: 'EC',
      crv: 'P-256',
      x: b64u(p.subarray(1, 33)),
      y: b64u(p.subarray(33)),
      d: b64u(scalarOf(pkcs8[i]!)),
    }));
    row['private key from JWK'] = time((i) => createPrivateKey({ key: jwks[i % POOL]!, format: 'jwk' }));
    row['public key from JWK'] = time((i) => {
      const { kty, crv, x, y } = jwks[i % POOL]!;
      return createPublicKey({ key: { kty, crv, x, y }, format: 'jwk' });
    });
  }
  result[curve] = row;
}
process.stdout.write(
  `${JSON.stringify({ bench: 'key-forms', node: process.version, calls, usPerCall: result })}\n`,
);
