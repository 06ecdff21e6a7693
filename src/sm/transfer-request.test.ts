import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertRefused, registeredChip, releasedAndPolled } from '../../test/support/sm-flows.ts';
import { issueTestChip, permissionMessage, transferRequest } from '../../test/support/sm-test-chip.ts';
import { CURRENT, createSmWorld, MNO_B, NEW, OTHER, worldEid } from '../../test/support/sm-world.ts';
import { decodeHandoverCommand } from '../protocol/asn1/handover.ts';
import { generateKeyPair } from '../protocol/crypto/keys.ts';
import { issueCi, issueSm } from '../protocol/pki/issue.ts';
import { hashActivationCode } from './domain/activation-code.ts';

test('§6.3 refusals, in order, each leaving the store unchanged', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { permissionMessage: pm } = await releasedAndPolled(world, chip);
  const post = (bytes: Uint8Array) => () => neu.sm.postTransferRequest(bytes);
  const refused = (bytes: Uint8Array, code: string) => assertRefused(neu.store, post(bytes), code);

  await refused(new Uint8Array([0xe4, 0x00]), 'MalformedMessage');
  await refused(new Uint8Array([1, 2, 3]), 'MalformedMessage');

  // Chip chain: not under our CI; another chip's certificate (EID ≠ the permission's).
  const rogueCi = issueCi({ curve: 'p256' });
  const rogueSm = issueSm({ issuerCert: rogueCi.certificate, issuerKey: rogueCi.privateKey, smId: CURRENT });
  await refused(
    transferRequest(chip, pm, { eumCertificate: rogueCi.certificate.der }).request,
    'ChipCertificateInvalid',
  );
  const other = issueTestChip(world, worldEid(2));
  await refused(transferRequest(other, pm).request, 'EidMismatch');
  // Chip signature.
  await refused(transferRequest(chip, pm, { signWith: other.key }).request, 'BadSignature');
  // Current SM certificate: another CI; a valid SM certificate of another SM.
  await refused(
    transferRequest(chip, pm, { currentSmCertificate: rogueSm.certificate.der }).request,
    'PeerCertificateInvalid',
  );
  await refused(
    transferRequest(chip, pm, { currentSmCertificate: world.get(OTHER).certificate.der }).request,
    'PeerCertificateInvalid',
  );
  // Current SM signature over the permission (a forgery under CURRENT's name, signed by OTHER).
  const base = {
    eid: chip.eid,
    currentSmId: CURRENT,
    newSmId: NEW,
    currentSmCertificate: world.get(CURRENT).certificate.der,
    newSmCertificate: neu.certificate.der,
    signWith: world.get(CURRENT).privateKey,
    notAfter: new Date(world.clock.now.getTime() + 3600_000),
  };
  await refused(
    transferRequest(chip, permissionMessage({ ...base, signWith: world.get(OTHER).privateKey })).request,
    'BadSignature',
  );
  // newSmId = this SM, in the request and in the permission.
  await refused(transferRequest(chip, pm, { newSmId: OTHER }).request, 'WrongSm');
  await refused(transferRequest(chip, permissionMessage({ ...base, newSmId: OTHER })).request, 'WrongSm');
  // now ≤ notAfter.
  await refused(
    transferRequest(
      chip,
      permissionMessage({ ...base, notAfter: new Date(world.clock.now.getTime() - 1000) }),
    ).request,
    'PermissionExpired',
  );
  // To the millisecond: a notAfter with a fraction of a second (X.690 §11.7) is read, not refused.
  await refused(
    transferRequest(chip, permissionMessage({ ...base, notAfter: new Date(world.clock.now.getTime() - 1) }))
      .request,
    'PermissionExpired',
  );
  // An invalid one-time key.
  const badPoint = new Uint8Array(65).fill(7);
  badPoint[0] = 4;
  await refused(transferRequest(chip, pm, { otPkChip: badPoint }).request, 'InvalidOneTimeKey');
  // A one-time key on the other curve is not a point on the chip's curve.
  await refused(
    transferRequest(chip, pm, { otPkChip: generateKeyPair('brainpoolP256r1').publicPoint }).request,
    'InvalidOneTimeKey',
  );
  // Several faults: the first in §6.3 order is reported.
  const expiredForgery = permissionMessage({ ...base, notAfter: new Date(0), newSmId: OTHER });
  await refused(transferRequest(chip, expiredForgery, { signWith: other.key }).request, 'BadSignature');
  await refused(transferRequest(chip, expiredForgery).request, 'WrongSm');
});

test('a permissionId is accepted once; the same request again gets the same command', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { permissionMessage: pm } = await releasedAndPolled(world, chip);
  const first = transferRequest(chip, pm);
  const command = await neu.sm.postTransferRequest(first.request);
  assert.deepEqual(await neu.sm.postTransferRequest(first.request), command);
  // Even after notAfter, the stored answer is returned (the device may have lost it).
  world.clock.advance(25 * 3600_000);
  assert.deepEqual(await neu.sm.postTransferRequest(first.request), command);
  // Another request (new challenge) for the same permission.
  await assertRefused(
    neu.store,
    () => neu.sm.postTransferRequest(transferRequest(chip, pm).request),
    'PermissionExpired',
  );
  world.clock.advance(-25 * 3600_000);
  await assertRefused(
    neu.store,
    () => neu.sm.postTransferRequest(transferRequest(chip, pm).request),
    'PermissionReused',
  );
  assert.equal(decodeHandoverCommand(command).data.keysetVersion, 1);
});

test('a request needs a matching open order from that current SM', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  // No order at all.
  const t = await world.get(CURRENT).sm.requestRelease('mno-a', { eid: chip.eid, newSmId: NEW });
  void t;
  const [pm] = await world.get(CURRENT).sm.poll(chip.eid);
  await assertRefused(
    neu.store,
    () => neu.sm.postTransferRequest(transferRequest(chip, pm!).request),
    'NoMatchingOrder',
  );
  // An order naming another current SM.
  await neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: OTHER, ask: false });
  await assertRefused(
    neu.store,
    () => neu.sm.postTransferRequest(transferRequest(chip, pm!).request),
    'NoMatchingOrder',
  );
  await assertRefused(
    neu.store,
    () => neu.sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false }),
    'OrderPending',
  );
});

test('an expired order matches nothing', async () => {
  const world = createSmWorld();
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { permissionMessage: pm, orderTransferId } = await releasedAndPolled(world, chip);
  world.clock.advance(8 * 24 * 3600_000);
  const fresh = permissionMessage({
    eid: chip.eid,
    currentSmId: CURRENT,
    newSmId: NEW,
    currentSmCertificate: world.get(CURRENT).certificate.der,
    newSmCertificate: neu.certificate.der,
    signWith: world.get(CURRENT).privateKey,
    notAfter: new Date(world.clock.now.getTime() + 3600_000),
  });
  void pm;
  await assertRefused(
    neu.store,
    () => neu.sm.postTransferRequest(transferRequest(chip, fresh).request),
    'NoMatchingOrder',
  );
  assert.deepEqual(await neu.sm.expire(), { expired: [orderTransferId], cancelsIssued: [] });
  assert.equal((await neu.sm.getTransfer(MNO_B, orderTransferId)).endReason, 'orderExpired');
});

test('activation codes: must match, and an order with a code never matches without one', async () => {
  const cases: { order?: string; permission?: string; ok: boolean }[] = [
    { order: 'A-1', permission: 'A-1', ok: true },
    { order: 'A-1', permission: 'A-2', ok: false },
    { order: 'A-1', ok: false },
    { permission: 'A-1', ok: false },
    { ok: true },
  ];
  for (const c of cases) {
    const world = createSmWorld();
    const neu = world.get(NEW);
    const chip = await registeredChip(world);
    await neu.sm.orderPortIn(MNO_B, {
      eid: chip.eid,
      currentSmId: CURRENT,
      ask: false,
      ...(c.order !== undefined && { activationCode: c.order }),
    });
    const pm = permissionMessage({
      eid: chip.eid,
      currentSmId: CURRENT,
      newSmId: NEW,
      currentSmCertificate: world.get(CURRENT).certificate.der,
      newSmCertificate: neu.certificate.der,
      signWith: world.get(CURRENT).privateKey,
      notAfter: new Date(world.clock.now.getTime() + 3600_000),
      ...(c.permission !== undefined && { activationCodeHash: hashActivationCode(c.permission) }),
    });
    const request = transferRequest(chip, pm).request;
    if (c.ok) await neu.sm.postTransferRequest(request);
    else await assertRefused(neu.store, () => neu.sm.postTransferRequest(request), 'ActivationCodeMismatch');
  }
});

test('brainpoolP256r1 chips and SMs work end to end at the new SM', async () => {
  const world = createSmWorld({ curve: 'brainpoolP256r1' });
  const neu = world.get(NEW);
  const chip = await registeredChip(world);
  const { permissionMessage: pm } = await releasedAndPolled(world, chip);
  const command = await neu.sm.postTransferRequest(transferRequest(chip, pm).request);
  assert.equal(decodeHandoverCommand(command).data.otPkSm.length, 65);
});
