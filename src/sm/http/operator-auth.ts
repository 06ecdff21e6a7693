/**
 * Operator authentication (PROTOCOL.md §9 operator API): `Authorization: Bearer <token>`. Tokens
 * are kept only as SHA-256 hashes (server-config.ts); a presented token is hashed and compared
 * with every configured hash in constant time, without stopping at a match, so neither timing nor
 * order tells anything about the tokens.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { OperatorTokenConfig } from '../server-config.ts';
import { ApiError } from './errors.ts';

const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/i;

export class OperatorAuthenticator {
  readonly #operators: readonly { readonly id: string; readonly hash: Buffer }[];

  constructor(operators: readonly OperatorTokenConfig[]) {
    this.#operators = operators.map((o) => ({ id: o.id, hash: Buffer.from(o.tokenSha256, 'hex') }));
  }

  /** The operator whose token this Authorization header carries; Unauthenticated otherwise. */
  authenticate(authorization: string | undefined): string {
    const m = authorization === undefined ? null : BEARER.exec(authorization);
    if (!m) {
      throw new ApiError('Unauthenticated', 'send "Authorization: Bearer <token>" with an operator token');
    }
    const presented = createHash('sha256').update(m[1]!, 'utf8').digest();
    let found: string | undefined;
    for (const op of this.#operators) {
      if (timingSafeEqual(presented, op.hash) && found === undefined) found = op.id;
    }
    if (found === undefined) throw new ApiError('Unauthenticated', 'the bearer token is not valid');
    return found;
  }
}
