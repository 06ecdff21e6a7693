/**
 * The device agent (PROTOCOL.md §1, §6): it holds no secret and trusts nobody; it relays the
 * bytes between the chip and the SMs, following the new SM address inside the signed
 * permission. Transport-agnostic: SMs are reached through `SmEndpoints` (in-process calls now,
 * HTTPS later), the chip through a `sendToChip` function (APDUs underneath).
 */
import { decodeMessage } from '../protocol/asn1/decode-any.ts';
import { HandoverError } from '../protocol/errors.ts';

/** What a device can ask of an SM (the Device API of PROTOCOL.md §9). */
export interface SmEndpoints {
  poll(smAddress: string, eid: string): Promise<Uint8Array[]>;
  postTransferRequest(smAddress: string, request: Uint8Array): Promise<Uint8Array>;
  postHandoverResult(smAddress: string, result: Uint8Array): Promise<void>;
  postChipResult(smAddress: string, result: Uint8Array): Promise<void>;
}

export interface DeviceStep {
  readonly from: string;
  readonly to: string;
  readonly type: string;
  readonly bytes: Uint8Array;
}

export interface DeviceAgentOptions {
  readonly eid: string;
  /** The base URL of the SM the chip is assigned to. */
  readonly homeSmAddress: string;
  readonly sendToChip: (der: Uint8Array) => Promise<Uint8Array>;
  readonly sms: SmEndpoints;
  readonly onStep?: (step: DeviceStep) => void;
}

/** A HandoverCommand not yet answered to the new SM at `address`. */
export interface HeldCommand {
  readonly address: string;
  readonly command: Uint8Array;
}

/** What the agent remembers about one chip between polls (the batch agent keeps many). */
export interface ChipRelayState {
  readonly eid: string;
  /** The base URL of the SM the chip is assigned to. */
  home: string;
  /** Kept until a result is delivered to the new SM (§6.6). */
  held: HeldCommand | undefined;
}

/** How one chip's bytes travel: to its chip, to the SMs, and to an observer. */
export interface RelayIo {
  readonly sendToChip: (der: Uint8Array) => Promise<Uint8Array>;
  readonly sms: SmEndpoints;
  readonly onStep?: (step: DeviceStep) => void;
  /**
   * The chip's home or held HandoverCommand changed: called when a HandoverCommand is taken
   * (before it goes to the chip) and when it is answered (home already updated), so a caller
   * that keeps `chip` on disk can deliver the command again after a crash (§6.6).
   */
  readonly onRelayState?: (chip: ChipRelayState) => void;
}

/**
 * One poll round for one chip: the held HandoverCommand first (a failure there ends the round,
 * so nothing newer overtakes it), then every message from the home SM, in order. Returns how
 * many messages were polled.
 */
export async function relayOnce(chip: ChipRelayState, io: RelayIo): Promise<number> {
  await retryHeld(chip, io);
  const home = chip.home;
  const messages = await io.sms.poll(home, chip.eid);
  await relayMessages(chip, home, messages, io);
  return messages.length;
}

/** Delivers the chip's held HandoverCommand again, if it has one. */
export async function retryHeld(chip: ChipRelayState, io: RelayIo): Promise<void> {
  if (chip.held) await executeHandover(chip, chip.held.address, chip.held.command, io);
}

/** Carries messages polled from the SM at `smAddress` through the chip and the answers back, in order. */
export async function relayMessages(
  chip: ChipRelayState,
  smAddress: string,
  messages: readonly Uint8Array[],
  io: RelayIo,
): Promise<void> {
  for (const m of messages) await handle(chip, smAddress, m, io);
}

function step(io: RelayIo, from: string, to: string, bytes: Uint8Array): void {
  io.onStep?.({ from, to, type: decodeMessage(bytes).type, bytes });
}

async function toChip(io: RelayIo, from: string, bytes: Uint8Array): Promise<Uint8Array> {
  step(io, from, 'chip', bytes);
  return io.sendToChip(bytes);
}

async function handle(
  chip: ChipRelayState,
  smAddress: string,
  message: Uint8Array,
  io: RelayIo,
): Promise<void> {
  const decoded = decodeMessage(message);
  const answer = await toChip(io, smAddress, message);
  const type = decodeMessage(answer).type;
  if (type === 'ChipResult') {
    step(io, 'chip', smAddress, answer);
    await io.sms.postChipResult(smAddress, answer);
    return;
  }
  if (decoded.type === 'TransferPermissionMessage' && type === 'TransferRequest') {
    const newSm = decoded.value.permission.data.newSmAddress;
    step(io, 'chip', newSm, answer);
    const command = await io.sms.postTransferRequest(newSm, answer);
    chip.held = { address: newSm, command };
    io.onRelayState?.(chip);
    await executeHandover(chip, newSm, command, io);
    return;
  }
  throw new HandoverError('UnexpectedChipAnswer', `the chip answered ${decoded.type} with ${type}`);
}

async function executeHandover(
  chip: ChipRelayState,
  address: string,
  command: Uint8Array,
  io: RelayIo,
): Promise<void> {
  const result = await toChip(io, address, command);
  const type = decodeMessage(result).type;
  step(io, 'chip', address, result);
  if (type === 'HandoverResult') {
    await io.sms.postHandoverResult(address, result);
    chip.home = address;
  } else {
    await io.sms.postChipResult(address, result);
  }
  chip.held = undefined;
  io.onRelayState?.(chip);
}

/** The device agent of one chip (`handover device run`). */
export class DeviceAgent {
  readonly #chip: ChipRelayState;
  readonly #io: RelayIo;

  constructor(o: DeviceAgentOptions) {
    this.#chip = { eid: o.eid, home: o.homeSmAddress, held: undefined };
    this.#io = { sendToChip: o.sendToChip, sms: o.sms, ...(o.onStep && { onStep: o.onStep }) };
  }

  get homeSmAddress(): string {
    return this.#chip.home;
  }

  /** Polls the home SM once and carries every message through; returns how many were handled. */
  runOnce(): Promise<number> {
    return relayOnce(this.#chip, this.#io);
  }
}
