/**
 * Chips for tests and demos: a throw-away dev PKI and a chip assigned to one of its SMs, kept in
 * a memory store. Used by the chip's own tests and by anyone who needs a chip in-process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Curve } from '../protocol/crypto/curves.ts';
import { makeEid } from '../protocol/eid.ts';
import type { Certificate } from '../protocol/pki/certificate.ts';
import { createDevPki, type DevPki } from '../protocol/pki/dev-pki.ts';
import { ChipCard } from './apdu.ts';
import { createChipState } from './create.ts';
import { ChipProcessor } from './processor.ts';
import type { ChipState, ProfileState } from './state.ts';
import { MemoryStateStore } from './store.ts';

export const TEST_SM_IDS = ['sm-alpha.example', 'sm-beta.example', 'sm-gamma.example'] as const;

/** A dev PKI in a new temporary folder; `remove()` deletes the folder. */
export function createTestPki(
  curve: Curve = 'p256',
  smIds: readonly string[] = TEST_SM_IDS,
): DevPki & { remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `handover-pki-${curve}-`));
  const pki = createDevPki({ curve, dir, smIds });
  return { ...pki, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An EID inside the PKI's EUM prefix, numbered by `serial`. */
export function testEid(pki: DevPki, serial = 1): string {
  const prefix = pki.manifest.eidPrefix;
  return makeEid(prefix + String(serial).padStart(30 - prefix.length, '0'));
}

export interface TestChipOptions {
  readonly eid?: string;
  /** Default: the PKI's first SM. */
  readonly smId?: string;
  readonly profiles?: readonly ProfileState[];
  /** More CI certificates the chip trusts for SMs (e.g. another curve's CI). */
  readonly extraCis?: readonly Certificate[];
}

export interface TestChip {
  readonly state: ChipState;
  readonly store: MemoryStateStore;
  readonly processor: ChipProcessor;
  readonly card: ChipCard;
}

export function createTestChipState(pki: DevPki, o: TestChipOptions = {}): ChipState {
  const smId = o.smId ?? pki.manifest.smIds[0]!;
  const sm = pki.sms.get(smId);
  if (!sm) throw new Error(`no SM ${smId} in the dev PKI`);
  return createChipState({
    identity: {
      kind: 'issue',
      eid: o.eid ?? testEid(pki),
      eumCertificate: pki.eum.certificate,
      eumKey: pki.eum.privateKey,
    },
    ciCertificates: [pki.ci.certificate, ...(o.extraCis ?? [])],
    smId,
    smCertificate: sm.certificate,
    profiles: o.profiles ?? [],
  });
}

export function createTestChip(pki: DevPki, o: TestChipOptions = {}): TestChip {
  return chipFromState(createTestChipState(pki, o));
}

export function chipFromState(state: ChipState): TestChip {
  const store = new MemoryStateStore(state);
  const processor = new ChipProcessor(store);
  return { state, store, processor, card: new ChipCard(processor) };
}
