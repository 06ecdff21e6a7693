/**
 * `handover decode [FILE | - | --hex HEX]`: prints any message of PROTOCOL.md §5 as one JSON
 * object `{ type, fields }` (see decode.ts). Exit 0 decoded; 1 malformed, with
 * `{"error":{"code":"MalformedMessage","field","message"}}` on stdout; 2 no or unreadable input.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidInput, MalformedMessage } from '../protocol/errors.ts';
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
    content = readFileSync(file === '-' ? 0 : file);
  } catch (e) {
    const why = e instanceof Error && 'code' in e ? String(e.code) : 'unreadable';
    throw usage(`cannot read ${file === '-' ? 'stdin' : `"${file}"`} (${why})`);
  }
  return inputBytes(content);
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
      'decode any Handover message (PROTOCOL.md §5) to one JSON object {type, fields}; ' +
        'input is DER, hex or base64',
    )
    .argument('[file]', "a file holding the message (DER, hex or base64 text), or '-' for stdin")
    .option('--hex <hex>', 'the message as hex digits (white space allowed)')
    .action((file: string | undefined, opts: DecodeOptions) => {
      process.exitCode = runDecode(file, opts);
    });
}
