/**
 * `npm run bench`: the fleet benchmark when `--chips` is given (bench/fleet.ts: two SM servers,
 * the chip farm and the device agent as separate processes), else the crypto micro-benchmark
 * (bench/crypto.ts). `npm run bench -- --help` says more.
 *
 *   npm run bench -- --chips N [--curve p256|brainpoolP256r1] [--store sqlite|postgres]
 *   npm run bench [-- --seconds N]
 */
const argv = process.argv.slice(2);
const fleet = argv.some((a) => a === '--chips' || a.startsWith('--chips='));
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`Usage:
  npm run bench -- --chips N [--curve p256|brainpoolP256r1] [--store sqlite|postgres]
                  [--concurrency N] [--timeout-seconds N] [--cpu-prof DIR] [--heap-mb N]
                  [--bulk N [--bulk-rate R] | --order-concurrency N]
      Fleet benchmark: moves N chips from SM A to SM B end to end (two SM servers, the chip farm
      and the batch device agent, each its own process) and prints one JSON object (transfers,
      seconds, transfersPerSecond, p50/p99, peak RSS per process, cryptoFloorPerSecond, ratio).
      --bulk N orders the port-ins as one bulk job at SM B (at most N in flight, R started per
      second, default 1000) instead of one order per chip at once; without it, the orders go
      --order-concurrency N at a time (default 16).
      --concurrency N: chips the device agent serves at once (default 64).
      --heap-mb N caps each child process's V8 heap (node --max-old-space-size=N).
      --cpu-prof DIR writes a V8 CPU profile of each child; \`npm run bench:profile -- DIR\` sums them.
      --store postgres uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
  npm run bench [-- --seconds N]
      Crypto micro-benchmark: ECDSA sign/verify, key generation and ECDH per second, both curves.
See BENCHMARKS.md for what each figure means.
`);
} else if (fleet) {
  await import('./fleet.ts');
} else {
  await import('./crypto.ts');
}
