/**
 * `handover decode [FILE | - | --hex HEX]`: prints any message of PROTOCOL.md §5 as one JSON
 * object `{ type, fields }` (see decode.ts). Exit 0 decoded; 1 malformed, with
 * `{"error":{"code":"MalformedMessage","field","message"}}` on stdout; 2 no or unreadable input.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { Command } from 'commander';
import { errorCode, InvalidInput, MalformedMessage } from '../protocol/errors.ts';
import { decodeToJson, hexBytes, inputBytes } from './decode.ts';

interface DecodeOptions {
  hex?: string;
}

const usage = (message: string): InvalidInput => new InvalidInput('UsageError', message);

function readSource(file: string | undefined, opts: DecodeOptions): Uint8Array {
  if (opts.hex !== undefined) {
    if (file !== undefined) throw usage(`give either FILE or --hex, not both (got FILE "${file}")`);
    try {
      return hexBytes(opts.hex, '--hex');
    } catch (e) {
      if (e instanceof MalformedMessage) throw usage(e.message);
      throw e;
    }
  }
  if (file === undefined) throw usage("nothing to decode: give a FILE, '-' for stdin, or --hex HEX");
  let content: Buffer;
  try {
    content = readBounded(file === '-' ? 0 : file, MAX_INPUT);
  } catch (e) {
    if (e instanceof InvalidInput) throw e;
    const why = errorCode(e) ?? 'unreadable';
    throw usage(`cannot read ${file === '-' ? 'stdin' : `"${file}"`} (${why})`);
  }
  return inputBytes(content);
}

/** Far above any message (a few kilobytes) or certificate; /dev/zero is not read for ever. */
const MAX_INPUT = 1 << 20;

function readBounded(source: string | number, max: number): Buffer {
  const fd = typeof source === 'number' ? source : openSync(source, 'r');
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return Buffer.concat(chunks, size);
      size += n;
      if (size > max)
        throw usage(`the input is over ${max} bytes: no Handover message or certificate is that long`);
      chunks.push(chunk.subarray(0, n));
    }
  } finally {
    if (typeof source !== 'number') closeSync(fd);
  }
}

/** Decodes and prints; a malformed message is a negative result (exit 1), not a usage error. */
export function runDecode(file: string | undefined, opts: DecodeOptions): number {
  let bytes: Uint8Array;
  try {
    bytes = readSource(file, opts);
    if (bytes.length === 0) {
      throw usage(
        `nothing to decode: ${file === undefined || file === '-' ? 'the input' : `"${file}"`} is empty`,
      );
    }
    process.stdout.write(`${JSON.stringify(decodeToJson(bytes))}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof MalformedMessage)) throw e;
    const error = { code: e.code, field: e.field, message: e.message };
    process.stdout.write(`${JSON.stringify({ error })}\n`);
    return 1;
  }
}

export function registerDecodeCommand(program: Command): void {
  program
    .command('decode')
    .description(
      'decode any Handover message (PROTOCOL.md §5), or an X.509 certificate, to one JSON object ' +
        '{type, fields}; input is DER, hex, base64 or PEM',
    )
    .argument('[file]', "a file holding the message (DER, hex, base64 or PEM text), or '-' for stdin")
    .option('--hex <hex>', 'the message as hex digits (white space allowed)')
    .action((file: string | undefined, opts: DecodeOptions) => {
      process.exitCode = runDecode(file, opts);
    });
}
