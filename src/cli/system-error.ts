/**
 * Failures that come from the system rather than from our code (a file in the way, a port in
 * use, a host that does not resolve, a file that is not a database), turned into typed errors
 * with a hint, so the CLI prints `{"error":{code,message,details}}` and exits 1 instead of a
 * stack trace. Anything else stays an internal error.
 */
import { errorCode, HandoverError } from '../protocol/errors.ts';

const HINTS: Record<string, [code: string, hint: string]> = {
  ENOENT: ['FileError', 'no such file or folder'],
  EEXIST: ['FileError', 'something is already there: remove it or choose another path'],
  ENOTDIR: ['FileError', 'a part of the path is a file, not a folder'],
  EISDIR: ['FileError', 'this is a folder where a file was expected'],
  ENOTEMPTY: ['FileError', 'the folder is not empty'],
  EACCES: ['FileError', 'permission denied'],
  EPERM: ['FileError', 'operation not permitted'],
  EROFS: ['FileError', 'read-only file system'],
  ENOSPC: ['FileError', 'no space left on the device'],
  EADDRINUSE: ['NetworkError', 'the address is in use: choose another host or port'],
  EADDRNOTAVAIL: ['NetworkError', 'this machine has no such address to listen on'],
  ENOTFOUND: ['NetworkError', 'the host name does not resolve'],
  EAI_AGAIN: ['NetworkError', 'the host name could not be resolved now'],
  ECONNREFUSED: ['NetworkError', 'nothing accepts connections there'],
  ECONNRESET: ['NetworkError', 'the connection was reset'],
  ETIMEDOUT: ['NetworkError', 'the connection timed out'],
};

function stringField(e: object, name: string): string | undefined {
  const v = (e as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

/** The typed form of a system failure, or undefined when `e` is not one. */
export function systemErrorOf(e: unknown): HandoverError | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = errorCode(e);
  // better-sqlite3: SQLITE_NOTADB, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_READONLY, …
  if (e.name === 'SqliteError' || (code?.startsWith('SQLITE_') ?? false)) {
    return new HandoverError('StoreError', `SQLite: ${e.message}`, { sqlite: code ?? 'unknown' });
  }
  // AggregateError (e.g. a connection tried on IPv4 and IPv6): its first system error speaks.
  if (e instanceof AggregateError && e.errors.length > 0) return systemErrorOf(e.errors[0]);
  if (code === undefined) return undefined;
  const known = HINTS[code];
  if (!known) return undefined;
  const [typed, hint] = known;
  const details: Record<string, unknown> = { errno: code };
  for (const k of ['syscall', 'path', 'dest', 'address', 'hostname']) {
    const v = stringField(e, k);
    if (v !== undefined) details[k] = v;
  }
  const port = (e as { port?: unknown }).port;
  if (typeof port === 'number') details.port = port;
  return new HandoverError(typed, `${hint} (${e.message})`, details);
}
