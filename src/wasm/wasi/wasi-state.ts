/**
 * The whole state of a program's system interface, as plain data: what
 * wasi-state-codec.ts saves and restores, and what the calls act on.
 * Nothing in it refers to the host (memory, clock, streams): those are
 * bound per call by `imports(host)`.
 */
import { InvalidArgumentError } from '../../errors.js';
import { ALL_RIGHTS, STDIN_RIGHTS, STDOUT_RIGHTS } from './wasi-abi.js';
import type { WasiConfig, WasiPreopen } from './wasi-config.js';
import { ErrnoError } from './wasi-errno.js';
import { FdTable, type FdEntry } from './fd-table.js';
import { MemoryFs } from './memory-fs.js';
import { SeededRandom, seedRandom } from './seeded-random.js';

/** A poll_oneoff that a pause interrupted: what its re-run after the rewind waits for. */
export interface PendingSleep {
  /** The earliest clock deadline, on the guest clock (ns), which stops while the guest is paused. */
  readonly deadlineNs: bigint;
  /** Indices of the subscriptions whose deadline that is: the events to report. */
  readonly due: readonly number[];
}

export interface WasiState {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly stdin: Uint8Array;
  readonly random: SeededRandom;
  readonly fds: FdTable;
  readonly fs: MemoryFs;
  pendingSleep: PendingSleep | null;
  exitCode: number | null;
}

/** Assemble a state from its parts; the fs asks the fd table whether a node is open. */
export function makeState(parts: Omit<WasiState, 'fs' | 'fds'> & { fds: Map<number, FdEntry>; inodes: MemoryFs['inodes']; nextIno: number }): WasiState {
  const fds = new FdTable(parts.fds);
  const fs = new MemoryFs(parts.inodes, parts.nextIno, (ino) => fds.refers(ino));
  return {
    args: parts.args, env: parts.env, stdin: parts.stdin, random: parts.random, fds, fs,
    pendingSleep: parts.pendingSleep, exitCode: parts.exitCode,
  };
}

const stream = (kind: 'stdin' | 'stdout' | 'stderr'): FdEntry => ({
  kind, ino: 0, offset: 0, fdflags: 0, rightsBase: kind === 'stdin' ? STDIN_RIGHTS : STDOUT_RIGHTS, rightsInheriting: 0, preopen: null,
});

/** The state a program starts with: streams 0-2, then one descriptor per preopened directory. */
export function freshState(config: WasiConfig): WasiState {
  const state = makeState({
    args: [...config.args], env: [...config.env], stdin: (config.stdin ?? new Uint8Array(0)).slice(),
    random: new SeededRandom(seedRandom(config.seed)), fds: new Map(), inodes: new Map(), nextIno: 1,
    pendingSleep: null, exitCode: null,
  });
  for (const kind of ['stdin', 'stdout', 'stderr'] as const) state.fds.open(stream(kind));
  for (const preopen of config.preopens ?? []) {
    const root = state.fs.root();
    fill(state.fs, root, preopen);
    state.fds.open({ kind: 'dir', ino: root, offset: 0, fdflags: 0, rightsBase: ALL_RIGHTS, rightsInheriting: ALL_RIGHTS, preopen: preopen.guestPath });
  }
  return state;
}

/** Put a preopen's files into its root, making the directories on their paths. */
function fill(fs: MemoryFs, root: number, preopen: WasiPreopen): void {
  for (const [path, data] of preopen.files) {
    try {
      const parts = path.split('/');
      let dir = root;
      for (const part of parts.slice(0, -1)) {
        const at = fs.lookup(dir, part);
        dir = at.ino ?? fs.createDir(at);
      }
      const file = fs.createFile(fs.lookup(dir, parts[parts.length - 1]));
      fs.write(file, 0, data);
    } catch (err) {
      if (!(err instanceof ErrnoError)) throw err;
      throw new InvalidArgumentError(
        `WASI configuration: preopen ${preopen.guestPath}: file ${JSON.stringify(path)} cannot be made (errno ${err.errno}: ` +
        'a name used both as a file and as a directory, a name too long, or too many files)');
    }
  }
}
