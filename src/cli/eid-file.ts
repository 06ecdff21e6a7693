/**
 * EID files, as `transfer bulk` and `device run --batch` read them: CSV (the first column; a header
 * line naming `eid` is skipped) or one EID a line; blank lines and `#` comments are ignored; a
 * byte order mark at the start is not part of the first line.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseEid } from '../protocol/eid.ts';
import { InvalidInput } from '../protocol/errors.ts';

export interface BadLine {
  readonly line: number;
  readonly text: string;
  readonly problem: string;
}

export type EidLine =
  | { readonly kind: 'skip' }
  | { readonly kind: 'eid'; readonly eid: string }
  | { readonly kind: 'bad'; readonly problem: string };

/** One line of an EID file; `header` allows a header line naming `eid` (before the first EID). */
export function eidOfLine(raw: string, header: boolean): EidLine {
  const trimmed = raw.replace(/^\uFEFF/, '').trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'skip' };
  const first = (trimmed.split(/[,;\t]/)[0] ?? '')
    .trim()
    .replace(/^"(.*)"$/, '$1')
    .trim();
  if (header && /^eid$/i.test(first)) return { kind: 'skip' };
  try {
    return { kind: 'eid', eid: parseEid(first) };
  } catch (e) {
    return { kind: 'bad', problem: e instanceof Error ? e.message : String(e) };
  }
}

interface NumberedLine {
  readonly line: number;
  readonly text: string;
  readonly parsed: EidLine;
}

/**
 * Reads a file's lines in order: numbers them (from 1) and allows the header line only before
 * the first line that is not skipped. One reader per pass over a file.
 */
function lineReader(): (raw: string) => NumberedLine {
  let line = 0;
  let header = true;
  return (raw) => {
    line++;
    const parsed = eidOfLine(raw, header);
    if (parsed.kind !== 'skip') header = false;
    return { line, text: raw.trim(), parsed };
  };
}

/** A file's lines, read as a stream (memory does not grow with the file). */
function fileLines(path: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
}

/** The EIDs of a file's text, in order, and the lines that are not EIDs or repeat one (1-based numbers). */
export function parseEidList(text: string): { eids: string[]; bad: BadLine[] } {
  const eids: string[] = [];
  const bad: BadLine[] = [];
  const seen = new Map<string, number>();
  const read = lineReader();
  for (const raw of text.split(/\r?\n/)) {
    const { line, text: lineText, parsed } = read(raw);
    if (parsed.kind === 'skip') continue;
    if (parsed.kind === 'bad') {
      bad.push({ line, text: lineText, problem: parsed.problem });
      continue;
    }
    const before = seen.get(parsed.eid);
    if (before !== undefined) {
      bad.push({ line, text: lineText, problem: `repeats the EID of line ${before}` });
      continue;
    }
    seen.set(parsed.eid, line);
    eids.push(parsed.eid);
  }
  return { eids, bad };
}

/** Each bad line on stderr as FILE:LINE: problem, then a UsageError (exit 2) that counts them. */
export function refuseBadLines(file: string, bad: readonly BadLine[], what: string): never {
  for (const b of bad.slice(0, 1000)) process.stderr.write(`${file}:${b.line}: ${b.problem}\n`);
  throw new InvalidInput('UsageError', `${bad.length} line(s) of ${file} are not valid EIDs: ${what}`, {
    badLines: bad.slice(0, 100).map((b) => ({ line: b.line, problem: b.problem })),
  });
}

/** The EIDs of a file read line by line (memory does not grow with the file). */
export async function* streamEids(path: string): AsyncGenerator<string> {
  const read = lineReader();
  for await (const raw of fileLines(path)) {
    const { line, text, parsed } = read(raw);
    if (parsed.kind === 'eid') yield parsed.eid;
    else if (parsed.kind === 'bad') {
      throw new InvalidInput(
        'UsageError',
        `${path}:${line}: "${text.slice(0, 40)}" is not an EID: ${parsed.problem}`,
      );
    }
  }
}

/**
 * Checks a whole EID file line by line before it is used (no list of it is kept): every bad line
 * reported (repeats are not looked for: that needs the list). Returns how many EIDs it holds.
 */
export async function checkEidFile(path: string, what: string): Promise<number> {
  const read = lineReader();
  const bad: BadLine[] = [];
  let count = 0;
  for await (const raw of fileLines(path)) {
    const { line, text, parsed } = read(raw);
    if (parsed.kind === 'eid') count++;
    else if (parsed.kind === 'bad') bad.push({ line, text, problem: parsed.problem });
  }
  if (bad.length > 0) refuseBadLines(path, bad, what);
  if (count === 0) throw new InvalidInput('UsageError', `${path} lists no EID`);
  return count;
}
