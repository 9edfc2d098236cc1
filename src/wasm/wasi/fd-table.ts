/**
 * The program's file descriptors: 0, 1 and 2 are the standard streams, the
 * preopened directories follow from 3 (wasi-libc finds them by asking
 * fd_prestat_get from 3 up until BADF), then what path_open returns: the
 * lowest free number, as POSIX does, so that a program opening the same
 * files gets the same numbers migrated or not. Plain data, saved as it is.
 */
import { Errno } from './wasi-abi.js';
import { fail } from './wasi-errno.js';

export type FdKind = 'stdin' | 'stdout' | 'stderr' | 'file' | 'dir';

export interface FdEntry {
  readonly kind: FdKind;
  /** The node of a file or directory; 0 for the standard streams. */
  readonly ino: number;
  /** A file's position; stdin's position in the configured input. */
  offset: number;
  /** __WASI_FDFLAGS_* */
  fdflags: number;
  rightsBase: number;
  rightsInheriting: number;
  /** A preopened directory's name as the program sees it ("/data"), else null. */
  readonly preopen: string | null;
}

/** Open descriptors at most (EMFILE beyond). */
export const MAX_FDS = 1024;

export class FdTable {
  constructor(readonly entries: Map<number, FdEntry>) {}

  /** The entry of `fd`, or BADF. */
  get(fd: number): FdEntry {
    const entry = this.entries.get(fd);
    if (entry === undefined) fail(Errno.BADF);
    return entry;
  }

  /** The entry of `fd` if it may do what `right` allows: BADF otherwise (read on a write-only file, as POSIX). */
  withRight(fd: number, right: number): FdEntry {
    const entry = this.get(fd);
    if ((entry.rightsBase & right) === 0) fail(Errno.BADF);
    return entry;
  }

  /** Give `entry` the lowest free number. */
  open(entry: FdEntry): number {
    if (this.entries.size >= MAX_FDS) fail(Errno.MFILE);
    let fd = 0;
    while (this.entries.has(fd)) fd++;
    this.entries.set(fd, entry);
    return fd;
  }

  close(fd: number): FdEntry {
    const entry = this.get(fd);
    this.entries.delete(fd);
    return entry;
  }

  /** fd_renumber: `to` (which must be open) is closed and `from` takes its number. Returns what `to` was (null if from = to). */
  renumber(from: number, to: number): FdEntry | null {
    const moving = this.get(from);
    const replaced = this.get(to);
    if (from === to) return null;
    this.entries.delete(from);
    this.entries.set(to, moving);
    return replaced;
  }

  /** Whether an open descriptor refers to node `ino`. */
  refers(ino: number): boolean {
    for (const entry of this.entries.values()) if (entry.ino === ino && (entry.kind === 'file' || entry.kind === 'dir')) return true;
    return false;
  }
}
