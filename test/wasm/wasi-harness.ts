/**
 * Helpers of the WASI device's tests: a fake host (a guest clock the test
 * moves, a sleep that ends 'elapsed' or 'paused' as the test says, output
 * collected, every reported write kept), a runner for the committed C
 * programs of test/fixtures/wasi/ on a plain WebAssembly instance, and the
 * same program under node:wasi as the reference.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { WASI_FUNCTIONS, WASI_MODULE, WasiDevice, WasiExit, type WasiHost, type WasiMemory } from '../../src/wasm/wasi/wasi-device.js';

export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/wasi/', import.meta.url));

export function fixture(name: string): WebAssembly.Module {
  return new WebAssembly.Module(readFileSync(join(FIXTURES, name)));
}

/** A memory view that follows `memory` (an unshared buffer is replaced when the program grows it). */
export class SpyMemory implements WasiMemory {
  readonly spans: [number, number][] = [];
  constructor(readonly memory: WebAssembly.Memory) {}
  get bytes(): Uint8Array { return new Uint8Array(this.memory.buffer); }
  get view(): DataView { return new DataView(this.memory.buffer); }
  written(addr: number, length: number): void { this.spans.push([addr, length]); }
}

export class FakeHost implements WasiHost {
  clockNs = 1_000_000n;
  wallNs = 1_700_000_000_000_000_000n;
  /** What host.write received, call by call. */
  readonly chunks: { fd: 1 | 2; bytes: Uint8Array }[] = [];
  /** Each sleepUntil's deadline, in order. */
  readonly sleeps: bigint[] = [];
  /** What the next sleeps end with: 'elapsed' (the clock jumps to the deadline) or a pause at a given clock. */
  readonly sleepPlan: ('elapsed' | { pausedAtNs: bigint })[] = [];
  rewind = false;
  readonly asyncify: string[] = [];
  writes = 0;
  constructor(readonly memory: WasiMemory) {}
  guestNowNs(): bigint { return this.clockNs; }
  wallNowNs(): bigint { return this.wallNs; }
  sleepUntil(deadlineNs: bigint): 'elapsed' | 'paused' {
    this.sleeps.push(deadlineNs);
    const next = this.sleepPlan.shift() ?? 'elapsed';
    if (next === 'elapsed') {
      if (this.clockNs < deadlineNs) this.clockNs = deadlineNs;
      return 'elapsed';
    }
    this.clockNs = next.pausedAtNs;
    return 'paused';
  }
  write(fd: 1 | 2, bytes: Uint8Array): void {
    this.writes++;
    this.chunks.push({ fd, bytes: bytes.slice() });
  }
  get stdout(): Buffer { return Buffer.concat(this.chunks.filter((c) => c.fd === 1).map((c) => c.bytes)); }
  get stderr(): Buffer { return Buffer.concat(this.chunks.filter((c) => c.fd === 2).map((c) => c.bytes)); }
  rewinding(): boolean { return this.rewind; }
  stopRewind(): void { this.asyncify.push('stopRewind'); this.rewind = false; }
  startUnwind(): void { this.asyncify.push('startUnwind'); }
  out(): string { return this.stdout.toString(); }
}

export interface ProgramRun {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exitCode: number;
  /** The device at the end (a restored copy if the run moved it). */
  readonly device: WasiDevice;
  readonly host: FakeHost;
}

export interface RunOptions {
  /** Move the program to WasiDevice.restore(device.save()) after each of these poll_oneoff calls (1 = the first). */
  readonly moveAfterPoll?: readonly number[];
  /** Called around every WASI call, with its name and the program's memory: to compare memory before and after. */
  readonly around?: (name: string, call: () => number, memory: SpyMemory) => number;
}

/** Run `module` to its end under `device` on a plain instance and the fake host. */
export function runProgram(module: WebAssembly.Module, device: WasiDevice, options: RunOptions = {}): ProgramRun {
  let memory: SpyMemory | undefined;
  const host = new FakeHost({
    get bytes() { return memory!.bytes; },
    get view() { return memory!.view; },
    written: (a, l) => memory!.written(a, l),
  });
  let current = device;
  let bound = current.imports(host);
  let polls = 0;
  const forward: Record<string, (...args: never[]) => number | undefined> = {};
  for (const name of WASI_FUNCTIONS) {
    forward[name] = (...args: never[]) => {
      const call = () => bound[name](...args) as number;
      const result = options.around ? options.around(name, call, memory!) : call();
      if (name === 'poll_oneoff' && options.moveAfterPoll?.includes(++polls)) {
        current = WasiDevice.restore(current.save());
        bound = current.imports(host);
      }
      return result;
    };
  }
  const instance = new WebAssembly.Instance(module, { [WASI_MODULE]: forward });
  memory = new SpyMemory(instance.exports.memory as WebAssembly.Memory);
  let exitCode = 0;
  try {
    (instance.exports._start as () => void)();
  } catch (err) {
    if (!(err instanceof WasiExit)) throw err;
    exitCode = err.code;
  }
  return { stdout: host.stdout, stderr: host.stderr, exitCode, device: current, host };
}

export interface ReferenceRun {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exitCode: number;
  /** The preopened directory's files afterwards, by relative path. */
  readonly files: Map<string, Buffer>;
}

/** Run `module` under node:wasi, with `files` in a real temporary directory preopened as /data. */
export function runReference(module: WebAssembly.Module, args: string[], env: Record<string, string>,
  stdin = new Uint8Array(0), files = new Map<string, Uint8Array>()): ReferenceRun {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-wasi-'));
  const fds: number[] = [];
  try {
    const data = join(dir, 'data');
    mkdirSync(data);
    for (const [path, bytes] of files) {
      mkdirSync(dirname(join(data, path)), { recursive: true });
      writeFileSync(join(data, path), bytes);
    }
    writeFileSync(join(dir, 'stdin'), stdin);
    const open = (name: string, flags: string) => { const fd = openSync(join(dir, name), flags); fds.push(fd); return fd; };
    const wasi = new WASI({
      version: 'preview1', args, env, preopens: { '/data': data }, returnOnExit: true,
      stdin: open('stdin', 'r'), stdout: open('stdout', 'w'), stderr: open('stderr', 'w'),
    });
    const instance = new WebAssembly.Instance(module, wasi.getImportObject() as Record<string, Record<string, unknown>>);
    const exitCode = wasi.start(instance);
    return { stdout: readFileSync(join(dir, 'stdout')), stderr: readFileSync(join(dir, 'stderr')), exitCode, files: readTree(data) };
  } finally {
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

function readTree(root: string, prefix = '', out = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const entry of readdirSync(join(root, prefix), { withFileTypes: true })) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory()) readTree(root, `${path}/`, out);
    else out.set(path, readFileSync(join(root, path)));
  }
  return out;
}



/** A device called directly, over one page of plain memory, with the fake host. */
export class Direct {
  readonly memory = new WebAssembly.Memory({ initial: 1 });
  readonly spy = new SpyMemory(this.memory);
  readonly host = new FakeHost(this.spy);
  readonly wasi: Record<string, (...args: (number | bigint)[]) => number>;
  constructor(readonly device: WasiDevice) {
    this.wasi = device.imports(this.host) as unknown as Record<string, (...args: (number | bigint)[]) => number>;
  }
  static fresh(config: Partial<Parameters<typeof WasiDevice.fresh>[0]> = {}): Direct {
    return new Direct(WasiDevice.fresh({ args: ['prog'], env: [], seed: 1n, ...config }));
  }
  get bytes(): Uint8Array { return this.spy.bytes; }
  /** Put `data` (a string as UTF-8) at `addr`: the test's own write, not the layer's. */
  put(addr: number, data: Uint8Array | string): number {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    this.bytes.set(bytes, addr);
    return bytes.length;
  }
  u32(addr: number): number { return this.spy.view.getUint32(addr, true); }
  u64(addr: number): bigint { return this.spy.view.getBigUint64(addr, true); }
  text(addr: number, length: number): string { return Buffer.from(this.bytes.subarray(addr, addr + length)).toString(); }
  /** An iovec array at `at`: [buf, len] pairs. */
  iovecs(at: number, list: [number, number][]): void {
    list.forEach(([buf, len], i) => {
      this.spy.view.setUint32(at + i * 8, buf, true);
      this.spy.view.setUint32(at + i * 8 + 4, len, true);
    });
  }
  /** Open `path` under the first preopen (fd 3); returns the fd or throws the errno. */
  open(path: string, oflags: number, rights: bigint, fdflags = 0): number {
    const len = this.put(60000, path);
    const errno = this.wasi.path_open(3, 0, 60000, len, oflags, rights, 0n, fdflags, 60500);
    if (errno !== 0) throw new Error(`path_open ${path}: errno ${errno}`);
    return this.u32(60500);
  }
}
