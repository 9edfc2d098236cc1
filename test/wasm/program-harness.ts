/**
 * Running the committed guest programs (guests/) in tests: the reference
 * run under node:wasi, a ferry guest whose output goes to a file, and a live
 * migration between two in-process sides. Output files live in one
 * temporary directory per test file, removed at the end.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { Guest } from '../../src/guest/guest.js';
import type { GuestProgram } from '../../src/guest/wasm-program.js';
import { IncomingMigration } from '../../src/migration/incoming.js';
import { Migration } from '../../src/migration/migration.js';
import { loadProgram, type InstrumentedModule } from '../../src/wasm/instrument.js';
import type { WasiConfig } from '../../src/wasm/wasi/wasi-config.js';
import { bounded } from '../waits.js';
import { runWasi } from '../guests/wasi-run.js';

export const GUESTS = new URL('../../../guests/', import.meta.url);

export function programBytes(name: string): Uint8Array {
  return readFileSync(new URL(`${name}.wasm`, GUESTS));
}

/** A temporary directory for this test file, removed after it; a cache of instrumented modules inside. */
export function scratch(): { dir: string; cache: { dir: string } } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-wasm-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, cache: { dir: join(dir, 'cache') } };
}

/** The test programs' memory maximum: what they use and some room (a smaller block keeps the copies and compares small). */
const TEST_MAX_MEMORY_BYTES = 512 * 1024 * 1024;

const instrumented = new Map<string, Promise<InstrumentedModule>>();

/** The instrumented program `name` (once per file). */
export function instrumentedProgram(name: string, cache: { dir: string }): Promise<InstrumentedModule> {
  let p = instrumented.get(name);
  if (p === undefined) {
    p = loadProgram(programBytes(name), { maxMemoryBytes: TEST_MAX_MEMORY_BYTES }, cache);
    instrumented.set(name, p);
  }
  return p;
}

/** A cache of instrumented modules shared by the test files (node_modules/.cache: SQLite's instrumentation is about a minute cold). */
export function sharedCache(): { dir: string } {
  return { dir: fileURLToPath(new URL('../../../node_modules/.cache/ferry-wasm-tests/', import.meta.url)) };
}

let files = 0;

/** A file for a program's output, and how to read it back. */
export function outputFile(dir: string): { fd: number; read(): string } {
  const path = join(dir, `out-${files++}.txt`);
  const fd = openSync(path, 'w');
  after(() => { try { closeSync(fd); } catch { /* closed */ } });
  return { fd, read: () => readFileSync(path, 'utf8') };
}

const references = new Map<string, Promise<{ stdout: string; code: number }>>();

/**
 * What `name args` prints under node:wasi (the reference runtime), run in a
 * worker (test/guests/wasi-run.ts says why); once per file for the same
 * program and arguments (the programs are deterministic: guests/README.md),
 * but `moments random`, whose output is the runtime's random source.
 */
export function referenceOutput(name: string, args: readonly string[]): Promise<{ stdout: string; code: number }> {
  const key = [name, ...args].join(' ');
  const run = async () => {
    const r = await runWasi(name, args, { ms: 60_000 });
    return { stdout: r.stdout, code: r.code };
  };
  if (name === 'moments' && args[0] === 'random') return run();
  let p = references.get(key);
  if (p === undefined) {
    p = run();
    references.set(key, p);
  }
  return p;
}

/** A ferry guest running `name args`, its standard output in a file; `wasi` adds directories and standard input (none by default). */
export async function programGuest(module: InstrumentedModule, name: string, args: readonly string[], dir: string, seed = 1n,
  wasi: Pick<WasiConfig, 'preopens' | 'stdin'> = {}): Promise<{ guest: Guest; out: { read(): string }; exited: Promise<number>; program: GuestProgram }> {
  const out = outputFile(dir);
  const program: GuestProgram = { instrumented: module, wasi: { args: [name, ...args], env: [], seed, ...wasi }, stdio: { stdout: out.fd } };
  const guest = await Guest.create({ program });
  after(() => guest.destroy());
  const exited = new Promise<number>((resolve) => guest.once('exit', resolve));
  return { guest, out, exited, program };
}

/**
 * Migrate `guest` live to a destination in this process, whose program
 * writes to its own file. Resolves with the destination's guest and output;
 * `onGuest` sees the destination's guest as soon as it is made, before it
 * loads or runs (to watch its run states).
 */
export async function migrateProgram(guest: Guest, program: GuestProgram, dir: string, onGuest?: (g: Guest) => void, channels = 0):
  Promise<{ guest: Guest; out: { read(): string }; exited: Promise<number>; downtimeMs: number; channels: number; program: GuestProgram }> {
  const out = outputFile(dir);
  const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', { wasm: { ...program, stdio: { stdout: out.fd } }, onGuest });
  let arrived: Guest | null = null;
  const exited = new Promise<number>((resolve) => incoming.once('guest', (g) => {
    arrived = g;
    g.once('exit', resolve);
  }));
  const m = channels === 0
    ? Migration.start(guest, incoming.uri, { downtimeLimitMs: 300 })
    : Migration.start(guest, incoming.uri, { downtimeLimitMs: 300, multifdChannels: channels }, { multifd: true });
  const r = await bounded('the migration to end', m.done(), 60_000);
  const d = await bounded('the destination to end', incoming.done(), 60_000);
  if (r.status !== 'completed' || d.status !== 'resumed' || d.guest === null) {
    throw new Error(`migration ${r.status} (${r.error}), destination ${d.status} (${d.error})`);
  }
  after(() => d.guest?.destroy());
  if (arrived !== d.guest) throw new Error('the destination announced another guest');
  return { guest: d.guest, out, exited, downtimeMs: r.stats.downtimeMs ?? 0, channels: d.stats?.channels ?? 0, program: { ...program, stdio: { stdout: out.fd } } };
}

/** Save a running program to a file (a live save: `file:`), then restore it from there into a new guest of this process. */
export async function saveAndRestore(guest: Guest, program: GuestProgram, dir: string): Promise<{ guest: Guest; out: { read(): string }; exited: Promise<number> }> {
  const path = join(dir, `saved-${files++}.ferry`);
  const r = await bounded('the save to end', Migration.start(guest, `file:${path}`, { downtimeLimitMs: 300 }).done(), 60_000);
  if (r.status !== 'completed') throw new Error(`save ${r.status}: ${r.error}`);
  const out = outputFile(dir);
  const incoming = await IncomingMigration.listen(`file:${path}`, { wasm: { ...program, stdio: { stdout: out.fd } } });
  const exited = new Promise<number>((resolve) => incoming.once('guest', (g) => g.once('exit', resolve)));
  const d = await bounded('the restore to end', incoming.done(), 60_000);
  if (d.status !== 'resumed' || d.guest === null) throw new Error(`restore ${d.status}: ${d.error}`);
  after(() => d.guest?.destroy());
  return { guest: d.guest, out, exited };
}
