/**
 * Every command in the README's shell blocks runs, as written, and ends as
 * the table below says: its exit code and its last line of output (STYLE.md
 * habit 18). The README and this table cannot drift apart: a command the
 * table does not know fails the test, and so does an entry the README no
 * longer holds.
 *
 * How a block runs: its commands in order, in a temporary directory of its
 * own (the working directory, where e.g. report.html lands), with `/tmp/`
 * paths moved into that directory, every TCP port replaced by a free one
 * (the same port for the same number within a block) and other hosts'
 * addresses by loopback. `npx ferry` is `node dist/src/cli/main.js`. A
 * line ending in `&`, or a destination that runs on a host of its own, is
 * started in the background and waited for until it says it is ready;
 * background processes are killed when the block ends, whatever happened.
 * The TLS block gets certificates made for it (test/transport/certs.ts),
 * issued for `localhost`, the name that replaces the example's host name.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeCerts } from '../transport/certs.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 540_000);

const root = fileURLToPath(new URL('../../../', import.meta.url));
const ferry = join(root, 'dist/src/cli/main.js');
/** The longest any one foreground command may run: the slowest measured here took ~25 s alone, ~40 s beside other builds. */
const COMMAND_LIMIT_MS = 180_000;
/** The longest a background command may take to say it is ready: a WebAssembly destination instruments its program first (cold: Binaryen's Asyncify, ~1 min for SQLite here). */
const BACKGROUND_READY_MS = 180_000;

interface Ending {
  readonly exit: number;
  /** The last non-empty line of stdout. */
  readonly last: RegExp;
}

type Expect =
  | { readonly run: 'foreground'; readonly argv?: readonly string[]; readonly ends: readonly Ending[]; readonly output?: readonly RegExp[]; readonly files?: readonly string[] }
  | { readonly run: 'background'; readonly ready: RegExp }
  | { readonly run: 'skip'; readonly why: string };

const TIMED_OUT_10 = (prefix: string) => new RegExp(`^${prefix}timed out after [\\d.]+ s \\(timeout 10 s\\): (not converging|converging|too early to tell): remaining `);
const GUEST_PROGRESS = /^ {2}guest progress +\d+ page writes, \d+\.\d\d s of vCPU run time during migration$/;
/** A WebAssembly program's: its stores are not counted, its run time is. */
const PROGRAM_PROGRESS = /^ {2}guest progress +\d+\.\d\d s of vCPU run time during migration \(a WebAssembly program's page writes are not counted\)$/m;

/** Each README command, as the README writes it (comments dropped, continuation lines joined, spaces collapsed). */
const EXPECT: Readonly<Record<string, Expect>> = {
  // The first block: CI runs `npm ci` and `npm test`; `npm start` is package.json's start script (checked below).
  'npm ci && npm start': { run: 'foreground', argv: ['demo'], ends: [{ exit: 0, last: /^demo passed$/ }] },
  'npm test': { run: 'skip', why: 'the whole suite, this test included: CI runs it' },
  // The command line. On 2 cores the two sweeping guests below dirty more than loopback carries and are cancelled
  // by their --timeout; on a faster machine they may converge, which is the other accepted ending.
  'npx ferry demo --ram 512M --rate 4 --timeout 10': {
    run: 'foreground', ends: [{ exit: 1, last: TIMED_OUT_10('demo FAILED: migration cancelled: ') }, { exit: 0, last: /^demo passed$/ }],
  },
  'npx ferry incoming --listen tcp:127.0.0.1:4444 --seconds 5 &': { run: 'background', ready: /^listening on tcp:/ },
  'npx ferry run --ram 1G --workload stress --rate 200 --seconds 2 --migrate-to tcp:127.0.0.1:4444 --downtime-limit 100 --verify': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }], output: [/^migration completed$/m],
  },
  'npx ferry run --workload sweep --seconds 2 --migrate-to file:/tmp/guest.ferry': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }], output: [/^migration completed$/m], files: ['guest.ferry'],
  },
  'npx ferry incoming --listen file:/tmp/guest.ferry --seconds 1': { run: 'foreground', ends: [{ exit: 0, last: /^sweep check after running on: passed$/ }] },
  'npx ferry incoming --listen tcp:127.0.0.1:4445 &': { run: 'background', ready: /^listening on tcp:/ },
  // Preallocating the destination.
  'npx ferry incoming --listen tcp:127.0.0.1:4449 --prealloc --prealloc-threads 2 --seconds 1 &': { run: 'background', ready: /^listening on tcp:/ },
  'npx ferry run --ram 256M --workload sweep --rate 2 --seconds 1 --migrate-to tcp:127.0.0.1:4449': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }], output: [/^migration completed$/m],
  },
  // Huge pages (they need the optional package ferry-hugepages and THP madvise or always: npm ci builds it).
  'npx ferry incoming --listen tcp:127.0.0.1:4450 --huge-pages --seconds 1 &': { run: 'background', ready: /^listening on tcp:/ },
  'npx ferry run --ram 128M --workload fill --fill-data random --seconds 1 --huge-pages --migrate-to tcp:127.0.0.1:4450': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }], output: [/^migration completed$/m],
  },
  'npx ferry run --ram 512M --workload sweep --rate 4 --qmp unix:/tmp/guest.qmp &': { run: 'background', ready: /QMP control socket on/ },
  'npx ferry migrate --qmp unix:/tmp/guest.qmp --to tcp:127.0.0.1:4445 --downtime-limit 50 --timeout 10 --report report.html': {
    run: 'foreground',
    ends: [{ exit: 1, last: TIMED_OUT_10('ferry migrate: migration cancelled: ') }, { exit: 0, last: /^report written to report\.html$/ }],
    files: ['report.html'],
  },
  'npx ferry status --qmp unix:/tmp/guest.qmp': {
    run: 'foreground', ends: [{ exit: 0, last: /^ {2}dirty syncs +\d+$/ }],
    output: [/^guest running$/m, /^ {2}status +(cancelled: timed out after|completed)/m],
  },
  // In this order the migration above has ended (cancelled by its --timeout): nothing to cancel.
  'npx ferry cancel --qmp unix:/tmp/guest.qmp': {
    run: 'foreground', ends: [{ exit: 1, last: /^ferry cancel: no migration in progress \(the last one ended (cancelled|completed)\); guest (running|postmigrate)$/ }],
  },
  // auto-converge: the sweep outpaces loopback against 10 ms until throttled.
  'npx ferry incoming --listen tcp:127.0.0.1:4447 --seconds 1 &': { run: 'background', ready: /^listening on tcp:/ },
  'npx ferry run --ram 32M --workload sweep --rate 40 --seconds 1 --migrate-to tcp:127.0.0.1:4447 --downtime-limit 10 --auto-converge --cpu-throttle-initial 50 --cpu-throttle-increment 49': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }], output: [/^migration completed$/m],
  },
  // The policy: the same sweep, finished paused once it makes no progress.
  'npx ferry incoming --listen tcp:127.0.0.1:4448 --seconds 1 &': { run: 'background', ready: /^listening on tcp:/ },
  'npx ferry run --ram 32M --workload sweep --rate 40 --seconds 1 --migrate-to tcp:127.0.0.1:4448 --downtime-limit 10 --policy progress-timeout=2s,throttle=off,pause-and-finish=on': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }],
    output: [/^migration completed$/m, /^ {2}downtime +[\d.]+ ms \(pause-and-finish: exempt from the downtime limit\)$/m, /^ {2}policy remedy +pause-and-finish: no progress in /m],
  },
  // WebAssembly programs: the committed guests/ programs; the destination prints the program's output after the move.
  'npx ferry run --wasm guests/moments.wasm -- loop 128': { run: 'foreground', ends: [{ exit: 0, last: /^checksum [0-9a-f]{16}$/ }] },
  'npx ferry incoming --wasm guests/sqlite-load.wasm --listen tcp:127.0.0.1:4446 &': { run: 'background', ready: /listening on tcp:/ },
  'npx ferry run --wasm guests/sqlite-load.wasm --seconds 1 --migrate-to tcp:127.0.0.1:4446 -- 60000 7': {
    run: 'foreground', ends: [{ exit: 0, last: /^(rows|join at rows) \d+: / }], output: [/^migration completed$/m, PROGRAM_PROGRESS],
  },
  'npx ferry demo --wasm': { run: 'foreground', ends: [{ exit: 0, last: /^demo passed$/ }] },
  // Two hosts, securely: host B's destination runs beside host A's source, both on loopback here.
  'npx ferry incoming --listen tcp:0.0.0.0:4444 --tls-cert b.pem --tls-key b.key --tls-ca ca.pem': { run: 'background', ready: /^listening on tcp:/ },
  'npx ferry run --ram 1G --workload stress --rate 50 --seconds 2 --migrate-to tcp:192.0.2.20:4444 --tls-ca ca.pem --tls-cert a.pem --tls-key a.key --tls-hostname host-b.example --verify': {
    run: 'foreground', ends: [{ exit: 0, last: GUEST_PROGRESS }], output: [/^migration completed$/m],
  },
};

/** The README's ```sh blocks, each as its commands (comments dropped, continuations joined, spaces collapsed). */
function shBlocks(markdown: string): string[][] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => {
    const joined = m[1].replace(/\\\n/g, ' ');
    return joined.split('\n')
      .map((line) => line.replace(/(^|\s)#.*$/, '').replace(/\s+/g, ' ').trim())
      .filter((line) => line !== '');
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `line`'s arguments for this machine: /tmp/ paths into `dir`, other hosts to loopback, each port to a free one. */
async function localArgs(line: string, dir: string, ports: Map<string, number>): Promise<string[]> {
  let text = line.replace(/^npx ferry /, '').replace(/ &$/, '').replaceAll('/tmp/', `${dir}/`).replaceAll('host-b.example', 'localhost')
    .replaceAll(' guests/', ` ${root}guests/`);
  for (const [, port] of text.matchAll(/tcp:[\w.]+:(\d+)/g)) if (!ports.has(port)) ports.set(port, await freePort());
  text = text.replace(/tcp:[\w.]+:(\d+)/g, (_, port: string) => `tcp:127.0.0.1:${ports.get(port)}`);
  assert.doesNotMatch(text, /["'$`|;<>]/, `a README command this test can split on spaces: ${line}`);
  return text.split(' ');
}

interface Child {
  readonly process: ChildProcess;
  readonly stdout: () => string;
  readonly output: () => string;
  readonly closed: Promise<number | null>;
}

function start(argv: readonly string[], cwd: string): Child {
  const child = spawn(process.execPath, [ferry, ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let both = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d; both += d; });
  child.stderr!.on('data', (d: Buffer) => { both += d; });
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { process: child, stdout: () => stdout, output: () => both, closed };
}

const tail = (text: string) => text.split('\n').slice(-15).join('\n');

async function runForeground(line: string, e: Extract<Expect, { run: 'foreground' }>, argv: readonly string[], dir: string): Promise<void> {
  const child = start(argv, dir);
  let code: number | null;
  try {
    code = await bounded(`\`${line}\` to finish`, child.closed, COMMAND_LIMIT_MS);
  } finally {
    if (child.process.exitCode === null) child.process.kill('SIGKILL');
  }
  const last = child.stdout().trimEnd().split('\n').at(-1) ?? '';
  const ok = e.ends.some((end) => end.exit === code && end.last.test(last));
  assert.ok(ok, `\`${line}\`: exit ${code}, last line ${JSON.stringify(last)}; expected one of ${e.ends.map((x) => `exit ${x.exit} and ${x.last}`).join(', ')}\n${tail(child.output())}`);
  for (const re of e.output ?? []) assert.match(child.output(), re, `\`${line}\` prints ${re}`);
  for (const file of e.files ?? []) assert.ok(statSync(join(dir, file)).size > 0, `\`${line}\` writes ${file}`);
}

/** Run one block's commands in order; background processes are killed at its end, whatever happened. */
async function runBlock(commands: readonly string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-readme-'));
  const ports = new Map<string, number>();
  const background: Child[] = [];
  try {
    if (commands.some((c) => c.includes('--tls-'))) {
      const certs = makeCerts();
      for (const [name, text] of [['ca.pem', certs.ca], ['b.pem', certs.server.cert], ['b.key', certs.server.key], ['a.pem', certs.client.cert], ['a.key', certs.client.key]]) {
        writeFileSync(join(dir, name), text);
      }
    }
    for (const line of commands) {
      const e = EXPECT[line];
      assert.ok(e !== undefined, `a README command the table does not know: ${line}`);
      if (e.run === 'skip') continue;
      const argv = e.run === 'foreground' && e.argv !== undefined ? e.argv : await localArgs(line, dir, ports);
      if (e.run === 'foreground') {
        await runForeground(line, e, argv, dir);
        continue;
      }
      const child = start(argv, dir);
      background.push(child);
      await until(`\`${line}\` to say it is ready`, () => {
        assert.equal(child.process.exitCode, null, `\`${line}\` exited early:\n${tail(child.output())}`);
        return e.ready.test(child.output());
      }, BACKGROUND_READY_MS);
    }
  } finally {
    for (const c of background) if (c.process.exitCode === null) c.process.kill('SIGKILL');
    await bounded('the background commands to exit', Promise.all(background.map((c) => c.closed)), 30_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

const README = readFileSync(join(root, 'README.md'), 'utf8');
const BLOCKS = shBlocks(README);

test('the README holds no command the table does not know, and the table none the README dropped', () => {
  const documented = BLOCKS.flat();
  assert.deepEqual(documented.filter((c) => EXPECT[c] === undefined), [], 'README commands missing from the table');
  assert.deepEqual(Object.keys(EXPECT).filter((c) => !documented.includes(c)), [], 'table entries no longer in the README');
  for (const c of documented.filter((l) => l.endsWith(' &'))) assert.equal(EXPECT[c].run, 'background', `${c} runs in the background`);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.start, 'node dist/src/cli/main.js demo', 'npm start is `ferry demo`, as the table runs it');
});

for (const [i, commands] of BLOCKS.entries()) {
  test(`README shell block ${i + 1}: every command finishes, with its documented exit code and last line (${commands.length} commands)`, async () => {
    await runBlock(commands);
  });
}
