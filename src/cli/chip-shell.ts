/**
 * `handover chip shell --state FILE`: an interactive session with the chip whose state is in
 * FILE, over one card for the whole session (so STORE DATA chaining and GET RESPONSE work across
 * `apdu` lines). Commands:
 *   apdu HEX…         raw APDUs, one response line each (as `handover chip apdu`)
 *   send HEX|FILE     one whole command's DER, framed into STORE DATA + GET RESPONSE; the answer
 *                     decoded as JSON (as `handover decode`)
 *   info              the chip's state without secrets (as `handover chip info`)
 *   decode HEX|FILE   any message as JSON (as `handover decode`)
 *   select            SELECT the ISD-R
 *   help, exit
 * On a terminal (stdin and stdout) it has a prompt, line editing, history and Tab completion
 * (readline); otherwise it reads commands line by line from stdin without a prompt, so a script
 * can be piped in. A failing command prints one `{"error":…}` line and the shell goes on;
 * without a terminal the exit code is then 1.
 * Each command runs on the state as it is in the file at that moment.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { MalformedMessage } from '../protocol/errors.ts';
import { errorJson, FileChip, parseApduHex, SELECT_ISD_R, toHex } from './chip-apdu.ts';
import { decodeToJson, hexBytes, inputBytes } from './decode.ts';

export interface ShellIo {
  readonly input: NodeJS.ReadableStream;
  readonly output: NodeJS.WritableStream;
  /** A terminal: prompt, line editing and history. */
  readonly interactive: boolean;
}

class ShellError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

interface ShellCommand {
  readonly usage: string;
  readonly help: string;
  readonly run: (args: readonly string[]) => Promise<readonly string[]> | readonly string[];
}

const EXIT_WORDS = new Set(['exit', 'quit']);

/** Splits a line into words; "double" or 'single' quotes keep white space inside a word. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(re)) words.push(m[1] ?? m[2] ?? m[3] ?? '');
  return words;
}

/** HEX or FILE: one word naming an existing file is read (DER, hex or base64 text, as decode reads). */
function bytesArgument(args: readonly string[], command: string): Uint8Array {
  if (args.length === 0) throw new ShellError('UsageError', `${command} needs HEX or a FILE`);
  const only = args.length === 1 ? args[0]! : undefined;
  if (only !== undefined && existsSync(only) && statSync(only).isFile()) {
    const bytes = inputBytes(readFileSync(only));
    if (bytes.length === 0) throw new ShellError('UsageError', `${command}: "${only}" is empty`);
    return bytes;
  }
  const text = args.join('');
  if (!/^[0-9A-Fa-f]+$/.test(text)) {
    throw new ShellError(
      'UsageError',
      `${command}: "${text.length > 40 ? `${text.slice(0, 40)}…` : text}" is neither an existing file nor hex`,
    );
  }
  return hexBytes(text, command);
}

export class ChipShell {
  readonly #chip: FileChip;
  readonly #commands: ReadonlyMap<string, ShellCommand>;
  /** Internal failures the card answered with 6F00, collected until the command ends. */
  #cardErrors: unknown[] = [];
  #failures = 0;

  constructor(statePath: string) {
    this.#chip = new FileChip(statePath, (e) => this.#cardErrors.push(e));
    this.#commands = new Map<string, ShellCommand>([
      [
        'apdu',
        {
          usage: 'apdu HEX…',
          help: 'send raw command APDUs; prints data ‖ SW per APDU (chaining carries over between lines)',
          run: (args) => {
            if (args.length === 0) throw new ShellError('UsageError', 'apdu needs at least one APDU in hex');
            const apdus = args.map((a, i) =>
              parseApduHex(a, args.length === 1 ? 'the APDU' : `APDU ${i + 1}`),
            );
            return apdus.map((a) => toHex(this.#chip.transmit(a)));
          },
        },
      ],
      [
        'send',
        {
          usage: 'send HEX|FILE',
          help: "send one command's DER (framed into STORE DATA + GET RESPONSE); prints the answer decoded",
          run: async (args) => {
            const answer = await this.#chip.send(bytesArgument(args, 'send'));
            try {
              return [JSON.stringify(decodeToJson(answer))];
            } catch (e) {
              if (!(e instanceof MalformedMessage)) throw e;
              throw new ShellError(
                'MalformedAnswer',
                `the chip answered ${toHex(answer)}, which does not decode: ${e.message}`,
              );
            }
          },
        },
      ],
      [
        'info',
        {
          usage: 'info',
          help: "the chip's EID, assignment, counter, pending transfer and profiles (no secrets)",
          run: () => [JSON.stringify(this.#chip.summary())],
        },
      ],
      [
        'decode',
        {
          usage: 'decode HEX|FILE',
          help: 'decode any protocol message to JSON (as "handover decode")',
          run: (args) => {
            const bytes = bytesArgument(args, 'decode');
            try {
              return [JSON.stringify(decodeToJson(bytes))];
            } catch (e) {
              if (!(e instanceof MalformedMessage)) throw e;
              // The same line "handover decode" prints for bytes that do not decode.
              this.#failures++;
              return [JSON.stringify({ error: { code: e.code, field: e.field, message: e.message } })];
            }
          },
        },
      ],
      [
        'select',
        {
          usage: 'select',
          help: 'SELECT the ISD-R (00A4040010 A0000005591010FFFFFFFF8900000100)',
          run: () => [toHex(this.#chip.transmit(SELECT_ISD_R))],
        },
      ],
    ]);
  }

  /** How many commands failed so far (each printed an error line). */
  get failures(): number {
    return this.#failures;
  }

  get commandNames(): string[] {
    return [...this.#commands.keys(), 'help', 'exit'];
  }

  helpLines(): string[] {
    const rows = [
      ...[...this.#commands.values()].map((c) => [c.usage, c.help] as const),
      ['help', 'this list'] as const,
      ['exit', 'end the session (also quit, Ctrl-D)'] as const,
    ];
    const width = Math.max(...rows.map(([u]) => u.length));
    return rows.map(([u, h]) => `  ${u.padEnd(width)}  ${h}`);
  }

  /** Runs one line; returns the output lines and whether the session ends. */
  async run(line: string): Promise<{ lines: string[]; exit: boolean }> {
    const words = shellWords(line.trim());
    const [name, ...args] = words;
    if (name === undefined || name.startsWith('#')) return { lines: [], exit: false };
    if (EXIT_WORDS.has(name)) return { lines: [], exit: true };
    if (name === 'help' || name === '?') return { lines: this.helpLines(), exit: false };
    const command = this.#commands.get(name);
    if (!command) {
      this.#failures++;
      const message = `unknown command "${name}"; commands: ${this.commandNames.join(', ')}`;
      return { lines: [JSON.stringify({ error: { code: 'UnknownShellCommand', message } })], exit: false };
    }
    this.#cardErrors = [];
    let lines: string[];
    try {
      lines = [...(await command.run(args))];
    } catch (e) {
      this.#failures++;
      lines = [
        JSON.stringify(
          e instanceof ShellError ? { error: { code: e.code, message: e.message } } : errorJson(e),
        ),
      ];
    }
    for (const e of this.#cardErrors) {
      this.#failures++;
      lines.push(JSON.stringify(errorJson(e)));
    }
    return { lines, exit: false };
  }
}

/** The session: returns the exit code (1 when a command failed in a session without a terminal). */
export async function runChipShell(statePath: string, io: ShellIo): Promise<number> {
  const shell = new ChipShell(statePath);
  const write = (lines: readonly string[]) => {
    if (lines.length > 0) io.output.write(lines.map((l) => `${l}\n`).join(''));
  };
  const rl = createInterface({
    input: io.input,
    ...(io.interactive && { output: io.output }),
    terminal: io.interactive,
    prompt: 'chip> ',
    historySize: 1000,
    removeHistoryDuplicates: true,
    completer: (line: string): [string[], string] => {
      // Command names only (the first word).
      if (/\s/.test(line.trimStart())) return [[], line];
      return [shell.commandNames.filter((c) => c.startsWith(line.trimStart())), line];
    },
  });
  if (io.interactive) {
    write([`chip shell on ${statePath}; "help" lists the commands`, ...(await shell.run('info')).lines]);
    rl.on('SIGINT', () => rl.close());
    rl.prompt();
  }
  for await (const line of rl) {
    const { lines, exit } = await shell.run(line);
    write(lines);
    if (exit) break;
    if (io.interactive) rl.prompt();
  }
  rl.close();
  return !io.interactive && shell.failures > 0 ? 1 : 0;
}
