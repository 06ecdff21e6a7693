/**
 * The device agent for many chips at once (a chip farm): the same relay as DeviceAgent
 * (relayMessages / retryHeld of agent.ts, per chip), driven over a list or stream of EIDs.
 *
 * A sweep polls the chips' home SMs a batch at a time (`pollMany` when the SM offers a batch
 * poll, else one `poll` per chip), and relays the messages of each chip that has some, with at
 * most `concurrency` chips in flight. What the agent keeps per chip lives in a bounded table
 * (ChipTable) and only while the chip has something in flight: its home and a HandoverCommand it
 * could not deliver yet (§6.6; retried at the start of the next sweep). Chips with nothing in
 * flight are not in memory: their home comes from `homeOf`, and a completed handover is
 * reported through `onHomeChanged` for the caller to keep (a file, a database, or nothing when
 * the caller polls the new SM anyway).
 */
import {
  type ChipRelayState,
  type DeviceStep,
  type RelayIo,
  relayMessages,
  retryHeld,
  type SmEndpoints,
} from './agent.ts';
import { sendCommand, type Transmit } from './apdu-client.ts';

/** SmEndpoints with an optional batch poll: the messages waiting for each of `eids` (absent = none). */
export interface BatchSmEndpoints extends SmEndpoints {
  pollMany?(smAddress: string, eids: readonly string[]): Promise<Map<string, Uint8Array[]>>;
}

/** One command's DER to a chip by EID, its DER answer back. */
export type ChipLink = (eid: string, der: Uint8Array) => Promise<Uint8Array>;

/** A ChipLink over addressed APDUs (e.g. a FarmLink's transmit): STORE DATA / GET RESPONSE per chip. */
export function apduChipLink(transmit: (eid: string, apdu: Uint8Array) => Promise<Uint8Array>): ChipLink {
  return (eid, der) => {
    const t: Transmit = (apdu) => transmit(eid, apdu);
    return sendCommand(t, der);
  };
}

/**
 * The chips the agent holds in memory: at most `capacity`, each only while it has something in
 * flight (being relayed now, or holding an undelivered HandoverCommand).
 */
export class ChipTable {
  readonly capacity: number;
  readonly #chips = new Map<string, ChipRelayState>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity is a positive integer');
    this.capacity = capacity;
  }

  get size(): number {
    return this.#chips.size;
  }

  /** How many chips hold a HandoverCommand. */
  get heldCount(): number {
    let n = 0;
    for (const c of this.#chips.values()) if (c.held) n++;
    return n;
  }

  has(eid: string): boolean {
    return this.#chips.has(eid);
  }

  get(eid: string): ChipRelayState | undefined {
    return this.#chips.get(eid);
  }

  /** Adds a chip; false (and nothing added) when the table is full or holds the EID already. */
  add(chip: ChipRelayState): boolean {
    if (this.#chips.size >= this.capacity || this.#chips.has(chip.eid)) return false;
    this.#chips.set(chip.eid, chip);
    return true;
  }

  delete(eid: string): boolean {
    return this.#chips.delete(eid);
  }

  /** The chips holding a HandoverCommand (a snapshot). */
  held(): ChipRelayState[] {
    return [...this.#chips.values()].filter((c) => c.held !== undefined);
  }
}

/** At most `limit` tasks at once; `slot()` waits for room. */
class Limiter {
  readonly #limit: number;
  #active = 0;
  #waiting: (() => void)[] = [];
  #idle: (() => void)[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Starts `task` when there is room; resolves once it started (not when it ends). */
  async start(task: () => Promise<void>): Promise<void> {
    while (this.#active >= this.#limit) await new Promise<void>((r) => this.#waiting.push(r));
    this.#active++;
    void task().finally(() => {
      this.#active--;
      this.#waiting.shift()?.();
      if (this.#active === 0) for (const r of this.#idle.splice(0)) r();
    });
  }

  idle(): Promise<void> {
    return this.#active === 0 ? Promise.resolve() : new Promise((r) => this.#idle.push(r));
  }
}

export interface BatchAgentOptions {
  readonly sms: BatchSmEndpoints;
  readonly sendToChip: ChipLink;
  /** The home SM of a chip not in flight (default: `homeSmAddress` for every chip). */
  readonly homeOf?: (eid: string) => string;
  readonly homeSmAddress?: string;
  /** A chip committed a handover: its home is now `address`. */
  readonly onHomeChanged?: (eid: string, address: string) => void;
  /** Chips relayed at once (default 64). */
  readonly concurrency?: number;
  /** Chips per poll (default 500). */
  readonly pollBatchSize?: number;
  /** Chips in memory at most (default 4096): in flight plus holding a HandoverCommand. */
  readonly maxTracked?: number;
  readonly onStep?: (eid: string, step: DeviceStep) => void;
  /** A chip's home or held HandoverCommand changed (RelayIo.onRelayState). */
  readonly onRelayState?: (chip: ChipRelayState) => void;
  /**
   * Chips holding a HandoverCommand from an earlier run (kept by onRelayState): delivered again
   * by the first sweep. Those past `maxTracked` wait for a later run.
   */
  readonly resume?: Iterable<ChipRelayState>;
  /** A chip's relay failed (it is retried by a later sweep when it holds a HandoverCommand). */
  readonly onChipError?: (eid: string, error: unknown) => void;
  /** A poll failed: none of `eids` was relayed from `smAddress` in this sweep. */
  readonly onPollError?: (smAddress: string, eids: readonly string[], error: unknown) => void;
}

export interface SweepReport {
  /** Chips polled (each once per sweep). */
  polled: number;
  /** Chips that had messages. */
  withMessages: number;
  messages: number;
  /** Chips whose held HandoverCommand was delivered again. */
  retried: number;
  /** Chips whose home changed (a committed handover). */
  handovers: number;
  /** Chips whose relay failed. */
  failed: number;
  /** Chips whose poll failed. */
  pollFailures: number;
  /** Chips not polled: the table was full of chips holding commands (SMs unreachable?). */
  deferred: number;
  /** Chips holding a HandoverCommand after the sweep. */
  held: number;
}

export class BatchDeviceAgent {
  readonly #o: BatchAgentOptions;
  readonly #table: ChipTable;
  readonly #limiter: Limiter;
  readonly #concurrency: number;
  readonly #pollBatch: number;
  readonly #homeOf: (eid: string) => string;

  constructor(o: BatchAgentOptions) {
    this.#o = o;
    this.#concurrency = o.concurrency ?? 64;
    this.#pollBatch = o.pollBatchSize ?? 500;
    const capacity = o.maxTracked ?? 4096;
    if (capacity <= this.#concurrency) throw new RangeError('maxTracked must exceed concurrency');
    this.#table = new ChipTable(capacity);
    for (const chip of o.resume ?? []) {
      if (chip.held) this.#table.add({ eid: chip.eid, home: chip.home, held: chip.held });
    }
    this.#limiter = new Limiter(this.#concurrency);
    const home = o.homeSmAddress;
    this.#homeOf =
      o.homeOf ??
      (() => {
        if (home === undefined) throw new RangeError('give homeOf or homeSmAddress');
        return home;
      });
  }

  /** The chips in memory now (in flight or holding a command). */
  get tracked(): number {
    return this.#table.size;
  }

  /** The chips holding an undelivered HandoverCommand. */
  get held(): number {
    return this.#table.heldCount;
  }

  /**
   * One pass: chips holding a HandoverCommand get it delivered again, then every chip of `eids`
   * not in flight is polled at its home and its messages relayed. Resolves when every chip
   * started in this sweep has finished.
   */
  async sweep(eids: Iterable<string> | AsyncIterable<string>): Promise<SweepReport> {
    const report: SweepReport = {
      polled: 0,
      withMessages: 0,
      messages: 0,
      retried: 0,
      handovers: 0,
      failed: 0,
      pollFailures: 0,
      deferred: 0,
      held: 0,
    };
    for (const chip of this.#table.held()) {
      const before = chip.home;
      await this.#limiter.start(async () => {
        try {
          await retryHeld(chip, this.#io(chip.eid));
          report.retried++;
          this.#done(chip, before, report);
        } catch (e) {
          this.#failed(chip, before, e, report);
        }
      });
    }
    let batch: string[] = [];
    for await (const eid of eids) {
      batch.push(eid);
      if (batch.length >= this.#pollBatch) {
        await this.#pollAndRelay(batch, report);
        batch = [];
      }
    }
    if (batch.length > 0) await this.#pollAndRelay(batch, report);
    await this.#limiter.idle();
    report.held = this.#table.heldCount;
    return report;
  }

  #io(eid: string): RelayIo {
    const { sendToChip, sms, onStep, onRelayState } = this.#o;
    return {
      sendToChip: (der) => sendToChip(eid, der),
      sms,
      ...(onStep && { onStep: (s: DeviceStep) => onStep(eid, s) }),
      ...(onRelayState && { onRelayState }),
    };
  }

  async #pollAndRelay(eids: readonly string[], report: SweepReport): Promise<void> {
    const free = eids.filter((e) => !this.#table.has(e));
    // No room beside the chips holding commands: do not even poll (polling marks deliveries).
    if (this.#table.heldCount + this.#concurrency > this.#table.capacity) {
      report.deferred += free.length;
      return;
    }
    const byHome = new Map<string, string[]>();
    for (const eid of free) {
      const home = this.#homeOf(eid);
      const group = byHome.get(home) ?? [];
      if (group.length === 0) byHome.set(home, group);
      group.push(eid);
    }
    for (const [home, group] of byHome) {
      const polled = await this.#poll(home, group, report);
      report.polled += group.length;
      for (const eid of group) {
        const messages = polled.get(eid);
        if (!messages || messages.length === 0) continue;
        report.withMessages++;
        report.messages += messages.length;
        const chip: ChipRelayState = { eid, home, held: undefined };
        await this.#limiter.start(async () => {
          if (!this.#table.add(chip)) {
            // Full of chips holding commands: the SM offers these messages again next poll.
            report.deferred++;
            return;
          }
          try {
            await relayMessages(chip, home, messages, this.#io(eid));
            this.#done(chip, home, report);
          } catch (e) {
            this.#failed(chip, home, e, report);
          }
        });
      }
    }
  }

  async #poll(home: string, eids: string[], report: SweepReport): Promise<Map<string, Uint8Array[]>> {
    const { sms } = this.#o;
    if (sms.pollMany) {
      try {
        return await sms.pollMany(home, eids);
      } catch (e) {
        report.pollFailures += eids.length;
        this.#o.onPollError?.(home, eids, e);
        return new Map();
      }
    }
    const out = new Map<string, Uint8Array[]>();
    const failed: string[] = [];
    let errorSeen: unknown;
    let next = 0;
    const worker = async () => {
      while (next < eids.length) {
        const eid = eids[next++]!;
        try {
          out.set(eid, await sms.poll(home, eid));
        } catch (e) {
          failed.push(eid);
          errorSeen = e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, eids.length) }, worker));
    if (failed.length > 0) {
      report.pollFailures += failed.length;
      this.#o.onPollError?.(home, failed, errorSeen);
    }
    return out;
  }

  #done(chip: ChipRelayState, homeBefore: string, report: SweepReport): void {
    this.#table.delete(chip.eid);
    this.#homeMoved(chip, homeBefore, report);
  }

  #failed(chip: ChipRelayState, homeBefore: string, error: unknown, report: SweepReport): void {
    report.failed++;
    this.#o.onChipError?.(chip.eid, error);
    this.#homeMoved(chip, homeBefore, report);
    // A chip holding a HandoverCommand keeps its table slot until a sweep delivers it.
    if (!chip.held) this.#table.delete(chip.eid);
  }

  #homeMoved(chip: ChipRelayState, homeBefore: string, report: SweepReport): void {
    if (chip.home === homeBefore) return;
    report.handovers++;
    this.#o.onHomeChanged?.(chip.eid, chip.home);
  }
}
