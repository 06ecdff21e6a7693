/** A PeerTransport that calls peer SubscriptionManagers in the same process (tests, demo, benchmarks). */
import type { PeerAddress, PeerMessage, PeerReply, PeerTransport } from './peer-api.ts';

export interface PeerEndpoint {
  readonly smId: string;
  handlePeerMessage(callerSmId: string, message: PeerMessage): Promise<PeerReply>;
}

export class InProcessPeerTransport implements PeerTransport {
  readonly #peers = new Map<string, PeerEndpoint>();
  /** SM ids that are unreachable for now (to exercise retries). */
  readonly down = new Set<string>();

  register(...endpoints: PeerEndpoint[]): this {
    for (const e of endpoints) this.#peers.set(e.smId, e);
    return this;
  }

  async send(callerSmId: string, target: PeerAddress, message: PeerMessage): Promise<PeerReply> {
    const peer = this.#peers.get(target.smId);
    if (!peer || this.down.has(target.smId))
      throw new Error(`${target.smId} at ${target.address} is unreachable`);
    return peer.handlePeerMessage(callerSmId, message);
  }
}
