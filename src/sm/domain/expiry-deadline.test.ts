import assert from 'node:assert/strict';
import { test } from 'node:test';
import { incoming, outgoing, T0 } from '../store/contract.ts';
import { expiryDeadline, pastExpiryDeadline } from './expiry-deadline.ts';

const at = (ms: number) => new Date(T0.getTime() + ms);
const permission = { counterValue: 2, notAfter: at(3000), message: new Uint8Array([1]), issuedAt: T0 };

test('expiryDeadline: which deadline each waiting state has, and none once keyed or ended', () => {
  assert.deepEqual(expiryDeadline(incoming('a', { state: 'ordered', expiresAt: at(1) })), at(1));
  assert.deepEqual(expiryDeadline(incoming('a', { state: 'asked', expiresAt: at(1) })), at(1));
  assert.deepEqual(expiryDeadline(incoming('a', { state: 'permitted', expiresAt: at(1) })), at(1));
  assert.equal(expiryDeadline(incoming('a', { state: 'keyEstablished' })), undefined);
  assert.equal(expiryDeadline(incoming('a', { state: 'completed' })), undefined);
  assert.deepEqual(
    expiryDeadline(outgoing('b', { state: 'awaitingApproval', approvalDeadline: at(2) })),
    at(2),
  );
  assert.equal(expiryDeadline(outgoing('b', { state: 'requested' })), undefined);
  assert.deepEqual(expiryDeadline(outgoing('b', { state: 'permitted', permission })), at(3000));
  assert.deepEqual(expiryDeadline(outgoing('b', { state: 'delivered', permission })), at(3000));
  const cancel = { counterValue: 3, message: new Uint8Array([2]), issuedAt: T0 };
  assert.equal(expiryDeadline(outgoing('b', { state: 'delivered', permission, cancel })), undefined);
  assert.equal(expiryDeadline(outgoing('b', { state: 'completed', permission })), undefined);
});

test('pastExpiryDeadline: strictly after the deadline', () => {
  const t = outgoing('b', { state: 'permitted', permission });
  assert.equal(pastExpiryDeadline(t, at(3000)), false);
  assert.equal(pastExpiryDeadline(t, at(3001)), true);
  assert.equal(pastExpiryDeadline(outgoing('b', { state: 'requested' }), at(1e9)), false);
});
