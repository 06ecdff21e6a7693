import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeEid } from '../protocol/eid.ts';
import { HandoverError } from '../protocol/errors.ts';
import { curveArg, eidArg } from './args.ts';

test('a bad EID or curve on the command line is a UsageError naming the option, with the reason', () => {
  const eid = makeEid('890490321234512345123456789012');
  assert.equal(eidArg(eid), eid);
  assert.equal(curveArg('brainpoolP256r1'), 'brainpoolP256r1');
  const refused = (f: () => unknown, name: string, reason: string) =>
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof HandoverError);
      assert.equal(e.code, 'UsageError');
      assert.ok(e.message.startsWith(`${name}: `), e.message);
      assert.equal(e.details.reason, reason);
      return true;
    });
  refused(() => eidArg('123', 'EID'), 'EID', 'InvalidEid');
  refused(() => eidArg(`${eid.slice(0, 31)}0`), '--eid', 'InvalidEid');
  refused(() => curveArg('p384'), '--curve', 'UnsupportedCurve');
});
