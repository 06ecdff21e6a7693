/**
 * `npm run bench:profile -- DIR [--top N]`: sums the V8 CPU profiles that
 * `npm run bench -- --chips N --cpu-prof DIR` wrote (one folder per process) and prints, per
 * process, one JSON object: busy milliseconds, the share of busy time per category (by the
 * innermost frame's script) and the functions with the most self time. It reads only the
 * profiles; it is how BENCHMARKS.md's profile tables are made.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Category of a frame by its script; the first rule that matches wins. */
const CATEGORIES: ReadonlyArray<readonly [string, (f: CallFrame) => boolean]> = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['gc', (f) => f.functionName === '(garbage collector)'],
  ['program', (f) => f.functionName === '(program)'],
  ['sqlite', (f) => f.url.includes('better-sqlite3')],
  ['postgres', (f) => /node_modules\/(pg|pg-protocol|pg-pool)\//.test(f.url)],
  ['kysely', (f) => f.url.includes('node_modules/kysely')],
  ['fastify', (f) => /node_modules\/(fastify|@fastify|find-my-way|light-my-request|avvio)/.test(f.url)],
  ['crypto', (f) => f.url.includes('@noble') || f.url.startsWith('node:internal/crypto')],
  [
    'http/tls/net',
    (f) =>
      /^node:(internal\/)?(http|_http|https|tls|_tls|net|stream|internal\/streams|internal\/tls|internal\/http)/.test(
        f.url,
      ),
  ],
  ['module loading', (f) => /^node:internal\/modules|node_modules\/(tsx|esbuild)/.test(f.url)],
  ['store code', (f) => f.url.includes('/src/sm/store/')],
  ['protocol code', (f) => f.url.includes('/src/protocol/')],
  ['chip code', (f) => f.url.includes('/src/chip/')],
  ['sm code', (f) => f.url.includes('/src/sm/')],
  ['device code', (f) => f.url.includes('/src/device/')],
  ['bench code', (f) => f.url.includes('/bench/')],
  ['other node_modules', (f) => f.url.includes('node_modules')],
  ['node internals', (f) => f.url.startsWith('node:')],
  ['native (no script)', (f) => f.url === ''],
];

function category(f: CallFrame): string {
  for (const [name, test] of CATEGORIES) if (test(f)) return name;
  return 'other';
}

/** A frame as `function file:line`, the key the summaries count by. */
function frameKey(f: CallFrame): string {
  return `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
}

function shortUrl(url: string): string {
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) return url.slice(i + 14);
  const s = url.indexOf('/src/');
  if (s >= 0) return url.slice(s + 1);
  const b = url.indexOf('/bench/');
  return b >= 0 ? url.slice(b + 1) : url;
}

interface Summary {
  process: string;
  profiles: number;
  busyMs: number;
  idleMs: number;
  shares: Record<string, number>;
  topSelf: { frame: string; ms: number; share: number }[];
  /** Our own functions (src/) by the busy time spent in them or anything they called. */
  topInclusive: { frame: string; ms: number; share: number }[];
}

function summarise(name: string, files: string[], top: number): Summary {
  const byCategory = new Map<string, number>();
  const byFrame = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    profile.samples.forEach((id, i) => {
      const node = nodes.get(id);
      const us = profile.timeDeltas[i] ?? 0;
      if (node === undefined || us <= 0) return;
      const cat = category(node.callFrame);
      if (cat === 'idle') {
        idle += us;
        return;
      }
      busy += us;
      byCategory.set(cat, (byCategory.get(cat) ?? 0) + us);
      const key = frameKey(node.callFrame);
      byFrame.set(key, (byFrame.get(key) ?? 0) + us);
      const seen = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const cf = nodes.get(at)?.callFrame;
        if (cf === undefined || !cf.url.includes('/src/')) continue;
        const k = frameKey(cf);
        if (seen.has(k)) continue;
        seen.add(k);
        inclusive.set(k, (inclusive.get(k) ?? 0) + us);
      }
    });
  }
  const pct = (us: number) => Math.round((1000 * us) / Math.max(busy, 1)) / 10;
  const shares = Object.fromEntries(
    [...byCategory.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, pct(v)]),
  );
  const ranked = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, us]) => ({ frame, ms: Math.round(us / 1000), share: pct(us) }));
  const topSelf = ranked(byFrame);
  const topInclusive = ranked(inclusive);
  return {
    process: name,
    profiles: files.length,
    busyMs: Math.round(busy / 1000),
    idleMs: Math.round(idle / 1000),
    shares,
    topSelf,
    topInclusive,
  };
}

function profilesUnder(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f));
}

// Piped into `head` and the like: stop quietly when the reader has gone.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const args = process.argv.slice(2);
if (args.length === 0 || args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`Usage: npm run bench:profile -- DIR [--top N]
  DIR is the folder given to \`npm run bench -- --chips N --cpu-prof DIR\`: one sub-folder per
  process (sm-a, sm-b, farm, agent), each with that process's .cpuprofile files. Prints one JSON
  line per process: busy and idle milliseconds, the share of busy time per category (innermost
  frame's script), the --top N functions by self time (default 25) and the --top N of our own
  functions (src/) by inclusive time.
`);
  process.exit(args.length === 0 ? 2 : 0);
}
const dir = args[0] as string;
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
if (!Number.isInteger(top) || top < 1) {
  process.stderr.write('--top takes a positive whole number\n');
  process.exit(2);
}
let entries: string[];
try {
  entries = readdirSync(dir).filter((e) => statSync(join(dir, e)).isDirectory());
} catch (err) {
  process.stderr.write(`cannot read ${dir}: ${(err as Error).message}\n`);
  process.exit(2);
}
const here = profilesUnder(dir);
const groups: [string, string[]][] = entries.map((e) => [e, profilesUnder(join(dir, e))]);
if (here.length > 0) groups.push(['.', here]);
const found = groups.filter(([, files]) => files.length > 0);
if (found.length === 0) {
  process.stderr.write(`no .cpuprofile files in ${dir} or its sub-folders\n`);
  process.exit(2);
}
for (const [name, files] of found) {
  process.stdout.write(`${JSON.stringify(summarise(name, files, top))}\n`);
}
