import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkLock,
  type LockPolicy,
  lockView,
  MAX_UNLOCK_ATTEMPTS,
  makeLockPolicy,
  type ScryptParams,
} from './locks.ts';

const FAST: ScryptParams = { N: 2 ** 10, r: 8, p: 1 };
const SALT = new Uint8Array(16).fill(7);
const NOW = new Date('2026-01-01T00:00:00Z');

test('unlocked allows, with or without a code', () => {
  const p = makeLockPolicy({ kind: 'unlocked' }, SALT);
  assert.deepEqual(checkLock(p, NOW), { allowed: true, unlockedWithCode: false });
  assert.deepEqual(checkLock(p, NOW, 'anything'), { allowed: true, unlockedWithCode: false });
});

test('lockedUntil refuses before the date and allows from it on', () => {
  const until = new Date(NOW.getTime() + 1000);
  const p = makeLockPolicy({ kind: 'lockedUntil', until }, SALT);
  const d = checkLock(p, NOW, 'a code does not help');
  assert.equal(d.allowed, false);
  assert.equal(!d.allowed && d.code, 'ChipLocked');
  assert.equal(checkLock(p, until).allowed, true);
  assert.equal(checkLock(p, new Date(until.getTime() + 1)).allowed, true);
  assert.throws(() => makeLockPolicy({ kind: 'lockedUntil', until: new Date(Number.NaN) }, SALT), {
    code: 'InvalidInput',
  });
});

test('lockedUntilCode stores only a salted hash and accepts the right code', () => {
  const p = makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: 'open sesame' }, SALT, FAST);
  assert.equal(p.kind, 'lockedUntilCode');
  assert.ok(!JSON.stringify(p).includes('open sesame'));
  assert.ok(!JSON.stringify(lockView(p)).includes('salt'));
  const noCode = checkLock(p, NOW);
  assert.equal(!noCode.allowed && noCode.code, 'ChipLocked');
  assert.equal(!noCode.allowed && noCode.updated, undefined, 'no code is not an attempt');
  assert.deepEqual(checkLock(p, NOW, 'open sesame'), { allowed: true, unlockedWithCode: true });
  // Another salt gives another hash for the same code.
  const q = makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: 'open sesame' }, new Uint8Array(16), FAST);
  assert.ok(q.kind === 'lockedUntilCode' && p.kind === 'lockedUntilCode');
  assert.notDeepEqual(q.hash, p.hash);
});

test('five wrong codes lock out: then even the right code is refused', () => {
  let p: LockPolicy = makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: '123456' }, SALT, FAST);
  for (let i = 1; i <= MAX_UNLOCK_ATTEMPTS; i++) {
    const d = checkLock(p, NOW, `wrong-${i}`);
    assert.equal(d.allowed, false);
    assert.ok(!d.allowed);
    assert.equal(d.code, 'UnlockCodeInvalid');
    assert.ok(d.updated?.kind === 'lockedUntilCode');
    assert.equal(d.updated.failedAttempts, i);
    assert.ok(!d.message.includes(`wrong-${i}`), 'the code never appears in a message');
    p = d.updated;
  }
  const right = checkLock(p, NOW, '123456');
  assert.equal(!right.allowed && right.code, 'LockedOut');
  assert.equal(!right.allowed && right.updated, undefined);
  assert.deepEqual(lockView(p), { kind: 'lockedUntilCode', failedAttempts: 5, lockedOut: true });
  // A new policy from the operator resets the count.
  const fresh = makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: '123456' }, SALT, FAST);
  assert.equal(checkLock(fresh, NOW, '123456').allowed, true);
});

test('fewer than five wrong codes, then the right one, is allowed', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: MAX_UNLOCK_ATTEMPTS - 1 }), (wrong) => {
      let p: LockPolicy = makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: 'right' }, SALT, FAST);
      for (let i = 0; i < wrong; i++) {
        const d = checkLock(p, NOW, 'wrong');
        assert.ok(!d.allowed && d.updated);
        p = d.updated;
      }
      assert.equal(checkLock(p, NOW, 'right').allowed, true);
    }),
    { numRuns: 10 },
  );
});

test('unlock codes are validated', () => {
  assert.throws(() => makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: '' }, SALT, FAST), {
    code: 'InvalidInput',
  });
  assert.throws(() => makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: 'a\u0000b' }, SALT, FAST), {
    code: 'InvalidInput',
  });
  assert.throws(
    () => makeLockPolicy({ kind: 'lockedUntilCode', unlockCode: 'ok' }, new Uint8Array(4), FAST),
    {
      code: 'InvalidInput',
    },
  );
});
