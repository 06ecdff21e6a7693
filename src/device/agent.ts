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

export class DeviceAgent {
  #home: string;
  /** A HandoverCommand not yet answered to the new SM: kept until a result is delivered (§6.6). */
  #held: { address: string; command: Uint8Array } | undefined;
  readonly #o: DeviceAgentOptions;

  constructor(o: DeviceAgentOptions) {
    this.#o = o;
    this.#home = o.homeSmAddress;
  }

  get homeSmAddress(): string {
    return this.#home;
  }

  /** Polls the home SM once and carries every message through; returns how many were handled. */
  async runOnce(): Promise<number> {
    if (this.#held) await this.#executeHandover(this.#held.address, this.#held.command);
    const home = this.#home;
    const messages = await this.#o.sms.poll(home, this.#o.eid);
    for (const m of messages) await this.#handle(home, m);
    return messages.length;
  }

  async #chip(from: string, bytes: Uint8Array): Promise<Uint8Array> {
    this.#step(from, 'chip', bytes);
    const answer = await this.#o.sendToChip(bytes);
    return answer;
  }

  #step(from: string, to: string, bytes: Uint8Array): void {
    this.#o.onStep?.({ from, to, type: decodeMessage(bytes).type, bytes });
  }

  async #handle(smAddress: string, message: Uint8Array): Promise<void> {
    const decoded = decodeMessage(message);
    const answer = await this.#chip(smAddress, message);
    const type = decodeMessage(answer).type;
    if (type === 'ChipResult') {
      this.#step('chip', smAddress, answer);
      await this.#o.sms.postChipResult(smAddress, answer);
      return;
    }
    if (decoded.type === 'TransferPermissionMessage' && type === 'TransferRequest') {
      const newSm = decoded.value.permission.data.newSmAddress;
      this.#step('chip', newSm, answer);
      const command = await this.#o.sms.postTransferRequest(newSm, answer);
      this.#held = { address: newSm, command };
      await this.#executeHandover(newSm, command);
      return;
    }
    throw new HandoverError('UnexpectedChipAnswer', `the chip answered ${decoded.type} with ${type}`);
  }

  async #executeHandover(address: string, command: Uint8Array): Promise<void> {
    const result = await this.#chip(address, command);
    const type = decodeMessage(result).type;
    this.#step('chip', address, result);
    if (type === 'HandoverResult') {
      await this.#o.sms.postHandoverResult(address, result);
      this.#home = address;
    } else {
      await this.#o.sms.postChipResult(address, result);
    }
    this.#held = undefined;
  }
}
