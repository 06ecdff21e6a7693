/**
 * Where a chip keeps its state (PROTOCOL.md §4). A store saves one whole state at a time and,
 * after a crash, loads either the state before or the state after a save, never a mix.
 */
import { type ChipState, parseChipState, serializeChipState } from './state.ts';

export interface ChipStateStore {
  /** The current state; throws a HandoverError (ChipStateInvalid, ChipStateNotFound) when there is none. */
  load(): ChipState;
  /** Replaces the state atomically. Returns only once the new state is durable. */
  save(state: ChipState): void;
}

/** In-process store (tests, chip farms): keeps the serialised form, so no caller can alias it. */
export class MemoryStateStore implements ChipStateStore {
  #text: string;
  #saves = 0;
  constructor(initial: ChipState) {
    this.#text = serializeChipState(initial);
  }
  load(): ChipState {
    return parseChipState(this.#text);
  }
  save(state: ChipState): void {
    this.#text = serializeChipState(state);
    this.#saves++;
  }
  /** How many saves happened (tests assert that refusals write nothing). */
  get saves(): number {
    return this.#saves;
  }
}
