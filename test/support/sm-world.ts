/**
 * Test helper for the SM: an in-memory PKI (CI, EUM, SM certificates), two or more
 * SubscriptionManagers over MemoryStores (or the stores `storeFactory` gives) with one shared,
 * hand-moved clock, and an in-process peer transport between them. Operators: `mno-<smId prefix>`.
 */
import type { KeyObject } from 'node:crypto';
import type { Curve } from '../../src/protocol/crypto/curves.ts';
import { keySigner } from '../../src/protocol/crypto/signer.ts';
import { makeEid } from '../../src/protocol/eid.ts';
import type { Certificate } from '../../src/protocol/pki/certificate.ts';
import { issueCi, issueEum, issueSm } from '../../src/protocol/pki/issue.ts';
import type { ScryptParams } from '../../src/sm/domain/locks.ts';
import { InProcessPeerTransport } from '../../src/sm/in-process-transport.ts';
import { MemoryStore } from '../../src/sm/store/memory.ts';
import type { SmStore } from '../../src/sm/store/types.ts';
import { SubscriptionManager, type SubscriptionManagerOptions } from '../../src/sm/subscription-manager.ts';

export const CURRENT = 'sm-current.example';
export const NEW = 'sm-new.example';
export const OTHER = 'sm-other.example';
export const MNO_A = 'mno-a';
export const MNO_B = 'mno-b';
export const EID_PREFIX = '89001012';
/** Cheap scrypt so lock tests stay fast (the default is production strength). */
export const FAST_SCRYPT: ScryptParams = { N: 2 ** 10, r: 8, p: 1 };

export interface TestClock {
  now: Date;
  advance(ms: number): void;
}

export interface WorldSm<S extends SmStore = MemoryStore> {
  readonly smId: string;
  readonly sm: SubscriptionManager;
  readonly store: S;
  readonly certificate: Certificate;
  readonly privateKey: KeyObject;
}

export interface SmWorld<S extends SmStore = MemoryStore> {
  readonly curve: Curve;
  readonly ci: { readonly certificate: Certificate; readonly privateKey: KeyObject };
  readonly eum: { readonly certificate: Certificate; readonly privateKey: KeyObject };
  readonly clock: TestClock;
  readonly transport: InProcessPeerTransport;
  readonly sms: ReadonlyMap<string, WorldSm<S>>;
  get(smId: string): WorldSm<S>;
  address(smId: string): string;
  /**
   * A restart: a new SubscriptionManager for `smId`, configured as before, over `store` (e.g. the
   * same database opened again); it replaces the old one in `sms` and in the transport.
   */
  restart(smId: string, store: S): WorldSm<S>;
}

export interface WorldOptions<S extends SmStore = MemoryStore> {
  readonly curve?: Curve;
  /** Each SM's store (default: a new MemoryStore). */
  readonly storeFactory?: (smId: string) => S;
  readonly smIds?: readonly string[];
  /** Operators per SM id; default: CURRENT → mno-a, NEW → mno-b, others → mno-<index>. */
  readonly operators?: Readonly<Record<string, readonly { id: string; approvalRequired: boolean }[]>>;
  readonly permissionValidityMs?: number;
  /** Extra SM certificates to put into every directory instead of the real ones (bad-peer tests). */
  readonly directoryOverride?: Readonly<Record<string, Certificate>>;
}

export function createSmWorld(o?: WorldOptions): SmWorld;
export function createSmWorld<S extends SmStore>(
  o: WorldOptions<S> & { readonly storeFactory: (smId: string) => S },
): SmWorld<S>;
export function createSmWorld(o: WorldOptions<SmStore> = {}): SmWorld<SmStore> {
  const storeFactory = o.storeFactory ?? (() => new MemoryStore());
  const curve = o.curve ?? 'p256';
  const smIds = o.smIds ?? [CURRENT, NEW, OTHER];
  const ci = issueCi({ curve, commonName: 'SM Test CI' });
  const eum = issueEum({
    issuerCert: ci.certificate,
    issuerKey: ci.privateKey,
    org: 'SM Test EUM',
    eidPrefix: EID_PREFIX,
  });
  const issued = new Map(
    smIds.map((smId) => [smId, issueSm({ issuerCert: ci.certificate, issuerKey: ci.privateKey, smId })]),
  );
  const clock: TestClock = {
    // Certificates are issued from the current whole second on.
    now: new Date(Math.floor(Date.now() / 1000) * 1000 + 1000),
    advance(ms) {
      this.now = new Date(this.now.getTime() + ms);
    },
  };
  const address = (smId: string) => `https://${smId}/handover`;
  const sms = new Map<string, WorldSm<SmStore>>();
  const configs = new Map<string, Omit<SubscriptionManagerOptions, 'store'>>();
  smIds.forEach((smId, i) => {
    const cert = issued.get(smId)!;
    const directory = new Map(
      smIds
        .filter((p) => p !== smId)
        .map((p) => [
          p,
          { address: address(p), certificate: (o.directoryOverride?.[p] ?? issued.get(p)!.certificate).der },
        ]),
    );
    const operators = o.operators?.[smId] ?? [
      { id: smId === CURRENT ? MNO_A : smId === NEW ? MNO_B : `mno-${i}`, approvalRequired: false },
    ];
    const store = storeFactory(smId);
    const config: Omit<SubscriptionManagerOptions, 'store'> = {
      smId,
      signer: keySigner(cert.privateKey),
      certificate: cert.certificate.der,
      trustedCis: [ci.certificate],
      clock: () => clock.now,
      operators,
      directory: directory,
      unlockScrypt: FAST_SCRYPT,
      ...(o.permissionValidityMs !== undefined && { permissionValidityMs: o.permissionValidityMs }),
      outboxBackoff: { baseMs: 1000, maxMs: 60_000 },
    };
    configs.set(smId, config);
    const sm = new SubscriptionManager({ ...config, store });
    sms.set(smId, { smId, sm, store, certificate: cert.certificate, privateKey: cert.privateKey });
  });
  const transport = new InProcessPeerTransport().register(...[...sms.values()].map((w) => w.sm));
  return {
    curve,
    ci,
    eum,
    clock,
    transport,
    sms,
    get(smId) {
      const w = sms.get(smId);
      if (!w) throw new Error(`no SM ${smId} in this world`);
      return w;
    },
    address,
    restart(smId, store) {
      const old = sms.get(smId);
      const config = configs.get(smId);
      if (!old || !config) throw new Error(`no SM ${smId} in this world`);
      const restarted = { ...old, sm: new SubscriptionManager({ ...config, store }), store };
      sms.set(smId, restarted);
      transport.register(restarted.sm);
      return restarted;
    },
  };
}

/** An EID inside the test EUM's prefix. */
export function worldEid(serial: number): string {
  return makeEid(EID_PREFIX + String(serial).padStart(22, '0'));
}
