/**
 * Command line values checked where they enter: a bad value is a usage error (exit 2) that names
 * the option, whatever the checker's own error code (InvalidEid, UnsupportedCurve, …).
 */
import { type Curve, parseCurve } from '../protocol/crypto/curves.ts';
import { parseEid } from '../protocol/eid.ts';
import { HandoverError, InvalidInput } from '../protocol/errors.ts';

export const usage = (message: string, details: Record<string, unknown> = {}): InvalidInput =>
  new InvalidInput('UsageError', message, details);

function asUsage<T>(name: string, check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof HandoverError) throw usage(`${name}: ${e.message}`, { reason: e.code });
    throw e;
  }
}

/** An EID given as `name` (an option like --eid, or an argument like EID). */
export const eidArg = (text: string, name = '--eid'): string => asUsage(name, () => parseEid(text));

/** A curve given as `name`. */
export const curveArg = (text: string, name = '--curve'): Curve => asUsage(name, () => parseCurve(text));
