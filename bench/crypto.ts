/**
 * Crypto benchmark: ECDSA sign (plain r||s), verify, key-pair generation and ECDH on one-time
 * key pairs, on both curves. Prints one JSON object to stdout.
 *
 *   npm run bench [-- --seconds N]     (default 1 second per measurement)
 */
import os from 'node:os';
import { CURVES, type Curve } from '../src/protocol/crypto/curves.ts';
import { ecdsaSign, ecdsaVerify } from '../src/protocol/crypto/ecdsa.ts';
import { generateKeyPair } from '../src/protocol/crypto/keys.ts';
import { generateOneTimeKey, oneTimeSharedSecret } from '../src/protocol/crypto/one-time-key.ts';

function parseSeconds(argv: readonly string[]): number {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--seconds') value = argv[i + 1];
    else if (arg.startsWith('--seconds=')) value = arg.slice('--seconds='.length);
  }
  if (value === undefined) return 1;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) {
    process.stderr.write(`--seconds must be a number of seconds in (0, 600], got "${value}"\n`);
    process.exit(2);
  }
  return seconds;
}

/** Runs `op` repeatedly for about `seconds` (after a short warm-up); returns operations per second. */
function measure(seconds: number, op: (i: number) => void): number {
  const warmUpEnd = process.hrtime.bigint() + BigInt(Math.round(Math.min(0.1, seconds / 10) * 1e9));
  for (let i = 0; process.hrtime.bigint() < warmUpEnd; i++) op(i);
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let count = 0;
  let now = start;
  while (now < end) {
    op(count++);
    now = process.hrtime.bigint();
  }
  return Math.round((count * 1e9) / Number(now - start));
}

interface CurveResult {
  signPerSec: number;
  verifyPerSec: number;
  keygenPerSec: number;
  ecdhPerSec: number;
}

function benchCurve(curve: Curve, seconds: number): CurveResult {
  const signer = generateKeyPair(curve);
  const data = new Uint8Array(256).fill(0xa5);
  const signature = ecdsaSign(signer.privateKey, data, 'plain');
  if (!ecdsaVerify(signer.publicKey, data, signature, 'plain'))
    throw new Error(`${curve}: self-check failed`);

  const signPerSec = measure(seconds, () => {
    ecdsaSign(signer.privateKey, data, 'plain');
  });
  const verifyPerSec = measure(seconds, () => {
    if (!ecdsaVerify(signer.publicKey, data, signature, 'plain')) throw new Error(`${curve}: verify failed`);
  });
  // Key generation and ECDH as the protocol code does them (one-time-key.ts).
  const keygenPerSec = measure(seconds, () => {
    generateOneTimeKey(curve);
  });
  // One-time key pairs are generated beforehand, so this counts the key agreement alone.
  const pool = Array.from({ length: 16 }, () => generateOneTimeKey(curve));
  const ecdhPerSec = measure(seconds, (i) => {
    const a = pool[i % pool.length]!;
    const b = pool[(i + 1) % pool.length]!;
    oneTimeSharedSecret(curve, a.scalar, b.publicPoint);
  });
  return { signPerSec, verifyPerSec, keygenPerSec, ecdhPerSec };
}

const seconds = parseSeconds(process.argv.slice(2));
const cpus = os.cpus();
const result: Record<string, unknown> = {
  node: process.version,
  openssl: process.versions.openssl,
  platform: `${process.platform}-${process.arch}`,
  cpus: cpus.length,
  cpuModel: cpus[0]?.model ?? 'unknown',
  secondsPerMeasurement: seconds,
};
for (const curve of CURVES) result[curve] = benchCurve(curve, seconds);
process.stdout.write(`${JSON.stringify(result)}\n`);
