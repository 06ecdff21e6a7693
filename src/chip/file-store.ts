/**
 * The chip state in one JSON file, replaced atomically (PROTOCOL.md §4: after a crash the chip
 * holds the state before or after a command, never a mix): write a temporary file in the same
 * folder, fsync it, rename it over the state file, fsync the folder. A crash before the rename
 * leaves the old file untouched (and a stale temporary file, which load ignores and the next
 * save removes: only the writer cleans up, so a reader such as "chip info" never deletes a
 * temporary file a running chip is about to rename); after the rename the new file is complete.
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { HandoverError } from '../protocol/errors.ts';
import { type ChipState, parseChipState, serializeChipState } from './state.ts';
import type { ChipStateStore } from './store.ts';

/** The file operations the store uses: injectable, so a test can crash it between any two. */
export interface FileOps {
  /** Opens for writing a file that must not exist yet ('wx'), or a folder for reading ('r'). */
  open(path: string, flags: 'wx' | 'r'): number;
  /** Writes some of `data` (from `offset`), returning how many bytes it wrote. */
  write(fd: number, data: Uint8Array, offset: number): number;
  fsync(fd: number): void;
  close(fd: number): void;
  rename(from: string, to: string): void;
  /** The file's content, or undefined when it does not exist. */
  readFile(path: string): string | undefined;
  readdir(dir: string): string[];
  unlink(path: string): void;
}

export const nodeFileOps: FileOps = {
  open: (path, flags) => openSync(path, flags, 0o600),
  write: (fd, data, offset) => writeSync(fd, data, offset),
  fsync: (fd) => fsyncSync(fd),
  close: (fd) => closeSync(fd),
  rename: (from, to) => renameSync(from, to),
  readFile(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  },
  readdir: (dir) => readdirSync(dir),
  unlink: (path) => unlinkSync(path),
};

export class ChipStateNotFound extends HandoverError {
  constructor(path: string) {
    super('ChipStateNotFound', `no chip state at ${path}; create one with "handover chip create"`, { path });
  }
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class FileStateStore implements ChipStateStore {
  readonly path: string;
  readonly #ops: FileOps;
  readonly #dir: string;
  readonly #base: string;
  readonly #tempName: RegExp;

  constructor(path: string, ops: FileOps = nodeFileOps) {
    this.path = path;
    this.#ops = ops;
    this.#dir = dirname(path);
    this.#base = basename(path);
    this.#tempName = new RegExp(`^\\.${escapeRegExp(this.#base)}\\.[0-9a-f]{16}\\.tmp$`);
  }

  /** Whether a state file exists (stale temporary files do not count). */
  exists(): boolean {
    return this.#ops.readFile(this.path) !== undefined;
  }

  load(): ChipState {
    const text = this.#ops.readFile(this.path);
    if (text === undefined) throw new ChipStateNotFound(this.path);
    return parseChipState(text);
  }

  save(state: ChipState): void {
    this.#removeStaleTemporaries();
    const bytes = new TextEncoder().encode(serializeChipState(state));
    const temp = join(this.#dir, `.${this.#base}.${randomBytes(8).toString('hex')}.tmp`);
    const ops = this.#ops;
    let fd: number | undefined = ops.open(temp, 'wx');
    try {
      for (let done = 0; done < bytes.length; ) done += ops.write(fd, bytes, done);
      ops.fsync(fd);
      ops.close(fd);
      fd = undefined;
      ops.rename(temp, this.path);
    } catch (e) {
      // Best effort: a real crash leaves the temporary file behind, and the next save removes it.
      try {
        if (fd !== undefined) ops.close(fd);
        ops.unlink(temp);
      } catch {}
      throw e;
    }
    // The rename is durable only once the folder entry is.
    const dirFd = ops.open(this.#dir, 'r');
    try {
      ops.fsync(dirFd);
    } finally {
      ops.close(dirFd);
    }
  }

  #removeStaleTemporaries(): void {
    for (const name of this.#ops.readdir(this.#dir)) {
      if (!this.#tempName.test(name)) continue;
      try {
        this.#ops.unlink(join(this.#dir, name));
      } catch {
        // Another process's cleanup got there first; either way it is gone or harmless.
      }
    }
  }
}
