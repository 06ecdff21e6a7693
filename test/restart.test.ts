/**
 * Crash recovery with real processes (PROTOCOL.md §6.6: servers persist each state transition
 * before answering and resume after a restart from the store; the device agent keeps the
 * HandoverCommand until it has delivered a result). A port-in completes, both SMs `completed` and
 * the chip assigned to the new SM, although one SM process is killed with SIGKILL and started
 * again (same configuration, same port) at one of these points:
 *
 *   askQueued            the new SM has queued its TransferAsk; the current SM, frozen
 *                        (SIGSTOP), has not taken it
 *   permissionIssued     the current SM issued the permission; the new SM holds the acceptance
 *   permissionDelivered  the device fetched the permission and the chip answered with its
 *                        TransferRequest, not yet posted
 *   keyEstablished       the new SM answered the TransferRequest with its HandoverCommand
 *                        (keyEstablished); the chip has not seen the command
 *   chipCommitted        the chip committed; its HandoverResult is not yet posted
 *   newSmCompleted       the new SM completed; its Completed is not yet delivered to the current
 *                        SM (frozen until the kill)
 *
 * Each point is run once with the current SM killed and once with the new SM killed (one pair of
 * SM processes per victim, the two pairs side by side), on SQLite, and on PostgreSQL when
 * DATABASE_URL is set. The SMs are `handover sm start` processes; the chip
 * (in-process, over APDUs) and the device agent (src/device/agent.ts over the HTTPS device API)
 * run in the test, whose hooks in the agent's calls kill at the exact point. Afterwards the audit
 * chains of both SMs still verify. A failure report carries the SM processes' stderr.
 */
import assert from 'node:assert/strict';
import { after, before, describe, type TestContext, test } from 'node:test';
import { verifyAuditLog } from '../src/cli/audit-command.ts';
import { DeviceAgent, type SmEndpoints } from '../src/device/agent.ts';
import { decodeMessage } from '../src/protocol/asn1/decode-any.ts';
import { HandoverError } from '../src/protocol/errors.ts';
import { testDatabaseUrl } from '../src/sm/store/kysely/testing.ts';
import { createHttpTestChip } from './support/http-chip.ts';
import { ALPHA, BETA } from './support/http-world.ts';
import { createRestartWorld, type ProcessBackend, type RestartWorld } from './support/restart-world.ts';

type Step =
  | 'askQueued'
  | 'permissionIssued'
  | 'permissionDelivered'
  | 'keyEstablished'
  | 'chipCommitted'
  | 'newSmCompleted';

const STEPS: readonly { readonly step: Step; readonly when: string }[] = [
  { step: 'askQueued', when: 'after the TransferAsk is queued' },
  { step: 'permissionIssued', when: 'after the permission is issued' },
  { step: 'permissionDelivered', when: 'after the permission reached the chip' },
  { step: 'keyEstablished', when: 'after the HandoverCommand (keyEstablished)' },
  { step: 'chipCommitted', when: 'after the chip committed, before the HandoverResult is posted' },
  { step: 'newSmCompleted', when: 'after the new SM completed, before the Completed is delivered' },
];

/** Bound on one port-in, restarts and outbox backoff included. */
const PORT_IN_TIMEOUT_MS = 60_000;

interface TransferJson {
  id: string;
  state: string;
  direction: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(probe: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** One port-in from ALPHA (current SM) to BETA (new SM), with `victim` killed and restarted at `step`. */
async function portInSurvives(w: RestartWorld, serial: number, step: Step, victim: string): Promise<void> {
  const alpha = w.operator(ALPHA);
  const beta = w.operator(BETA);
  const chip = createHttpTestChip(w.pki, w.eid(serial), ALPHA);
  await alpha.post('/v1/chips', await chip.registration());
  const outgoingState = async () =>
    (await alpha.get<{ transfers: TransferJson[] }>(`/v1/transfers?eid=${chip.eid}`)).transfers[0]?.state;

  let crashed = false;
  /** SIGKILL the victim and start it again; a frozen current SM comes back too. */
  const crash = async () => {
    assert.equal(crashed, false, 'one crash per port-in');
    crashed = true;
    await w.kill(victim);
    if (w.isFrozen(ALPHA)) w.thaw(ALPHA);
    await w.start(victim);
  };

  if (step === 'askQueued') w.freeze(ALPHA);
  const order = await beta.post<{ transfer: TransferJson }>('/v1/port-ins', {
    eid: chip.eid,
    currentSmId: ALPHA,
  });
  const incomingId = order.transfer.id;
  const incomingState = async () => (await beta.get<TransferJson>(`/v1/transfers/${incomingId}`)).state;
  if (step === 'askQueued') {
    assert.equal(await incomingState(), 'ordered');
    await crash();
  }
  if (step === 'permissionIssued') {
    await until(async () => (await incomingState()) === 'permitted', 'the new SM to hold the permission');
    assert.equal(await outgoingState(), 'permitted');
    await crash();
  }

  // The kills from inside the agent's calls: a failure there must end the test, not be retried.
  let hookFailure: unknown;
  const hook = async (at: Step, check: () => Promise<void>) => {
    if (step !== at || crashed) return;
    try {
      await check();
      await crash();
    } catch (e) {
      hookFailure ??= e;
      throw e;
    }
  };
  const sendToChip = async (der: Uint8Array) => {
    const answer = await chip.send(der);
    const type = decodeMessage(answer).type;
    if (type === 'TransferRequest') {
      await hook('permissionDelivered', async () => assert.equal(await outgoingState(), 'delivered'));
    }
    if (type === 'HandoverResult') {
      await hook('chipCommitted', async () => {
        assert.equal(chip.state().assignment.smId, BETA);
        assert.equal(await incomingState(), 'keyEstablished');
      });
    }
    return answer;
  };
  const sms: SmEndpoints = {
    poll: (address, eid) => w.device.poll(address, eid),
    postChipResult: (address, result) => w.device.postChipResult(address, result),
    async postTransferRequest(address, request) {
      const command = await w.device.postTransferRequest(address, request);
      await hook('keyEstablished', async () => assert.equal(await incomingState(), 'keyEstablished'));
      return command;
    },
    async postHandoverResult(address, result) {
      if (step === 'newSmCompleted' && !crashed && !w.isFrozen(ALPHA)) w.freeze(ALPHA);
      await w.device.postHandoverResult(address, result);
      await hook('newSmCompleted', async () => assert.equal(await incomingState(), 'completed'));
    },
  };
  const agent = new DeviceAgent({ eid: chip.eid, homeSmAddress: w.url(ALPHA), sendToChip, sms });

  const completed = async () =>
    (await incomingState().catch(() => undefined)) === 'completed' &&
    (await outgoingState().catch(() => undefined)) === 'completed';
  const deadline = Date.now() + PORT_IN_TIMEOUT_MS;
  let agentError: unknown;
  while (!(await completed())) {
    if (hookFailure !== undefined) throw hookFailure;
    if (Date.now() > deadline) {
      const last = agentError instanceof Error ? agentError.message : String(agentError);
      throw new Error(
        `the port-in did not complete in ${PORT_IN_TIMEOUT_MS} ms (new SM: ${await incomingState().catch(() => '?')}, ` +
          `current SM: ${await outgoingState().catch(() => '?')}, last device error: ${last})`,
      );
    }
    try {
      await agent.runOnce();
    } catch (e) {
      agentError = e;
    }
    await sleep(100);
  }

  assert.ok(crashed, `the ${step} point was reached and ${victim} was killed there`);
  assert.equal(chip.state().assignment.smId, BETA, 'the chip is assigned to the new SM');
  assert.equal(agent.homeSmAddress, w.url(BETA));
  await assert.rejects(alpha.get(`/v1/chips/${chip.eid}`), (e: unknown) => {
    assert.ok(e instanceof HandoverError);
    assert.equal(e.code, 'ChipNotManaged', 'the current SM released the chip');
    return true;
  });
  const adopted = await beta.get<{ status: string }>(`/v1/chips/${chip.eid}`);
  assert.equal(adopted.status, 'managed');
}

const SKIP_PG = 'DATABASE_URL not set: the PostgreSQL variant of the restart tests is skipped';

/** One pair of SM processes on `backend`; every step with `victim` killed there. */
function suite(backend: ProcessBackend, victim: string, role: string): void {
  const skip = backend === 'postgres' && testDatabaseUrl() === undefined ? SKIP_PG : undefined;
  // One port-in after the other on this pair (concurrency 1: the parent's 2 is not inherited).
  describe(`a port-in survives SIGKILL and restart of the ${role} SM process (${backend})`, {
    concurrency: 1,
  }, () => {
    let w: RestartWorld | undefined;
    let serial = 1;

    before(async () => {
      if (skip !== undefined) return;
      w = await createRestartWorld({
        backend,
        sms: [
          { smId: ALPHA, operator: 'mno-a' },
          { smId: BETA, operator: 'mno-b' },
        ],
      });
    });
    after(() => w?.close());

    const it = (name: string, body: (w: RestartWorld, t: TestContext) => Promise<void>) =>
      test(name, { timeout: PORT_IN_TIMEOUT_MS + 30_000 }, async (t) => {
        if (skip !== undefined || w === undefined) {
          t.skip(skip ?? 'the SM processes did not start');
          return;
        }
        const world = w;
        try {
          await body(world, t);
        } catch (e) {
          const message = e instanceof Error ? e.message : String(e);
          throw new Error(`${message}\n${world.tails(4)}`, { cause: e });
        } finally {
          // Whatever happened, the next port-in starts with both SMs up.
          for (const smId of [ALPHA, BETA]) {
            if (world.isFrozen(smId)) world.thaw(smId);
            if (!world.isRunning(smId)) await world.start(smId);
          }
        }
      });

    for (const { step, when } of STEPS) {
      it(`the ${role} SM killed ${when}`, async (world) => {
        const before = world.generations(victim);
        await portInSurvives(world, serial++, step, victim);
        assert.equal(world.generations(victim), before + 1);
      });
    }

    it('the audit chains of both SMs still verify', async (world) => {
      for (const smId of [ALPHA, BETA]) {
        const verdict = await verifyAuditLog(world.configFile(smId), world.env(smId));
        assert.equal(verdict.valid, true, `${smId}: ${JSON.stringify(verdict)}`);
        assert.ok(verdict.valid && verdict.entries >= STEPS.length * 3, JSON.stringify(verdict));
      }
    });
  });
}

// Two pairs of SM processes at a time (the processes mostly wait; starting one is the cost).
describe('restarts', { concurrency: 2 }, () => {
  for (const backend of ['sqlite', 'postgres'] as const) {
    suite(backend, ALPHA, 'current');
    suite(backend, BETA, 'new');
  }
});
