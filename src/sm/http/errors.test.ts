import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInput } from '../../protocol/errors.ts';
import { SmError } from '../errors.ts';
import { mapError } from './errors.ts';

test('mapError: typed refusals keep their code; a client that went away is not a server fault; a bug is 500', () => {
  const pending = mapError(new SmError('TransferPending', 'busy'), 'r1');
  assert.deepEqual(
    [pending.status, pending.body.error.code, pending.expected],
    [409, 'TransferPending', true],
  );
  assert.equal(mapError(new InvalidInput('SomethingNew', 'bad'), 'r2').status, 400);
  for (const code of ['ECONNRESET', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']) {
    const gone = mapError(Object.assign(new Error('aborted'), { code }), 'r3');
    assert.deepEqual([gone.status, gone.body.error.code, gone.expected], [400, 'BadRequest', true], code);
  }
  const bug = mapError(new TypeError('x is undefined'), 'r4');
  assert.deepEqual([bug.status, bug.body.error.code, bug.expected], [500, 'InternalError', false]);
  assert.equal(bug.body.error.details.requestId, 'r4');
  assert.ok(!JSON.stringify(bug.body).includes('x is undefined'), 'no internals in the answer');
});
