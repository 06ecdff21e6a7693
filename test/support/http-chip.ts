/**
 * A chip for HTTP tests, driven in-process the way a device agent would: commands go to it as
 * APDUs (src/device/apdu-client sendCommand → src/chip ChipCard), answers come back as DER.
 * The SM code never sees it: only the bytes the test carries over HTTP.
 */
import { ChipCard } from '../../src/chip/apdu.ts';
import { createChipState } from '../../src/chip/create.ts';
import { ChipProcessor } from '../../src/chip/processor.ts';
import type { ChipState } from '../../src/chip/state.ts';
import { MemoryStateStore } from '../../src/chip/store.ts';
import { sendCommand } from '../../src/device/apdu-client.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../../src/protocol/asn1/info.ts';
import type { DevPki } from '../../src/protocol/pki/dev-pki.ts';

export interface HttpTestChip {
  readonly eid: string;
  send(der: Uint8Array): Promise<Uint8Array>;
  /** The chip's certificate chain as registration wants it (base64 DER). */
  registration(): Promise<{ chipCertificate: string; eumCertificate: string }>;
  state(): ChipState;
}

export function createHttpTestChip(pki: DevPki, eid: string, smId: string): HttpTestChip {
  const sm = pki.sms.get(smId);
  if (!sm) throw new Error(`no SM ${smId} in the dev PKI`);
  const store = new MemoryStateStore(
    createChipState({
      identity: { kind: 'issue', eid, eumCertificate: pki.eum.certificate, eumKey: pki.eum.privateKey },
      ciCertificates: [pki.ci.certificate],
      smId,
      smCertificate: sm.certificate,
    }),
  );
  const card = new ChipCard(new ChipProcessor(store));
  const send = (der: Uint8Array) => sendCommand((apdu) => card.transmit(apdu), der);
  return {
    eid,
    send,
    async registration() {
      const info = decodeChipInfo(await send(encodeGetChipInfo()));
      const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
      return { chipCertificate: b64(info.chipCertificate), eumCertificate: b64(info.eumCertificate) };
    },
    state: () => store.load(),
  };
}
