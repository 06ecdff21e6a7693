/**
 * `device run --batch --homes FILE`: what the agent must remember across runs, as JSON lines
 * appended to FILE (the last line of an EID wins):
 *
 *   {"eid": "…", "sm": "https://…"}                                 its home is no longer --sm
 *   {"eid": "…", "sm": "https://…", "held": {"address", "command"}}  a HandoverCommand (base64)
 *                                                                   to deliver again (§6.6)
 *   {"eid": "…", "sm": "https://…", "held": null}                   answered
 *
 * The held command is written before it goes to the chip, and cleared with the new home in one
 * line, so an agent killed at any point delivers the chip's answer after its restart and
 * relays the chip to the SM it now belongs to. A torn last line (a crash while appending) is
 * left out with a warning; a bad line anywhere else is an error naming it.
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { ChipRelayState } from '../device/agent.ts';
import { HandoverError } from '../protocol/errors.ts';

export interface RelayStateFile {
  /** Chips whose home is not the default, by EID. */
  readonly homes: Map<string, string>;
  /** Chips holding a HandoverCommand to deliver again. */
  readonly resume: ChipRelayState[];
  /** A torn last line that was left out (its 1-based number), if any. */
  readonly tornLine?: number;
}

interface Line {
  readonly eid: string;
  readonly sm: string;
  readonly held?: { readonly address: string; readonly command: string } | null;
}

function lineOf(text: string): Line | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.eid !== 'string' || typeof o.sm !== 'string') return undefined;
  const held = o.held;
  if (held === undefined || held === null) return { eid: o.eid, sm: o.sm, held: null };
  if (typeof held !== 'object') return undefined;
  const h = held as Record<string, unknown>;
  if (typeof h.address !== 'string' || typeof h.command !== 'string') return undefined;
  return { eid: o.eid, sm: o.sm, held: { address: h.address, command: h.command } };
}

export function readRelayStateFile(path: string | undefined, defaultHome: string): RelayStateFile {
  const last = new Map<string, Line>();
  let tornLine: number | undefined;
  if (path !== undefined && existsSync(path)) {
    const lines = readFileSync(path, 'utf8').split('\n');
    while (lines.length > 0 && lines[lines.length - 1]?.trim() === '') lines.pop();
    lines.forEach((text, i) => {
      if (text.trim() === '') return;
      const parsed = lineOf(text);
      if (parsed) {
        last.set(parsed.eid, parsed);
        return;
      }
      if (i === lines.length - 1) {
        tornLine = i + 1;
        return;
      }
      throw new HandoverError('FileError', `--homes ${path}, line ${i + 1}: not a line this agent wrote`, {
        path,
        line: i + 1,
      });
    });
  }
  const homes = new Map<string, string>();
  const resume: ChipRelayState[] = [];
  for (const l of last.values()) {
    if (l.sm !== defaultHome) homes.set(l.eid, l.sm);
    if (l.held) {
      resume.push({
        eid: l.eid,
        home: l.sm,
        held: { address: l.held.address, command: new Uint8Array(Buffer.from(l.held.command, 'base64')) },
      });
    }
  }
  return { homes, resume, ...(tornLine !== undefined && { tornLine }) };
}

/** The line that records `chip`'s home and held command. */
export function relayStateLine(chip: ChipRelayState): string {
  const held = chip.held
    ? { address: chip.held.address, command: Buffer.from(chip.held.command).toString('base64') }
    : null;
  return `${JSON.stringify({ eid: chip.eid, sm: chip.home, held })}\n`;
}

/**
 * The file kept open for appending (one open, not one per line: the agent writes two lines per
 * transfer). Each line is written whole with one write before the relay goes on.
 */
export class RelayStateWriter {
  readonly #fd: number;

  constructor(path: string) {
    this.#fd = openSync(path, 'a');
  }

  write(chip: ChipRelayState): void {
    writeSync(this.#fd, relayStateLine(chip));
  }

  close(): void {
    closeSync(this.#fd);
  }
}
