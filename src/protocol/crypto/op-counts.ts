/**
 * How many ECDSA signatures, verifications, key generations and ECDH operations this process
 * has done (ecdsa.ts, keys.ts, ecdh.ts count each call). The fleet benchmark reads them to
 * state the crypto of one transfer as measured, not as estimated (BENCHMARKS.md).
 */
export interface CryptoOpCounts {
  sign: number;
  verify: number;
  keygen: number;
  ecdh: number;
}

const counts: CryptoOpCounts = { sign: 0, verify: 0, keygen: 0, ecdh: 0 };

/** Adds one operation of `op` (called by the crypto functions themselves). */
export function countCryptoOp(op: keyof CryptoOpCounts): void {
  counts[op]++;
}

/** A copy of the counts so far. */
export function cryptoOpCounts(): CryptoOpCounts {
  return { ...counts };
}
