/**
 * The chip's persistent state (PROTOCOL.md §4), as plain JSON: byte strings are base64 (DER
 * blobs) or hex (ids, challenges, keyset keys), keys are PKCS#8 PEM. Everything that enters from
 * a file is validated once here (`parseChipState`), so the processor can trust what it holds.
 */
import { createPublicKey } from 'node:crypto';
import { COUNTER_MAX } from '../protocol/asn1/permission.ts';
import { CURVES, type Curve } from '../protocol/crypto/curves.ts';
import { curveOfKey, loadPrivateKeyPem, publicPointOf } from '../protocol/crypto/keys.ts';
import { oneTimeKeyFromPem } from '../protocol/crypto/one-time-key.ts';
import { eidChecksumValid } from '../protocol/eid.ts';
import { HandoverError } from '../protocol/errors.ts';
import { bytesEqual, parseCertificate } from '../protocol/pki/certificate.ts';
import { smIdProblem } from '../protocol/pki/validate.ts';

export const CHIP_STATE_FORMAT = 1;

/** The new SM's management keyset after a handover (PROTOCOL.md §2), hex. */
export interface KeysetState {
  readonly version: number;
  readonly sEnc: string;
  readonly sMac: string;
  readonly initialMcv: string;
}

export interface AssignmentState {
  readonly smId: string;
  /** The assigned SM's certificate, DER as base64: the only SM key the chip obeys. */
  readonly smCertificate: string;
  /** The last counterValue accepted from this SM (0 after a handover). */
  readonly counter: number;
  readonly keyset?: KeysetState;
}

/** The one transfer a chip may have pending (PROTOCOL.md §4, §6.2). */
export interface PendingState {
  readonly permissionId: string;
  /** The TransferPermissionMessage exactly as received, base64: a byte-equal re-delivery gets `transferRequest`. */
  readonly permissionMessage: string;
  readonly newSmId: string;
  readonly newSmCertificate: string;
  readonly counterValue: number;
  readonly chipChallenge: string;
  /** otSK.chip, PKCS#8 PEM; removed from the state at commit or cancel. */
  readonly otSkChip: string;
  /** The signed TransferRequest the chip answered, base64. */
  readonly transferRequest: string;
}

export type ProfileStateName = 'enabled' | 'disabled';

export interface ProfileState {
  readonly iccid: string;
  readonly operator?: string;
  readonly state: ProfileStateName;
}

/** A profile switch applied at a commit with rollbackOnFailure, not yet confirmed (PROTOCOL.md §7). */
export interface UnconfirmedSwitchState {
  /** The handover that applied it, hex. */
  readonly permissionId: string;
  readonly disableIccid: string;
  readonly enableIccid: string;
}

/** The last signed result, with the command it answered (both base64), for idempotent re-delivery. */
export interface LastResultState {
  readonly command: string;
  readonly response: string;
}

export interface ChipState {
  readonly format: typeof CHIP_STATE_FORMAT;
  readonly eid: string;
  readonly curve: Curve;
  /** The chip's signing key, PKCS#8 PEM. */
  readonly chipPrivateKey: string;
  readonly chipCertificate: string;
  readonly eumCertificate: string;
  /** CI certificates the chip validates SM certificates against (one per supported curve). */
  readonly ciCertificates: readonly string[];
  readonly assignment: AssignmentState;
  readonly pending?: PendingState;
  readonly profiles: readonly ProfileState[];
  readonly unconfirmedSwitch?: UnconfirmedSwitchState;
  /** permissionId (hex) of the last committed handover: other commands for it get alreadyApplied. */
  readonly lastHandoverPermissionId?: string;
  readonly lastResult?: LastResultState;
}

/** A state file or value that is not a valid chip state. */
export class ChipStateInvalid extends HandoverError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ChipStateInvalid', message, details);
  }
}

// ---- byte helpers ----

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^(?:[0-9a-f]{2})*$/;

export const toB64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
export const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

// ---- serialisation ----

export function serializeChipState(state: ChipState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

/** Parses and validates a state file's text. Any problem is a ChipStateInvalid naming the field. */
export function parseChipState(text: string): ChipState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ChipStateInvalid('the chip state is not valid JSON');
  }
  return validateChipState(value);
}

type Json = Record<string, unknown>;

function fail(field: string, message: string): never {
  throw new ChipStateInvalid(`chip state ${field}: ${message}`, { field });
}

function obj(v: unknown, field: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, 'must be an object');
  return v as Json;
}

function onlyKeys(o: Json, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(field, `unknown property "${k}"`);
}

function str(o: Json, key: string, field: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(`${field}.${key}`, 'must be a string');
  return v;
}

function optStr(o: Json, key: string, field: string): string | undefined {
  return o[key] === undefined ? undefined : str(o, key, field);
}

function int(o: Json, key: string, field: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`${field}.${key}`, `must be an integer in ${min}..${max}`);
  }
  return v;
}

function b64(o: Json, key: string, field: string): string {
  return b64Value(o[key], `${field}.${key}`);
}

function b64Value(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || !B64.test(v)) fail(field, 'must be non-empty base64');
  return v;
}

function hex(o: Json, key: string, field: string, size: number): string {
  const v = str(o, key, field);
  if (!HEX.test(v) || v.length !== size * 2)
    fail(`${field}.${key}`, `must be ${size} bytes of lower-case hex`);
  return v;
}

function certificate(o: Json, key: string, field: string): string {
  return certificateValue(o[key], `${field}.${key}`);
}

function certificateValue(value: unknown, field: string): string {
  const v = b64Value(value, field);
  try {
    parseCertificate(fromB64(v));
  } catch (e) {
    fail(field, `is not a certificate (${e instanceof Error ? e.message : String(e)})`);
  }
  return v;
}

function privateKeyPem(o: Json, key: string, field: string, curve: Curve): string {
  const v = str(o, key, field);
  let k: ReturnType<typeof loadPrivateKeyPem>;
  try {
    k = loadPrivateKeyPem(v);
  } catch {
    return fail(`${field}.${key}`, 'is not an EC private key in PEM');
  }
  if (curveOfKey(k) !== curve) fail(`${field}.${key}`, `is not on the chip's curve ${curve}`);
  return v;
}

/** otSK.chip: PKCS#8 PEM with the scalar on the chip's curve, as the chip writes it (one-time-key.ts). */
function oneTimeKeyPem(o: Json, key: string, field: string, curve: Curve): string {
  const v = str(o, key, field);
  let k: ReturnType<typeof oneTimeKeyFromPem>;
  try {
    k = oneTimeKeyFromPem(v);
  } catch {
    return fail(`${field}.${key}`, 'is not an EC private key in PKCS#8 PEM with a named curve');
  }
  k.scalar.fill(0);
  if (k.curve !== curve) fail(`${field}.${key}`, `is not on the chip's curve ${curve}`);
  return v;
}

function smId(o: Json, key: string, field: string): string {
  const v = str(o, key, field);
  const problem = smIdProblem(v);
  if (problem) fail(`${field}.${key}`, `is not an SM id: ${problem}`);
  return v;
}

function iccid(o: Json, key: string, field: string): string {
  const v = str(o, key, field);
  if (!/^\d{18,20}$/.test(v)) fail(`${field}.${key}`, 'must be an ICCID of 18 to 20 digits');
  return v;
}

/** Validates a parsed JSON value as a ChipState (structure, sizes, keys matching certificates). */
export function validateChipState(value: unknown): ChipState {
  const s = obj(value, '(root)');
  onlyKeys(s, '(root)', [
    'format',
    'eid',
    'curve',
    'chipPrivateKey',
    'chipCertificate',
    'eumCertificate',
    'ciCertificates',
    'assignment',
    'pending',
    'profiles',
    'unconfirmedSwitch',
    'lastHandoverPermissionId',
    'lastResult',
  ]);
  if (s.format !== CHIP_STATE_FORMAT) fail('format', `must be ${CHIP_STATE_FORMAT}`);
  const eid = str(s, 'eid', '(root)');
  if (!eidChecksumValid(eid)) fail('eid', 'must be 32 digits with a valid mod-97 check value');
  const curveName = str(s, 'curve', '(root)');
  const curve = CURVES.find((c) => c === curveName);
  if (!curve) fail('curve', `must be one of ${CURVES.join(', ')}`);
  const chipPrivateKey = privateKeyPem(s, 'chipPrivateKey', '(root)', curve);
  const chipCertificate = certificate(s, 'chipCertificate', '(root)');
  const chipCert = parseCertificate(fromB64(chipCertificate));
  const chipPoint = publicPointOf(createPublicKey(loadPrivateKeyPem(chipPrivateKey)));
  if (!bytesEqual(chipPoint, chipCert.publicPoint)) {
    fail('chipPrivateKey', 'does not belong to the public key in chipCertificate');
  }
  if (chipCert.subject.serialNumber !== eid)
    fail('eid', 'differs from the chip certificate subject serialNumber');
  const eumCertificate = certificate(s, 'eumCertificate', '(root)');

  if (!Array.isArray(s.ciCertificates) || s.ciCertificates.length === 0) {
    fail('ciCertificates', 'must be a non-empty array');
  }
  const ciCertificates = s.ciCertificates.map((v, i) => certificateValue(v, `ciCertificates[${i}]`));

  const a = obj(s.assignment, 'assignment');
  onlyKeys(a, 'assignment', ['smId', 'smCertificate', 'counter', 'keyset']);
  let keyset: KeysetState | undefined;
  if (a.keyset !== undefined) {
    const k = obj(a.keyset, 'assignment.keyset');
    onlyKeys(k, 'assignment.keyset', ['version', 'sEnc', 'sMac', 'initialMcv']);
    keyset = {
      version: int(k, 'version', 'assignment.keyset', 1, 127),
      sEnc: hex(k, 'sEnc', 'assignment.keyset', 16),
      sMac: hex(k, 'sMac', 'assignment.keyset', 16),
      initialMcv: hex(k, 'initialMcv', 'assignment.keyset', 16),
    };
  }
  const assignment: AssignmentState = {
    smId: smId(a, 'smId', 'assignment'),
    smCertificate: certificate(a, 'smCertificate', 'assignment'),
    counter: int(a, 'counter', 'assignment', 0, COUNTER_MAX),
    ...(keyset && { keyset }),
  };

  let pending: PendingState | undefined;
  if (s.pending !== undefined) {
    const p = obj(s.pending, 'pending');
    onlyKeys(p, 'pending', [
      'permissionId',
      'permissionMessage',
      'newSmId',
      'newSmCertificate',
      'counterValue',
      'chipChallenge',
      'otSkChip',
      'transferRequest',
    ]);
    pending = {
      permissionId: hex(p, 'permissionId', 'pending', 16),
      permissionMessage: b64(p, 'permissionMessage', 'pending'),
      newSmId: smId(p, 'newSmId', 'pending'),
      newSmCertificate: certificate(p, 'newSmCertificate', 'pending'),
      counterValue: int(p, 'counterValue', 'pending', 1, COUNTER_MAX),
      chipChallenge: hex(p, 'chipChallenge', 'pending', 16),
      otSkChip: oneTimeKeyPem(p, 'otSkChip', 'pending', curve),
      transferRequest: b64(p, 'transferRequest', 'pending'),
    };
  }

  if (!Array.isArray(s.profiles)) fail('profiles', 'must be an array');
  const seen = new Set<string>();
  const profiles = s.profiles.map((raw, i): ProfileState => {
    const field = `profiles[${i}]`;
    const p = obj(raw, field);
    onlyKeys(p, field, ['iccid', 'operator', 'state']);
    const id = iccid(p, 'iccid', field);
    if (seen.has(id)) fail(field, `duplicate ICCID ${id}`);
    seen.add(id);
    const operator = optStr(p, 'operator', field);
    const st = str(p, 'state', field);
    if (st !== 'enabled' && st !== 'disabled') fail(`${field}.state`, 'must be "enabled" or "disabled"');
    return { iccid: id, ...(operator !== undefined && { operator }), state: st };
  });

  let unconfirmedSwitch: UnconfirmedSwitchState | undefined;
  if (s.unconfirmedSwitch !== undefined) {
    const u = obj(s.unconfirmedSwitch, 'unconfirmedSwitch');
    onlyKeys(u, 'unconfirmedSwitch', ['permissionId', 'disableIccid', 'enableIccid']);
    unconfirmedSwitch = {
      permissionId: hex(u, 'permissionId', 'unconfirmedSwitch', 16),
      disableIccid: iccid(u, 'disableIccid', 'unconfirmedSwitch'),
      enableIccid: iccid(u, 'enableIccid', 'unconfirmedSwitch'),
    };
  }
  const lastHandoverPermissionId =
    s.lastHandoverPermissionId === undefined ? undefined : hex(s, 'lastHandoverPermissionId', '(root)', 16);
  let lastResult: LastResultState | undefined;
  if (s.lastResult !== undefined) {
    const l = obj(s.lastResult, 'lastResult');
    onlyKeys(l, 'lastResult', ['command', 'response']);
    lastResult = { command: b64(l, 'command', 'lastResult'), response: b64(l, 'response', 'lastResult') };
  }

  return {
    format: CHIP_STATE_FORMAT,
    eid,
    curve,
    chipPrivateKey,
    chipCertificate,
    eumCertificate,
    ciCertificates,
    assignment,
    ...(pending && { pending }),
    profiles,
    ...(unconfirmedSwitch && { unconfirmedSwitch }),
    ...(lastHandoverPermissionId !== undefined && { lastHandoverPermissionId }),
    ...(lastResult && { lastResult }),
  };
}

/** What `handover chip info` shows: no keys, no keyset, no one-time secrets. */
export interface ChipStateSummary {
  readonly eid: string;
  readonly curve: Curve;
  readonly assignedSmId: string;
  readonly counter: number;
  readonly pendingPermissionId?: string;
  readonly pendingNewSmId?: string;
  readonly keysetVersion?: number;
  readonly profiles: readonly ProfileState[];
  readonly unconfirmedSwitch?: UnconfirmedSwitchState;
}

export function summarizeChipState(s: ChipState): ChipStateSummary {
  return {
    eid: s.eid,
    curve: s.curve,
    assignedSmId: s.assignment.smId,
    counter: s.assignment.counter,
    ...(s.pending && { pendingPermissionId: s.pending.permissionId, pendingNewSmId: s.pending.newSmId }),
    ...(s.assignment.keyset && { keysetVersion: s.assignment.keyset.version }),
    profiles: s.profiles,
    ...(s.unconfirmedSwitch && { unconfirmedSwitch: s.unconfirmedSwitch }),
  };
}
