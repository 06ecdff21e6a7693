import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertRefused, registeredChip } from '../../test/support/sm-flows.ts';
import { issueTestChip, registration } from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_A, MNO_B, NEW, OTHER, worldEid } from '../../test/support/sm-world.ts';
import { issueCi, issueEum, issueSm } from '../protocol/pki/issue.ts';
import { MAX_UNLOCK_ATTEMPTS } from './domain/locks.ts';

const MNO_X = 'mno-x';
const twoOperators = {
  [CURRENT]: [
    { id: MNO_A, approvalRequired: false },
    { id: MNO_X, approvalRequired: true },
  ],
};

test('requestRelease refusals (§6.1), each leaving the store unchanged', async () => {
  const world = createSmWorld({ operators: twoOperators });
  const { sm, store } = world.get(CURRENT);
  const chip = await registeredChip(world);
  const ask =
    (over: Partial<Parameters<typeof sm.requestRelease>[1]> = {}, op = MNO_A) =>
    () =>
      sm.requestRelease(op, { eid: chip.eid, newSmId: NEW, ...over });

  await assertRefused(store, ask({}, 'mno-unknown'), 'NotAuthorised');
  await assertRefused(store, ask({ eid: '1234' }), 'InvalidInput');
  await assertRefused(
    store,
    ask({ eid: `${chip.eid.slice(0, 31)}${(Number(chip.eid[31]) + 1) % 10}` }),
    'InvalidInput',
  );
  await assertRefused(store, ask({ eid: worldEid(99) }), 'ChipNotManaged');
  await assertRefused(store, ask({}, MNO_X), 'NotAuthorised');
  await assertRefused(store, ask({ newSmId: 'sm-nobody.example' }), 'UnknownPeer');
  await assertRefused(store, ask({ newSmId: CURRENT }), 'UnknownPeer');
  await assertRefused(store, ask({ newSmId: '' }), 'InvalidInput');
  await assertRefused(store, ask({ activationCode: '' }), 'InvalidInput');
  await assertRefused(
    store,
    ask({
      profileSwitch: { disableIccid: '12', enableIccid: '8944200000000000002', rollbackOnFailure: false },
    }),
    'InvalidInput',
  );
  await assertRefused(
    store,
    ask({
      profileSwitch: {
        disableIccid: '8944200000000000002',
        enableIccid: '8944200000000000002',
        rollbackOnFailure: true,
      },
    }),
    'InvalidInput',
  );

  await sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: NEW });
  await assertRefused(store, ask(), 'TransferPending');
  await assertRefused(store, ask({ newSmId: OTHER }), 'TransferPending');
});

test('a new SM whose certificate does not validate is refused', async () => {
  const otherCi = issueCi({ curve: 'p256', commonName: 'Rogue CI' });
  const rogue = issueSm({ issuerCert: otherCi.certificate, issuerKey: otherCi.privateKey, smId: NEW });
  const world = createSmWorld({ directoryOverride: { [NEW]: rogue.certificate } });
  const { sm, store } = world.get(CURRENT);
  const chip = await registeredChip(world);
  await assertRefused(
    store,
    () => sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: NEW }),
    'PeerCertificateInvalid',
  );
  await assertRefused(
    store,
    () => sm.handleTransferAsk(NEW, { eid: chip.eid, askId: 'a1' }),
    'PeerCertificateInvalid',
  );
  // A certificate valid under our CI but for another SM id.
  const world2 = createSmWorld();
  const wrongName = issueSm({
    issuerCert: world2.ci.certificate,
    issuerKey: world2.ci.privateKey,
    smId: OTHER,
  });
  const world3 = createSmWorld({ directoryOverride: { [NEW]: wrongName.certificate } });
  const chip3 = await registeredChip(world3);
  const cur3 = world3.get(CURRENT);
  await assertRefused(
    cur3.store,
    () => cur3.sm.requestRelease(MNO_A, { eid: chip3.eid, newSmId: NEW }),
    'PeerCertificateInvalid',
  );
});

test('locks (§8): lockedUntil, lockedUntilCode, and lockout after five wrong codes', async () => {
  const world = createSmWorld();
  const { sm, store } = world.get(CURRENT);
  const chip = await registeredChip(world);
  const later = new Date(world.clock.now.getTime() + 3600_000);
  await sm.setLock(MNO_A, chip.eid, { kind: 'lockedUntil', until: later });
  await assertRefused(store, () => sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: NEW }), 'ChipLocked');
  await assertRefused(store, () => sm.handleTransferAsk(NEW, { eid: chip.eid, askId: 'a1' }), 'ChipLocked');

  await sm.setLock(MNO_A, chip.eid, { kind: 'lockedUntilCode', unlockCode: 'right-code' });
  assert.ok(!JSON.stringify(store.dump()).includes('right-code'), 'only a hash is stored');
  await assertRefused(store, () => sm.handleTransferAsk(NEW, { eid: chip.eid, askId: 'a1' }), 'ChipLocked');

  for (let i = 1; i <= MAX_UNLOCK_ATTEMPTS; i++) {
    const before = store.dump();
    await assert.rejects(
      sm.handleTransferAsk(NEW, { eid: chip.eid, askId: 'a1', unlockCode: `wrong-${i}` }),
      {
        code: 'UnlockCodeInvalid',
      },
    );
    // The one refusal that writes: the attempt is counted and audited, nothing else changes.
    const after = store.dump();
    const lock = after.chips.get(chip.eid)?.lock;
    assert.ok(lock?.kind === 'lockedUntilCode');
    assert.equal(lock.failedAttempts, i);
    assert.equal(after.audit.length, before.audit.length + 1);
    assert.equal(after.audit.at(-1)?.action, 'unlockFailed');
    assert.deepEqual(after.transfers, before.transfers);
    assert.deepEqual(after.outbox, before.outbox);
    assert.equal(after.chips.get(chip.eid)?.counter, before.chips.get(chip.eid)?.counter);
    assert.ok(!JSON.stringify(after.audit).includes(`wrong-${i}`));
  }
  await assertRefused(
    store,
    () => sm.handleTransferAsk(NEW, { eid: chip.eid, askId: 'a1', unlockCode: 'right-code' }),
    'LockedOut',
  );
  assert.equal((await sm.getChip(MNO_A, chip.eid)).lock.kind, 'lockedUntilCode');

  // The operator sets a new code: the right one now unlocks.
  await sm.setLock(MNO_A, chip.eid, { kind: 'lockedUntilCode', unlockCode: 'new-code' });
  const reply = await sm.handleTransferAsk(NEW, { eid: chip.eid, askId: 'a1', unlockCode: 'new-code' });
  assert.equal(reply.type === 'TransferAskAccepted' && reply.state, 'permitted');
  assert.equal(
    (await sm.listAudit(MNO_A, { eid: chip.eid })).filter((e) => e.action === 'lockChanged').length,
    3,
  );
});

test('setLock and registerChip refusals', async () => {
  const world = createSmWorld({ operators: twoOperators });
  const { sm, store } = world.get(CURRENT);
  const chip = await registeredChip(world);
  await assertRefused(store, () => sm.setLock(MNO_X, chip.eid, { kind: 'unlocked' }), 'NotAuthorised');
  await assertRefused(store, () => sm.setLock(MNO_A, worldEid(5), { kind: 'unlocked' }), 'ChipNotManaged');
  await assertRefused(
    store,
    () => sm.setLock(MNO_A, chip.eid, { kind: 'lockedUntil', until: new Date('nope') }),
    'InvalidInput',
  );
  await assertRefused(store, () => sm.registerChip(MNO_A, registration(chip)), 'ChipExists');
  await assertRefused(store, () => sm.registerChip('mno-unknown', registration(chip)), 'NotAuthorised');

  // A chip whose EUM is not under a configured CI; an EUM swapped for another.
  const otherCi = issueCi({ curve: 'p256' });
  const otherEum = issueEum({
    issuerCert: otherCi.certificate,
    issuerKey: otherCi.privateKey,
    org: 'X',
    eidPrefix: '89001012',
  });
  const stranger = issueTestChip(world, worldEid(7));
  await assertRefused(
    store,
    () =>
      sm.registerChip(MNO_A, {
        chipCertificate: stranger.chipCertificate,
        eumCertificate: otherEum.certificate.der,
      }),
    'ChipCertificateInvalid',
  );
  await assertRefused(
    store,
    () =>
      sm.registerChip(MNO_A, {
        chipCertificate: new Uint8Array([0x30, 0x00]),
        eumCertificate: stranger.eumCertificate,
      }),
    'ChipCertificateInvalid',
  );
  // An SM certificate is not a chip certificate.
  await assertRefused(
    store,
    () =>
      sm.registerChip(MNO_A, {
        chipCertificate: world.get(NEW).certificate.der,
        eumCertificate: stranger.eumCertificate,
      }),
    'ChipCertificateInvalid',
  );
});

test('peer asks: authorisation, idempotency, approval', async () => {
  const world = createSmWorld({ operators: twoOperators });
  const { sm, store } = world.get(CURRENT);
  const chipA = await registeredChip(world, 1, CURRENT, MNO_A);
  const chipX = await registeredChip(world, 2, CURRENT, MNO_X);
  await assertRefused(
    store,
    () => sm.handleTransferAsk(CURRENT, { eid: chipA.eid, askId: 'a1' }),
    'NotAuthorised',
  );
  await assertRefused(
    store,
    () => sm.handleTransferAsk('sm-nobody.example', { eid: chipA.eid, askId: 'a1' }),
    'UnknownPeer',
  );
  await assertRefused(
    store,
    () => sm.handleTransferAsk(NEW, { eid: worldEid(9), askId: 'a1' }),
    'ChipNotManaged',
  );
  await assertRefused(
    store,
    () => sm.handleTransferAsk(NEW, { eid: chipA.eid, askId: 'a1', activationCodeHash: new Uint8Array(3) }),
    'InvalidInput',
  );
  await assertRefused(
    store,
    () => sm.handleTransferAsk(NEW, { eid: chipA.eid, askId: 'bad id!' }),
    'InvalidInput',
  );

  const first = await sm.handleTransferAsk(NEW, { eid: chipA.eid, askId: 'a1' });
  assert.equal(first.type === 'TransferAskAccepted' && first.state, 'permitted');
  const snap = store.dump();
  assert.deepEqual(await sm.handleTransferAsk(NEW, { eid: chipA.eid, askId: 'a1' }), first);
  assert.deepEqual(store.dump(), snap, 'a repeated ask has no second effect');
  await assertRefused(
    store,
    () => sm.handleTransferAsk(NEW, { eid: chipA.eid, askId: 'a2' }),
    'TransferPending',
  );
  await assertRefused(
    store,
    () => sm.handleTransferAsk(OTHER, { eid: chipA.eid, askId: 'a1' }),
    'TransferPending',
  );

  // MNO_X requires approval: the ask waits; only MNO_X may decide.
  const waiting = await sm.handleTransferAsk(NEW, { eid: chipX.eid, askId: 'x1' });
  assert.ok(waiting.type === 'TransferAskAccepted' && waiting.state === 'awaitingApproval');
  await assertRefused(store, () => sm.approve(MNO_A, waiting.transferId), 'NotAuthorised');
  await assertRefused(store, () => sm.reject(MNO_A, waiting.transferId), 'NotAuthorised');
  await assertRefused(store, () => sm.approve(MNO_X, 'tr_nope'), 'UnknownTransfer');
  await assertRefused(
    store,
    () => sm.approve(MNO_A, first.type === 'TransferAskAccepted' ? first.transferId : ''),
    'InvalidState',
  );
  // A lock set meanwhile holds against the approval.
  await sm.setLock(MNO_X, chipX.eid, {
    kind: 'lockedUntil',
    until: new Date(world.clock.now.getTime() + 1000),
  });
  await assertRefused(store, () => sm.approve(MNO_X, waiting.transferId), 'ChipLocked');
  world.clock.advance(2000);
  const approved = await sm.approve(MNO_X, waiting.transferId);
  assert.equal(approved.state, 'permitted');
  await assertRefused(store, () => sm.approve(MNO_X, waiting.transferId), 'InvalidState');
  await assertRefused(store, () => sm.reject(MNO_X, waiting.transferId), 'InvalidState');
});

test('an approval after its deadline is refused; expiry ends the ask and tells the new SM', async () => {
  const world = createSmWorld({
    operators: { [CURRENT]: [{ id: MNO_A, approvalRequired: true }] },
    permissionValidityMs: 60_000,
  });
  const cur = world.get(CURRENT);
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { transfer } = await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: true });
  await neu.sm.drainOutbox(world.transport);
  const [waiting] = await cur.sm.listTransfers(MNO_A);
  world.clock.advance(61_000);
  await assertRefused(cur.store, () => cur.sm.approve(MNO_A, waiting!.id), 'InvalidState');
  assert.deepEqual(await cur.sm.expire(), { expired: [waiting!.id], cancelsIssued: [] });
  assert.equal((await cur.sm.getTransfer(MNO_A, waiting!.id)).endReason, 'approvalTimeout');
  await cur.sm.drainOutbox(world.transport);
  assert.equal((await neu.sm.getTransfer(MNO_B, transfer.id)).state, 'expired');
  // A repeated ask for an ended transfer is refused with TransferEnded.
  await assertRefused(
    cur.store,
    () => cur.sm.handleTransferAsk(NEW, { eid: chip.eid, askId: transfer.id }),
    'TransferEnded',
  );
});

test('a chip being ported in cannot be registered by hand', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = issueTestChip(world, worldEid(1));
  await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
  await assertRefused(neu.store, () => neu.sm.registerChip(MNO_B, registration(chip)), 'OrderPending');
  await assertRefused(
    neu.store,
    () =>
      neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: 'yes' as unknown as boolean }),
    'InvalidInput',
  );
});

test("construction refuses a certificate that is not this SM's", async () => {
  const world = createSmWorld();
  const { SubscriptionManager } = await import('./subscription-manager.ts');
  const { MemoryStore } = await import('./store/memory.ts');
  const { keySigner } = await import('../protocol/crypto/signer.ts');
  const cur = world.get(CURRENT);
  const base = {
    smId: CURRENT,
    signer: keySigner(cur.privateKey),
    certificate: cur.certificate.der,
    trustedCis: [world.ci.certificate],
    store: new MemoryStore(),
    operators: [],
    directory: {},
  };
  assert.equal(new SubscriptionManager(base).smId, CURRENT);
  assert.throws(() => new SubscriptionManager({ ...base, smId: NEW }), { code: 'InvalidInput' });
  assert.throws(() => new SubscriptionManager({ ...base, signer: keySigner(world.get(NEW).privateKey) }), {
    code: 'InvalidInput',
  });
  assert.throws(() => new SubscriptionManager({ ...base, trustedCis: [] }), { code: 'InvalidInput' });
  assert.throws(
    () =>
      new SubscriptionManager({
        ...base,
        directory: { [NEW]: { address: 'http://x', certificate: new Uint8Array() } },
      }),
    { code: 'InvalidInput' },
  );
});
