/**
 * `handover demo`: one complete port-in with an activation code, in one process, printing each
 * protocol step as it happens and the final state of the chip and both SMs.
 */
import { FileStateStore } from '../chip/file-store.ts';
import { summarizeChipState } from '../chip/state.ts';
import type { DeviceStep } from '../device/agent.ts';
import { decodeMessage } from '../protocol/asn1/decode-any.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import type { Curve } from '../protocol/crypto/curves.ts';
import type { PeerMessage } from '../sm/peer-api.ts';
import { createInProcessWorld } from './in-process-world.ts';

export interface DemoOptions {
  readonly dir: string;
  readonly curve: Curve;
  readonly activationCode: string;
  readonly print: (line: string) => void;
}

function describe(bytes: Uint8Array): string {
  const m = decodeMessage(bytes);
  switch (m.type) {
    case 'TransferPermissionMessage': {
      const d = m.value.permission.data;
      return `counterValue ${d.counterValue}, newSmId ${d.newSmId}, notAfter ${d.notAfter.toISOString()}${d.activationCodeHash ? ', activation code hash' : ''}`;
    }
    case 'TransferRequest':
      return `chip-signed, challenge ${Buffer.from(m.value.data.chipChallenge).toString('hex').slice(0, 8)}…`;
    case 'HandoverCommand':
      return `SM-signed, keysetVersion ${m.value.data.keysetVersion}`;
    case 'HandoverResult':
      return `chip-signed, receipt ${Buffer.from(m.value.data.receipt).toString('hex').slice(0, 8)}…`;
    case 'ChipResult':
      return `outcome ${m.value.data.outcome}`;
    default:
      return '';
  }
}

function peerDetail(m: PeerMessage): string {
  if (m.type === 'TransferAsk') return `eid ${m.eid}${m.activationCodeHash ? ', activation code hash' : ''}`;
  if (m.type === 'Completed') return `chip-signed HandoverResult (${m.handoverResult.length} bytes)`;
  return '';
}

export async function runDemo(o: DemoOptions): Promise<Record<string, unknown>> {
  let n = 0;
  const step = (who: string, what: string, detail = '') =>
    o.print(`${String(++n).padStart(2)}. ${who.padEnd(38)} ${what}${detail ? `  (${detail})` : ''}`);
  const world = createInProcessWorld({
    dir: o.dir,
    curve: o.curve,
    onPeerMessage: (from, to, m) => step(`${from} → ${to}`, `peer ${m.type}`, peerDetail(m)),
  });
  const [current, next] = world.sms as [(typeof world.sms)[0], (typeof world.sms)[0]];
  step(
    'dev PKI',
    `CI, EUM (EID prefix ${world.pki.manifest.eidPrefix}), 2 SM certificates`,
    `${o.curve}, ${world.pki.dir}`,
  );
  step('EUM', `chip ${world.chip.eid} assigned to ${current.smId}`, world.chip.statePath);

  const info = decodeChipInfo(await world.sendToChip(encodeGetChipInfo()));
  await current.sm.registerChip(current.operatorId, {
    chipCertificate: info.chipCertificate,
    eumCertificate: info.eumCertificate,
  });
  step(`${current.operatorId} → ${current.smId}`, 'register chip', 'certificate chain read from the chip');

  const order = await next.sm.orderPortIn(next.operatorId, {
    eid: world.chip.eid,
    currentSmId: current.smId,
    activationCode: o.activationCode,
    ask: true,
  });
  step(`${next.operatorId} → ${next.smId}`, 'order port-in', `activation code given, order ${order.orderId}`);
  await next.sm.drainOutbox(world.peers);

  const device = world.device((s: DeviceStep) =>
    step(`${short(s.from)} → ${short(s.to)}`, s.type, describe(s.bytes)),
  );
  await device.runOnce();
  await next.sm.drainOutbox(world.peers);

  const chipState = summarizeChipState(new FileStateStore(world.chip.statePath).load());
  const side = async (s: typeof current) => ({
    smId: s.smId,
    managedChips: (await s.sm.listChips(s.operatorId)).map((c) => ({
      eid: c.eid,
      status: c.status,
      counter: c.counter,
      keysetVersion: c.keysetVersion,
    })),
    transfers: (await s.sm.listTransfers(s.operatorId)).map((t) => ({
      id: t.id,
      direction: t.direction,
      state: t.state,
      peerSmId: t.peerSmId,
      permissionId: t.permissionId,
    })),
    auditEntries: (await s.sm.listAudit(s.operatorId)).length,
  });
  const final = { chip: chipState, currentSm: await side(current), newSm: await side(next) };
  o.print('');
  o.print('Final state:');
  o.print(JSON.stringify(final, null, 2));
  return final;
}

/** "https://sm-beta.example/handover" → "sm-beta.example". */
function short(endpoint: string): string {
  const m = /^https:\/\/([^/]+)/.exec(endpoint);
  return m ? m[1]! : endpoint;
}
