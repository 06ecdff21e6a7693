/**
 * The operator side of the `handover` CLI: where the SM is, the bearer token, and the CI that
 * its server certificate chains to. Flags win over the environment (HANDOVER_SM_URL,
 * HANDOVER_TOKEN, HANDOVER_CA). The token is never printed.
 */
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { readCaFile } from '../net/ca-file.ts';
import { httpsJson } from '../net/https-json.ts';
import { HandoverError, InvalidInput } from '../protocol/errors.ts';

export interface OperatorFlags {
  sm?: string;
  token?: string;
  ca?: string;
}

export interface OperatorClient {
  get<T>(path: string): Promise<T>;
  /** Mutating call: sends a fresh Idempotency-Key. */
  post<T>(path: string, body: unknown): Promise<T>;
  put<T>(path: string, body: unknown): Promise<T>;
}

export function addOperatorFlags(cmd: Command): Command {
  return cmd
    .option('--sm <url>', 'https base URL of your SM (env HANDOVER_SM_URL)')
    .option('--token <token>', 'operator bearer token (env HANDOVER_TOKEN)')
    .option('--ca <file>', 'CI certificate (PEM) the SM server certificate chains to (env HANDOVER_CA)');
}

/**
 * A call that got no typed answer is still a failed operation (exit 1 with a JSON error), not an
 * internal error: TlsUntrusted (the server certificate does not chain to --ca), SmUnreachable (no
 * connection, timeout) or SmServerError (5xx).
 */
function failure(e: unknown): HandoverError {
  if (e instanceof HandoverError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const code = /: HTTP \d{3}\b/.test(message) ? 'SmServerError' : 'SmUnreachable';
  return new HandoverError(code, message);
}

export function operatorClient(flags: OperatorFlags): OperatorClient {
  const sm = flags.sm ?? process.env.HANDOVER_SM_URL;
  const token = flags.token ?? process.env.HANDOVER_TOKEN;
  const caFile = flags.ca ?? process.env.HANDOVER_CA;
  if (!sm) throw new InvalidInput('UsageError', 'give the SM base URL: --sm https://… or HANDOVER_SM_URL');
  if (!/^https:\/\//.test(sm))
    throw new InvalidInput(
      'UsageError',
      `the SM base URL must start with https:// (the SM serves TLS only), got "${sm}"`,
    );
  if (!token) throw new InvalidInput('UsageError', 'give the operator token: --token or HANDOVER_TOKEN');
  if (!caFile) throw new InvalidInput('UsageError', 'give the CI certificate: --ca FILE or HANDOVER_CA');
  const ca = readCaFile(caFile);
  const base = sm.replace(/\/+$/, '');
  const auth = { authorization: `Bearer ${token}` };
  const call = <T>(method: string, path: string, body: unknown, mutating: boolean) =>
    httpsJson<T>(method, `${base}${path}`, body, {
      ca: [ca],
      headers: mutating ? { ...auth, 'idempotency-key': randomUUID() } : auth,
    }).catch((e: unknown) => {
      throw failure(e);
    });
  return {
    get: (path) => call('GET', path, undefined, false),
    post: (path, body) => call('POST', path, body, true),
    put: (path, body) => call('PUT', path, body, true),
  };
}

export const printJson = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v)}\n`);
};
