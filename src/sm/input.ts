/** Checks of values entering through the operator and peer APIs (validated once, where they enter). */
import type { ProfileSwitch } from '../protocol/asn1/permission.ts';
import { eidChecksumValid } from '../protocol/eid.ts';
import { iccidToBytes } from '../protocol/iccid.ts';
import { smIdProblem } from '../protocol/pki/validate.ts';
import type { OperatorConfig, SmContext } from './config.ts';
import { SmError } from './errors.ts';

const invalid = (field: string, message: string): SmError => new SmError('InvalidInput', message, { field });

export function checkEid(eid: unknown): string {
  if (typeof eid !== 'string' || !/^\d{32}$/.test(eid)) throw invalid('eid', 'an EID is 32 decimal digits');
  if (!eidChecksumValid(eid)) throw invalid('eid', `EID ${eid} fails the mod-97 check`);
  return eid;
}

export function checkSmId(smId: unknown, field: string): string {
  if (typeof smId !== 'string') throw invalid(field, `${field} is a string`);
  const problem = smIdProblem(smId);
  if (problem) throw invalid(field, `${field} ${problem}`);
  return smId;
}

export function checkId(id: unknown, field: string): string {
  if (typeof id !== 'string' || !/^[\w.:-]{1,128}$/.test(id)) {
    throw invalid(field, `${field} is 1 to 128 letters, digits or . _ : -`);
  }
  return id;
}

export function checkHash(hash: unknown, field: string): Uint8Array {
  if (!(hash instanceof Uint8Array) || hash.length !== 32)
    throw invalid(field, `${field} is 32 bytes (SHA-256)`);
  return Uint8Array.from(hash);
}

export function checkBytes(bytes: unknown, field: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0)
    throw invalid(field, `${field} is a non-empty byte string`);
  return bytes;
}

export function checkProfileSwitch(p: ProfileSwitch): ProfileSwitch {
  const [disable, enable] = (['disableIccid', 'enableIccid'] as const).map((field) => {
    try {
      return iccidToBytes(p[field]);
    } catch {
      throw invalid(`profileSwitch.${field}`, 'an ICCID is 18 to 20 decimal digits');
    }
  }) as [Uint8Array, Uint8Array];
  // The same profile both disabled and enabled is no switch (§7): the chip would end with it off.
  if (Buffer.compare(disable, enable) === 0)
    throw invalid('profileSwitch.enableIccid', 'the profile to enable is the one to disable');
  if (typeof p.rollbackOnFailure !== 'boolean')
    throw invalid('profileSwitch.rollbackOnFailure', 'is a boolean');
  return { disableIccid: p.disableIccid, enableIccid: p.enableIccid, rollbackOnFailure: p.rollbackOnFailure };
}

/** The configured operator `operatorId`; NotAuthorised for anyone else. */
/**
 * A state filter: at least one state, each one of `known` (the `what` names them in the refusal).
 * Returns the states as the caller's type.
 */
export function checkStates<S extends string>(
  states: readonly string[],
  known: ReadonlySet<string>,
  what: string,
): S[] {
  const unknown = states.filter((state) => !known.has(state));
  if (states.length === 0 || unknown.length > 0) {
    const given =
      states.length === 0
        ? 'state is empty'
        : `no ${what} state ${unknown.map((v) => JSON.stringify(v)).join(', ')}`;
    throw invalid('state', `${given}: the states are ${[...known].join(', ')}`);
  }
  return states as S[];
}

export function requireOperator(ctx: SmContext, operatorId: string): OperatorConfig {
  const op = ctx.operators.get(operatorId);
  if (!op)
    throw new SmError('NotAuthorised', `"${operatorId}" is not an operator of this SM`, { operatorId });
  return op;
}
