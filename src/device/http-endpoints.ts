/**
 * The Device API of PROTOCOL.md §9 seen from the device agent: server TLS only (the agent holds
 * no secret); every payload is a signed DER message, base64 in JSON.
 */
import { httpsJson } from '../net/https-json.ts';
import type { BatchSmEndpoints } from './batch-agent.ts';

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const join = (base: string, path: string) => `${base.replace(/\/+$/, '')}${path}`;

export function httpSmEndpoints(caPems: readonly string[], timeoutMs?: number): BatchSmEndpoints {
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
    async pollMany(address, eids) {
      const out = new Map<string, Uint8Array[]>();
      // The SM takes at most 1000 EIDs a call.
      for (let i = 0; i < eids.length; i += 1000) {
        const r = await httpsJson<{ messages: Record<string, string[]> }>(
          'POST',
          join(address, '/device/v1/poll'),
          { eids: eids.slice(i, i + 1000) },
          o,
        );
        for (const [eid, list] of Object.entries(r.messages)) out.set(eid, list.map(bytes));
      }
      return out;
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
