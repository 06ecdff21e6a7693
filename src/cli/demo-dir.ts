/**
 * The demo's working folder is emptied before each run, so it must be one the demo made: a new or
 * empty folder, one holding the demo's marker file, or one holding only what a demo run leaves. Anything else (a folder with other files,
 * a file, the current folder, the home folder, an ancestor of either, the root) is refused before
 * anything is deleted.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, parse, relative, resolve, sep } from 'node:path';
import { InvalidInput } from '../protocol/errors.ts';

export const DEMO_MARKER = '.handover-demo';
/** What a demo run leaves (the folders of runs made before the marker existed hold only these). */
const DEMO_ENTRIES = new Set(['pki', 'data', 'chip.json', 'sm-alpha.example.json', 'sm-beta.example.json']);

const refuse = (message: string, dir: string): InvalidInput =>
  new InvalidInput('UsageError', message, { dir });

/** Whether `dir` is `other` or one of its ancestors. */
function contains(dir: string, other: string): boolean {
  const r = relative(dir, other);
  return r === '' || (r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r));
}

/** Checks `given` (as typed) and returns the absolute folder, empty and marked, ready for a run. */
export function prepareDemoDir(given: string, cwd = process.cwd(), home = homedir()): string {
  if (given.trim() === '') throw refuse('--dir is empty: name a folder for the demo', given);
  const dir = resolve(cwd, given);
  if (dir === parse(dir).root) throw refuse(`--dir ${dir} is the root folder: name a folder of its own`, dir);
  if (contains(dir, cwd) || contains(dir, home)) {
    throw refuse(
      `--dir ${dir} is the current or home folder or one above it; the demo empties its folder, so name a folder of its own (e.g. .demo)`,
      dir,
    );
  }
  if (existsSync(dir)) {
    const stat = lstatSync(dir);
    if (!stat.isDirectory()) throw refuse(`--dir ${dir} is not a folder`, dir);
    const entries = readdirSync(dir);
    const demoMade = entries.includes(DEMO_MARKER) || entries.every((e) => DEMO_ENTRIES.has(e));
    if (!demoMade) {
      throw refuse(
        `--dir ${dir} holds files the demo did not make (no ${DEMO_MARKER} in it); the demo empties its folder, so name a new or empty one`,
        dir,
      );
    }
    for (const entry of entries) rmSync(join(dir, entry), { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, DEMO_MARKER), 'Made by `handover demo`, which empties this folder at each run.\n');
  return dir;
}
