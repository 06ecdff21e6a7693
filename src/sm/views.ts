/** What operators read: records without secrets (no keys, no lock hashes, no message bytes). */
import { type LockView, lockView } from './domain/locks.ts';
import { hex } from './effects.ts';
import type { ChipRecord, ChipStatus, TransferRecord } from './store/types.ts';

export interface ChipView {
  readonly eid: string;
  readonly operatorId: string;
  readonly curve: string;
  readonly counter: number;
  readonly status: ChipStatus;
  readonly lock: LockView;
  readonly keysetVersion?: number;
  readonly profileSwitchState?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface TransferView {
  readonly id: string;
  readonly direction: 'outgoing' | 'incoming';
  readonly state: string;
  readonly eid: string;
  readonly operatorId: string;
  readonly peerSmId: string;
  /** Hex. */
  readonly permissionId?: string;
  readonly counterValue?: number;
  readonly notAfter?: Date;
  readonly endReason?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export function chipView(c: ChipRecord): ChipView {
  return {
    eid: c.eid,
    operatorId: c.operatorId,
    curve: c.curve,
    counter: c.counter,
    status: c.status,
    lock: lockView(c.lock),
    ...(c.keyset && { keysetVersion: c.keyset.version }),
    ...(c.profileSwitch && { profileSwitchState: c.profileSwitch.state }),
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

export function transferView(t: TransferRecord): TransferView {
  const notAfter = t.direction === 'outgoing' ? t.permission?.notAfter : t.request?.notAfter;
  return {
    id: t.id,
    direction: t.direction,
    state: t.state,
    eid: t.eid,
    operatorId: t.operatorId,
    peerSmId: t.peerSmId,
    ...(t.permissionId && { permissionId: hex(t.permissionId) }),
    ...(t.direction === 'outgoing' && t.permission && { counterValue: t.permission.counterValue }),
    ...(notAfter && { notAfter }),
    ...(t.endReason !== undefined && { endReason: t.endReason }),
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  };
}
