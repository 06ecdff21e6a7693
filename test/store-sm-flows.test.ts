/**
 * The SM logic over the SQL stores: SubscriptionManagers on SQLite files (and on PostgreSQL
 * schemas when DATABASE_URL is set) and the real chip simulator, with SM restarts (close the
 * store, open the same database again, a new SubscriptionManager) between the steps: everything
 * a step needs must come from the database.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { ChipCard } from '../src/chip/apdu.ts';
import { createChipState } from '../src/chip/create.ts';
import { ChipProcessor } from '../src/chip/processor.ts';
import { MemoryStateStore } from '../src/chip/store.ts';
import { sendCommand } from '../src/device/apdu-client.ts';
import { decodeMessage } from '../src/protocol/asn1/decode-any.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../src/protocol/asn1/info.ts';
import { findAuditBreak } from '../src/sm/audit-chain.ts';
import { openSqliteStore, type SqlStore } from '../src/sm/store/kysely/index.ts';
import { PG_SKIP, tempSchema, testDatabaseUrl } from '../src/sm/store/kysely/testing.ts';
import {
  CURRENT,
  createSmWorld,
  MNO_A,
  MNO_B,
  NEW,
  OTHER,
  type SmWorld,
  worldEid,
} from './support/sm-world.ts';

const DAY = 24 * 3600_000;
const OLD_ICCID = '8944100000000000001';
const NEW_ICCID = '8944200000000000002';

type SqlWorld = SmWorld<SqlStore>;

interface Databases {
  /** Opens SM `smId`'s database (the same one each time). */
  open(smId: string): Promise<SqlStore>;
  /** After every store is closed. */
  remove(): Promise<void>;
}

function sqliteDatabases(): Databases {
  const dir = mkdtempSync(join(tmpdir(), 'handover-sm-sqlite-'));
  return {
    open: (smId) => openSqliteStore(join(dir, `${smId}.sqlite`)),
    remove: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

function postgresDatabases(url: string): Databases {
  const schemas = new Map([CURRENT, NEW, OTHER].map((smId) => [smId, tempSchema(url)]));
  return {
    open: (smId) => schemas.get(smId)!.open(),
    async remove() {
      for (const s of schemas.values()) await s.drop(await s.open());
    },
  };
}

/** Three SMs, each over its own database; `restart` closes an SM's store and opens it again. */
async function sqlWorld(databases: Databases) {
  const stores = new Map<string, SqlStore>();
  for (const smId of [CURRENT, NEW, OTHER]) stores.set(smId, await databases.open(smId));
  const world: SqlWorld = createSmWorld({ storeFactory: (smId) => stores.get(smId)! });
  return {
    world,
    async restart(smId: string) {
      await world.get(smId).store.close();
      return world.restart(smId, await databases.open(smId));
    },
    async dispose() {
      for (const w of world.sms.values()) await w.store.close();
      await databases.remove();
    },
  };
}

type Flow = (w: Awaited<ReturnType<typeof sqlWorld>>) => Promise<void>;

/** Runs `flow` on SQLite, and on PostgreSQL when DATABASE_URL is set (else a visible skip). */
function flow(title: string, body: Flow) {
  const run = async (databases: Databases) => {
    const w = await sqlWorld(databases);
    try {
      await body(w);
    } finally {
      await w.dispose();
    }
  };
  test(`SQLite: ${title}`, () => run(sqliteDatabases()));
  test(`PostgreSQL: ${title}`, async (t: TestContext) => {
    const url = testDatabaseUrl();
    if (url === undefined) {
      t.skip(PG_SKIP);
      return;
    }
    await run(postgresDatabases(url));
  });
}

function realChip(world: SqlWorld, serial = 1) {
  const state = createChipState({
    identity: {
      kind: 'issue',
      eid: worldEid(serial),
      eumCertificate: world.eum.certificate,
      eumKey: world.eum.privateKey,
    },
    ciCertificates: [world.ci.certificate],
    smId: CURRENT,
    smCertificate: world.get(CURRENT).certificate,
    profiles: [
      { iccid: OLD_ICCID, operator: 'A', state: 'enabled' },
      { iccid: NEW_ICCID, operator: 'B', state: 'disabled' },
    ],
  });
  const card = new ChipCard(new ChipProcessor(new MemoryStateStore(state)));
  const send = (der: Uint8Array) => sendCommand((apdu) => card.transmit(apdu), der);
  return { send, eid: state.eid };
}

type RealChip = ReturnType<typeof realChip>;

const info = async (chip: RealChip) => decodeChipInfo(await chip.send(encodeGetChipInfo()));
const typeOf = (bytes: Uint8Array) => decodeMessage(bytes).type;

async function registerReal(world: SqlWorld, chip: RealChip) {
  const i = await info(chip);
  await world
    .get(CURRENT)
    .sm.registerChip(MNO_A, { chipCertificate: i.chipCertificate, eumCertificate: i.eumCertificate });
}

async function assertAuditIntact(world: SqlWorld) {
  for (const w of world.sms.values()) {
    const log = await w.store.transaction((tx) => tx.listAudit());
    assert.equal(findAuditBreak(log), undefined, `${w.smId}: audit chain intact`);
  }
}

flow('a real chip moves to the new SM, with both SMs restarted along the way', async ({ world, restart }) => {
  const chip = realChip(world);
  await registerReal(world, chip);
  const order = await world.get(NEW).sm.orderPortIn(MNO_B, {
    eid: chip.eid,
    currentSmId: CURRENT,
    activationCode: 'AC',
    ask: true,
  });
  await world.get(NEW).sm.drainOutbox(world.transport);

  const cur = await restart(CURRENT);
  const [permissionMessage] = await cur.sm.poll(chip.eid);
  const request = await chip.send(permissionMessage!);
  assert.equal(typeOf(request), 'TransferRequest');
  const command = await world.get(NEW).sm.postTransferRequest(request);

  // The new SM restarts holding keys for a handover in progress (keyEstablished).
  const neu = await restart(NEW);
  assert.equal((await neu.sm.getTransfer(MNO_B, order.transfer.id)).state, 'keyEstablished');
  assert.deepEqual(await neu.sm.postTransferRequest(request), command, 'the same answer after a restart');
  const result = await chip.send(command);
  assert.equal(typeOf(result), 'HandoverResult');
  assert.equal((await neu.sm.postHandoverResult(result)).state, 'completed');
  await neu.sm.drainOutbox(world.transport);

  for (const smId of [CURRENT, NEW]) await restart(smId);
  const [t] = await world.get(CURRENT).sm.listTransfers(MNO_A);
  assert.equal(t?.state, 'completed');
  const released = await world.get(CURRENT).store.transaction((tx) => tx.getChip(chip.eid));
  assert.equal(released?.status, 'released');
  assert.equal(released?.keyset, undefined, 'keys wiped on release');
  assert.equal((await world.get(NEW).sm.getTransfer(MNO_B, order.transfer.id)).state, 'completed');
  assert.equal((await world.get(NEW).sm.getChip(MNO_B, chip.eid)).status, 'managed');
  const after = await info(chip);
  assert.equal(after.assignedSmId, NEW);
  assert.equal(after.pendingPermissionId, undefined);
  await assertAuditIntact(world);
});

flow('profile switch confirmed by the chip, across a restart of the new SM', async ({ world, restart }) => {
  const chip = realChip(world);
  await registerReal(world, chip);
  await world.get(NEW).sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
  await world.get(CURRENT).sm.requestRelease(MNO_A, {
    eid: chip.eid,
    newSmId: NEW,
    profileSwitch: { disableIccid: OLD_ICCID, enableIccid: NEW_ICCID, rollbackOnFailure: true },
  });
  const [pm] = await world.get(CURRENT).sm.poll(chip.eid);
  const command = await world.get(NEW).sm.postTransferRequest(await chip.send(pm!));
  await world.get(NEW).sm.postHandoverResult(await chip.send(command));
  const neu = await restart(NEW);
  const [confirm] = await neu.sm.poll(chip.eid);
  assert.equal(typeOf(confirm!), 'ConfirmProfileSwitch');
  const outcome = await neu.sm.postChipResult(await chip.send(confirm!));
  assert.deepEqual([outcome.outcome, outcome.effect], ['ok', 'confirmed']);
  await restart(NEW);
  assert.equal((await world.get(NEW).sm.getChip(MNO_B, chip.eid)).profileSwitchState, 'confirmed');
  assert.equal((await info(chip)).counter, 1);
  await assertAuditIntact(world);
});

flow(
  'an unused permission is cancelled after expiry, and the chip comes back later',
  async ({ world, restart }) => {
    const chip = realChip(world);
    await registerReal(world, chip);
    const order = await world
      .get(NEW)
      .sm.orderPortIn(MNO_B, { eid: chip.eid, currentSmId: CURRENT, ask: false });
    await world.get(CURRENT).sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: NEW });
    const [pm] = await world.get(CURRENT).sm.poll(chip.eid);
    const command = await world.get(NEW).sm.postTransferRequest(await chip.send(pm!));
    await chip.send(command); // the chip commits; the result is lost on the way
    world.clock.advance(DAY + 1000);
    let cur = await restart(CURRENT);
    assert.equal((await cur.sm.expire()).cancelsIssued.length, 1);
    await world.get(NEW).sm.expire();
    assert.equal((await world.get(NEW).sm.getTransfer(MNO_B, order.transfer.id)).state, 'keyEstablished');
    cur = await restart(CURRENT);
    const [cancel] = await cur.sm.poll(chip.eid);
    const r = await cur.sm.postChipResult(await chip.send(cancel!));
    assert.deepEqual([r.outcome, r.effect], ['notCurrentSm', 'completed']);
    await cur.sm.drainOutbox(world.transport);
    assert.equal((await world.get(NEW).sm.getTransfer(MNO_B, order.transfer.id)).state, 'completed');

    // Back again: the first SM takes the chip over from "released", its counter starting anew.
    await cur.sm.orderPortIn(MNO_A, { eid: chip.eid, currentSmId: NEW, ask: false });
    await world.get(NEW).sm.requestRelease(MNO_B, { eid: chip.eid, newSmId: CURRENT });
    const [back] = await world.get(NEW).sm.poll(chip.eid);
    const command2 = await cur.sm.postTransferRequest(await chip.send(back!));
    await cur.sm.postHandoverResult(await chip.send(command2));
    cur = await restart(CURRENT);
    assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).status, 'managed');
    assert.equal((await cur.sm.getChip(MNO_A, chip.eid)).counter, 0);
    assert.equal((await info(chip)).assignedSmId, CURRENT);

    // And out once more: counter value 1 is used a second time toward the chip, in a new generation.
    await world.get(OTHER).sm.orderPortIn('mno-2', { eid: chip.eid, currentSmId: CURRENT, ask: false });
    await cur.sm.requestRelease(MNO_A, { eid: chip.eid, newSmId: OTHER });
    const [pm3] = await cur.sm.poll(chip.eid);
    const command3 = await world.get(OTHER).sm.postTransferRequest(await chip.send(pm3!));
    await world.get(OTHER).sm.postHandoverResult(await chip.send(command3));
    assert.equal((await info(chip)).assignedSmId, OTHER);
    const used = await cur.store.db
      .selectFrom('used_counters')
      .select(['generation', 'counter'])
      .orderBy('generation')
      .orderBy('counter')
      .execute();
    assert.deepEqual(
      used.map((u) => [u.generation, u.counter]),
      [
        [1, 1],
        [1, 2],
        [2, 1],
      ],
    );
    await assertAuditIntact(world);
  },
);
