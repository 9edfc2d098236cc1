/**
 * A WebAssembly program's system interface (WASI preview 1) as a ferry
 * device: its whole state (arguments, environment, standard input's
 * position, the random generator, descriptors, an in-memory filesystem for
 * the preopened directories, a sleep a pause interrupted) is plain data,
 * saved as one section and restored at the destination, where
 * `imports(host)` binds it to the destination's memory and clocks.
 * Node's `node:wasi` keeps its descriptors in native code and cannot do this.
 *
 * What each call does here (all 46 of preview 1; "as POSIX" = the errno
 * the POSIX call gives):
 *
 *   args_*, environ_*          the configured strings
 *   clock_time_get, _res_get   MONOTONIC and the CPU-time clocks: the guest clock (stops while paused);
 *                              REALTIME: the host's wall clock; resolution 1 µs; other clocks INVAL
 *   random_get                 seeded xoshiro256** (seeded-random.ts), state in the device
 *   poll_oneoff                clocks sleep on the guest clock, descriptors are ready at once;
 *                              a pause unwinds it and the rewind waits for the rest (call-poll.ts)
 *   fd_read, fd_pread          files; stdin from the configured bytes (never blocks)
 *   fd_write, fd_pwrite        files; stdout/stderr: host.write, synchronous, once, never re-run
 *   fd_seek, fd_tell           files; streams SPIPE, directories ISDIR
 *   fd_readdir                 ".", "..", entries in creation order, cookie = index + 1
 *   fd_close, fd_renumber      as POSIX (an unlinked file lives until its last close)
 *   fd_fdstat_*, fd_filestat_* as POSIX; set_rights may only drop rights (NOTCAPABLE)
 *   fd_prestat_*               the preopens from fd 3; other descriptors BADF (ends wasi-libc's scan)
 *   fd_sync, fd_datasync       files and directories: 0 (memory); streams INVAL
 *   fd_advise, fd_allocate     files: a hint / a size; streams SPIPE, directories ISDIR
 *   path_open, path_create_directory, path_unlink_file, path_remove_directory, path_rename,
 *   path_filestat_get, path_filestat_set_times
 *                              the in-memory filesystem (memory-fs.ts), as POSIX; a path may not
 *                              leave its directory ("..", absolute: NOTCAPABLE)
 *   path_link                  hard links between files; directories PERM
 *   path_symlink               NOTSUP: no symbolic links
 *   path_readlink              INVAL on an existing name (nothing is a link), NOENT otherwise
 *   proc_exit                  sets exitCode, throws WasiExit
 *   proc_raise                 NOSYS: no signals
 *   sched_yield                0
 *   sock_accept, sock_recv, sock_send, sock_shutdown
 *                              NOTSOCK (BADF on a closed descriptor): preview 1 cannot open a socket
 *                              and ferry preopens none
 *
 * Rights: only FD_READ and FD_WRITE are enforced (BADF, as reading a file
 * opened write-only); the others are kept and reported. Files together are
 * capped at MAX_FS_BYTES (8 MiB), ENOSPC beyond.
 */
import { WASI_CALLS, bindImports } from './wasi-imports.js';
import { type WasiConfig, checkConfig } from './wasi-config.js';
import type { WasiHost } from './wasi-host.js';
import { decodeState, encodeState } from './wasi-state-codec.js';
import { freshState, type WasiState } from './wasi-state.js';
import { contents } from './fs-nodes.js';

export type { WasiHost, WasiMemory } from './wasi-host.js';
export type { WasiConfig, WasiPreopen } from './wasi-config.js';
export { WasiExit } from './calls-process.js';
export { MAX_WASI_STATE_BYTES, WASI_STATE_VERSION } from './wasi-state-codec.js';
export { MAX_FS_BYTES } from './memory-fs.js';

/** The names imports() provides, to refuse a program that imports anything else. */
export const WASI_FUNCTIONS: readonly string[] = Object.freeze(Object.keys(WASI_CALLS));

/** The module name of the imports. */
export const WASI_MODULE = 'wasi_snapshot_preview1';

export class WasiDevice {
  private constructor(private readonly state: WasiState) {}

  /** A device for a program's first start; throws InvalidArgumentError naming what is wrong with `config`. */
  static fresh(config: WasiConfig): WasiDevice {
    checkConfig(config);
    return new WasiDevice(freshState(config));
  }

  /** The device `data` (from save()) describes; throws WasiStateError (ERR_FERRY_WASI_STATE) on a malformed or too-large section. */
  static restore(data: Uint8Array): WasiDevice {
    return new WasiDevice(decodeState(data));
  }

  /** The whole state as bytes (wasi-state-codec.ts); save(restore(x)) equals x. */
  save(): Uint8Array {
    return encodeState(this.state);
  }

  /** The import object for `wasi_snapshot_preview1`, bound to `host`. */
  // biome-ignore lint/suspicious/noConfusingVoidType: the signature the issue's interface fixes (every call here returns a number)
  imports(host: WasiHost): Record<string, (...args: never[]) => number | void> {
    return bindImports(this.state, host);
  }

  /** Set once the program called proc_exit (the call throws WasiExit after setting it). */
  get exitCode(): number | null {
    return this.state.exitCode;
  }

  /** The sleep a pause interrupted (its guest-clock deadline, ns), which the rewound poll_oneoff continues; null if none. */
  get pendingSleepNs(): bigint | null {
    return this.state.pendingSleep?.deadlineNs ?? null;
  }

  /**
   * The files now in each preopened directory, by relative path (the shape
   * of WasiConfig.preopens): what a program left behind, for a caller to
   * show or keep. Directories appear through their files' paths only.
   */
  preopenFiles(): { guestPath: string; files: Map<string, Uint8Array> }[] {
    const out: { guestPath: string; files: Map<string, Uint8Array> }[] = [];
    for (const entry of this.state.fds.entries.values()) {
      if (entry.preopen === null) continue;
      const files = new Map<string, Uint8Array>();
      this.collect(entry.ino, '', files);
      out.push({ guestPath: entry.preopen, files });
    }
    return out;
  }

  private collect(dirIno: number, prefix: string, files: Map<string, Uint8Array>): void {
    for (const [name, ino] of this.state.fs.dir(dirIno).entries) {
      const node = this.state.fs.node(ino);
      if (node.kind === 'file') files.set(`${prefix}${name}`, contents(node).slice());
      else this.collect(ino, `${prefix}${name}/`, files);
    }
  }
}
