/**
 * Exits with `code` once everything written to stdout and stderr has reached the OS. Writes to
 * a pipe are asynchronous: a process.exit() at once cut a long JSON answer at 64 KiB.
 */
export function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let open = 2;
  const flushed = () => {
    open -= 1;
    if (open === 0) process.exit(code);
  };
  process.stdout.write('', flushed);
  process.stderr.write('', flushed);
}
