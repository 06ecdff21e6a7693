/**
 * A new chip's initial state (PROTOCOL.md §4): its identity (a chip certificate issued now by an
 * EUM, or an existing certificate and key such as the GSMA SGP.26 test eUICC), the CI
 * certificates it validates SMs against, and its first assignment.
 */
import type { KeyObject } from 'node:crypto';
import { curveOfKey, privateKeyToPem, publicPointOf } from '../protocol/crypto/keys.ts';
import { parseEid } from '../protocol/eid.ts';
import { InvalidInput } from '../protocol/errors.ts';
import { bytesEqual, type Certificate, CertificateError } from '../protocol/pki/certificate.ts';
import { issueChip } from '../protocol/pki/issue.ts';
import { validateChain } from '../protocol/pki/validate.ts';
import { CHIP_STATE_FORMAT, type ChipState, type ProfileState, toB64, validateChipState } from './state.ts';

/** Where the chip's identity comes from. */
export type ChipIdentity =
  /** Issue a chip certificate for `eid` from this EUM (the EID must be inside its prefix). */
  | {
      readonly kind: 'issue';
      readonly eid: string;
      readonly eumCertificate: Certificate;
      readonly eumKey: KeyObject;
    }
  /** Carry an existing chip certificate and its key (e.g. the SGP.26 test eUICC). */
  | {
      readonly kind: 'existing';
      readonly chipCertificate: Certificate;
      readonly chipKey: KeyObject;
      readonly eumCertificate: Certificate;
    };

export interface CreateChipOptions {
  readonly identity: ChipIdentity;
  /** CI certificates the chip validates SM certificates against (one per supported curve). */
  readonly ciCertificates: readonly Certificate[];
  /** The SM the chip starts assigned to, and its certificate (must validate under a CI, SM role). */
  readonly smId: string;
  readonly smCertificate: Certificate;
  readonly profiles?: readonly ProfileState[];
}

/** "ICCID" or "ICCID:operator" as the CLI takes it; the first profile given is the enabled one. */
export function parseProfileArgument(text: string, enabled: boolean): ProfileState {
  const colon = text.indexOf(':');
  const iccid = colon < 0 ? text : text.slice(0, colon);
  const operator = colon < 0 ? undefined : text.slice(colon + 1);
  if (!/^\d{18,20}$/.test(iccid)) {
    throw new InvalidInput('InvalidIccid', `profile "${text}": the ICCID must be 18 to 20 decimal digits`);
  }
  if (operator !== undefined && operator.length === 0) {
    throw new InvalidInput('InvalidProfile', `profile "${text}": the operator after ':' is empty`);
  }
  return { iccid, ...(operator !== undefined && { operator }), state: enabled ? 'enabled' : 'disabled' };
}

export function createChipState(opts: CreateChipOptions): ChipState {
  const { chipCertificate, chipKey, eumCertificate } = chipIdentity(opts.identity);
  const curve = curveOfKey(chipKey);
  if (!bytesEqual(publicPointOf(chipKey), chipCertificate.publicPoint)) {
    throw new InvalidInput('KeyMismatch', 'the chip private key does not belong to the chip certificate');
  }
  const eid = parseEid(chipCertificate.subject.serialNumber ?? '');
  if (opts.identity.kind === 'issue' && eid !== opts.identity.eid) {
    throw new InvalidInput('InvalidEid', `the chip certificate carries EID ${eid}, not ${opts.identity.eid}`);
  }
  if (opts.ciCertificates.length === 0)
    throw new InvalidInput('UsageError', 'a chip needs at least one CI certificate');

  // The chip's own chain, when one of its CIs issued the EUM (the SGP.26 chain ends in the GSMA
  // Test CI, which a chip trusting only a development CI for SMs does not hold).
  try {
    const chain = validateChain([chipCertificate, eumCertificate], {
      trusted: opts.ciCertificates,
      expectRole: 'chip',
    });
    if (chain.eid !== eid) throw new InvalidInput('InvalidEid', `the chip chain names EID ${chain.eid}`);
  } catch (e) {
    if (!(e instanceof CertificateError && e.reason === 'unknownIssuer')) throw e;
  }

  const sm = validateChain([opts.smCertificate], { trusted: opts.ciCertificates, expectRole: 'sm' });
  if (sm.smId !== opts.smId) {
    throw new InvalidInput('InvalidSmId', `the SM certificate is for "${sm.smId}", not "${opts.smId}"`);
  }

  const profiles = opts.profiles ?? [];
  if (new Set(profiles.map((p) => p.iccid)).size !== profiles.length) {
    throw new InvalidInput('InvalidProfile', 'an ICCID is given twice');
  }
  // Through the same validation as a state file, so a created chip always loads.
  return validateChipState({
    format: CHIP_STATE_FORMAT,
    eid,
    curve,
    chipPrivateKey: privateKeyToPem(chipKey),
    chipCertificate: toB64(chipCertificate.der),
    eumCertificate: toB64(eumCertificate.der),
    ciCertificates: opts.ciCertificates.map((c) => toB64(c.der)),
    assignment: { smId: opts.smId, smCertificate: toB64(opts.smCertificate.der), counter: 0 },
    profiles,
  });
}

function chipIdentity(identity: ChipIdentity): {
  chipCertificate: Certificate;
  chipKey: KeyObject;
  eumCertificate: Certificate;
} {
  if (identity.kind === 'existing') return identity;
  const issued = issueChip({
    issuerCert: identity.eumCertificate,
    issuerKey: identity.eumKey,
    eid: identity.eid,
  });
  return {
    chipCertificate: issued.certificate,
    chipKey: issued.privateKey,
    eumCertificate: identity.eumCertificate,
  };
}
