/**
 * For benchmarks: when HANDOVER_CRYPTO_COUNTS_FILE names a file, the process writes its crypto
 * operation counts there (JSON, replaced atomically) every half second and at exit, so the fleet
 * benchmark can count the signatures, verifications, key generations and ECDH operations that a
 * transfer really costs in each process.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { cryptoOpCounts } from '../protocol/crypto/op-counts.ts';

export const CRYPTO_COUNTS_ENV = 'HANDOVER_CRYPTO_COUNTS_FILE';

export function startCryptoCountsFile(env: NodeJS.ProcessEnv = process.env): void {
  const path = env[CRYPTO_COUNTS_ENV];
  if (!path) return;
  const write = () => {
    try {
      writeFileSync(`${path}.tmp`, `${JSON.stringify(cryptoOpCounts())}\n`);
      renameSync(`${path}.tmp`, path);
    } catch {
      // A benchmark aid: a file that cannot be written is not the command's failure.
    }
  };
  write();
  setInterval(write, 500).unref();
  process.on('exit', write);
}
