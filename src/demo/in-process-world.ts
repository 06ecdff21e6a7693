/**
 * Composition root for a complete transfer in one process (PROTOCOL.md §6): a dev PKI, SMs over
 * in-memory stores, one chip with its state in a file, and a device agent relaying bytes over
 * APDUs. The chip and the SMs still meet only through encoded bytes; this module is the only
 * place that sees both, as a real deployment's wiring would.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ChipCard } from '../chip/apdu.ts';
import { createChipState } from '../chip/create.ts';
import { FileStateStore } from '../chip/file-store.ts';
import { ChipProcessor } from '../chip/processor.ts';
import { DeviceAgent, type DeviceStep, type SmEndpoints } from '../device/agent.ts';
import { sendCommand } from '../device/apdu-client.ts';
import type { Curve } from '../protocol/crypto/curves.ts';
import { keySigner } from '../protocol/crypto/signer.ts';
import { makeEid } from '../protocol/eid.ts';
import { HandoverError } from '../protocol/errors.ts';
import { createDevPki, type DevPki } from '../protocol/pki/dev-pki.ts';
import { InProcessPeerTransport } from '../sm/in-process-transport.ts';
import type { PeerAddress, PeerMessage, PeerReply, PeerTransport } from '../sm/peer-api.ts';
import { MemoryStore } from '../sm/store/memory.ts';
import { SubscriptionManager } from '../sm/subscription-manager.ts';

export interface WorldSm {
  readonly smId: string;
  readonly operatorId: string;
  readonly address: string;
  readonly sm: SubscriptionManager;
  readonly store: MemoryStore;
}

export interface InProcessWorld {
  readonly pki: DevPki;
  readonly sms: readonly WorldSm[];
  readonly peers: PeerTransport;
  readonly chip: { readonly eid: string; readonly statePath: string; readonly card: ChipCard };
  sendToChip(der: Uint8Array): Promise<Uint8Array>;
  device(onStep?: (s: DeviceStep) => void): DeviceAgent;
  sm(smId: string): WorldSm;
}

export interface WorldOptions {
  readonly dir: string;
  readonly curve: Curve;
  readonly smIds?: readonly string[];
  /** The chip's serial inside the dev EUM's EID prefix. */
  readonly chipSerial?: number;
  readonly profiles?: readonly { iccid: string; operator: string; enabled: boolean }[];
  readonly onPeerMessage?: (from: string, to: string, message: PeerMessage) => void;
}

export const addressOf = (smId: string): string => `https://${smId}/handover`;

/** Logs each peer message, then delivers it in-process. */
class ObservedTransport implements PeerTransport {
  constructor(
    private readonly inner: PeerTransport,
    private readonly observe: (from: string, to: string, m: PeerMessage) => void,
  ) {}
  send(caller: string, target: PeerAddress, message: PeerMessage): Promise<PeerReply> {
    this.observe(caller, target.smId, message);
    return this.inner.send(caller, target, message);
  }
}

export function createInProcessWorld(o: WorldOptions): InProcessWorld {
  mkdirSync(o.dir, { recursive: true });
  const smIds = o.smIds ?? ['sm-alpha.example', 'sm-beta.example'];
  const pki = createDevPki({ curve: o.curve, dir: join(o.dir, 'pki'), smIds, force: true });
  const certOf = (smId: string) => {
    const e = pki.sms.get(smId);
    if (!e) throw new HandoverError('UnknownSm', `no SM ${smId} in the dev PKI`);
    return e;
  };
  const sms: WorldSm[] = smIds.map((smId, i) => {
    const directory = new Map(
      smIds
        .filter((p) => p !== smId)
        .map((p) => [p, { address: addressOf(p), certificate: certOf(p).certificate.der }]),
    );
    const operatorId = `mno-${String.fromCharCode(97 + i)}`;
    const store = new MemoryStore();
    const sm = new SubscriptionManager({
      smId,
      signer: keySigner(certOf(smId).privateKey),
      certificate: certOf(smId).certificate.der,
      trustedCis: [pki.ci.certificate],
      store,
      operators: [{ id: operatorId, approvalRequired: false }],
      directory,
    });
    return { smId, operatorId, address: addressOf(smId), sm, store };
  });
  const inner = new InProcessPeerTransport().register(...sms.map((s) => s.sm));
  const peers = o.onPeerMessage ? new ObservedTransport(inner, o.onPeerMessage) : inner;

  const eid = makeEid(
    pki.manifest.eidPrefix + String(o.chipSerial ?? 1).padStart(30 - pki.manifest.eidPrefix.length, '0'),
  );
  const first = sms[0]!;
  const state = createChipState({
    identity: { kind: 'issue', eid, eumCertificate: pki.eum.certificate, eumKey: pki.eum.privateKey },
    ciCertificates: [pki.ci.certificate],
    smId: first.smId,
    smCertificate: certOf(first.smId).certificate,
    profiles: (o.profiles ?? []).map((p) => ({
      iccid: p.iccid,
      operator: p.operator,
      state: p.enabled ? 'enabled' : 'disabled',
    })),
  });
  const statePath = join(o.dir, 'chip.json');
  const store = new FileStateStore(statePath);
  store.save(state);
  const card = new ChipCard(new ChipProcessor(store));
  const sendToChip = (der: Uint8Array) => sendCommand((apdu) => card.transmit(apdu), der);

  const byAddress = new Map(sms.map((s) => [s.address, s.sm]));
  const at = (address: string): SubscriptionManager => {
    const sm = byAddress.get(address);
    if (!sm) throw new HandoverError('UnknownSmAddress', `no SM answers at ${address}`);
    return sm;
  };
  const endpoints: SmEndpoints = {
    poll: (address, e) => at(address).poll(e),
    postTransferRequest: (address, bytes) => at(address).postTransferRequest(bytes),
    postHandoverResult: async (address, bytes) => {
      await at(address).postHandoverResult(bytes);
    },
    postChipResult: async (address, bytes) => {
      await at(address).postChipResult(bytes);
    },
  };
  return {
    pki,
    sms,
    peers,
    chip: { eid, statePath, card },
    sendToChip,
    device: (onStep) =>
      new DeviceAgent({
        eid,
        homeSmAddress: first.address,
        sendToChip,
        sms: endpoints,
        ...(onStep && { onStep }),
      }),
    sm(smId) {
      const s = sms.find((x) => x.smId === smId);
      if (!s) throw new HandoverError('UnknownSm', `no SM ${smId} in this world`);
      return s;
    },
  };
}
