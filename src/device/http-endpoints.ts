/**
 * The Device API of PROTOCOL.md §9 seen from the device agent: server TLS only (the agent holds
 * no secret); every payload is a signed DER message, base64 in JSON.
 */
import { httpsJson } from '../net/https-json.ts';
import type { SmEndpoints } from './agent.ts';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const join = (base: string, path: string) => `${base.replace(/\/+$/, '')}${path}`;

export function httpSmEndpoints(caPems: readonly string[], timeoutMs?: number): SmEndpoints {
  const o = { ca: caPems, ...(timeoutMs !== undefined && { timeoutMs }) };
  return {
    async poll(address, eid) {
      const r = await httpsJson<{ messages: string[] }>(
        'GET',
        join(address, `/device/v1/chips/${eid}/messages`),
        undefined,
        o,
      );
      return r.messages.map(bytes);
    },
    async postTransferRequest(address, request) {
      const r = await httpsJson<{ message: string }>(
        'POST',
        join(address, '/device/v1/transfer-requests'),
        { message: b64(request) },
        o,
      );
      return bytes(r.message);
    },
    async postHandoverResult(address, result) {
      await httpsJson('POST', join(address, '/device/v1/handover-results'), { message: b64(result) }, o);
    },
    async postChipResult(address, result) {
      await httpsJson('POST', join(address, '/device/v1/chip-results'), { message: b64(result) }, o);
    },
  };
}
