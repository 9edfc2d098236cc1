/**
 * The in-memory filesystem behind the preopened directories: nodes by
 * inode number, path lookup confined to the directory a call starts from,
 * and the operations the path_* and fd_* calls need, each failing with the
 * errno POSIX gives. Its whole state is `inodes` and `nextIno` (plain data,
 * saved by wasi-state-codec.ts); `usedBytes` is derived.
 *
 * Capacity: file contents together at most MAX_FS_BYTES and at most
 * MAX_INODES nodes, ENOSPC beyond, so that the saved device stays well
 * under its section cap (wasi-state-codec.ts sums the parts).
 */
import { Errno } from './wasi-abi.js';
import { fail } from './wasi-errno.js';
import { hostWallNowNs } from './wasi-host.js';
import { type DirNode, type FileNode, type Inode, MAX_NAME_BYTES, MAX_PATH_BYTES, newDir, newFile } from './fs-nodes.js';

/** Total bytes of all files' contents (the default of issue 13's "capped" device). */
export const MAX_FS_BYTES = 8 * 1024 * 1024;
/** Files and directories together, preopen roots included. */
export const MAX_INODES = 4096;
/** Names (directory entries) at most: a hard link adds a name, not a node. */
export const MAX_NAMES = 2 * MAX_INODES;

/** Where a path leads: `ino` the node it names (if any); `parent`/`name` the entry, null for "." and "..". */
export interface Lookup {
  readonly parent: number;
  readonly name: string | null;
  readonly ino: number | undefined;
  /** The path ended in "/": it must name a directory. */
  readonly mustBeDir: boolean;
}

const utf8 = new TextEncoder();

export class MemoryFs {
  usedBytes = 0;
  /** Directory entries in all directories (derived). */
  names = 0;
  /** The clock of timestamps: the host's wall clock (set when bound to a host). */
  now: () => bigint = hostWallNowNs;

  constructor(
    readonly inodes: Map<number, Inode>,
    public nextIno: number,
    /** Whether an fd refers to `ino` (an unlinked file lives on while one does). */
    private readonly isOpen: (ino: number) => boolean,
  ) {
    for (const node of inodes.values()) {
      if (node.kind === 'file') this.usedBytes += node.size;
      else this.names += node.entries.size;
    }
  }

  node(ino: number): Inode {
    const node = this.inodes.get(ino);
    if (node === undefined) fail(Errno.BADF);
    return node;
  }

  dir(ino: number): DirNode {
    const node = this.node(ino);
    if (node.kind !== 'dir') fail(Errno.NOTDIR);
    return node;
  }

  file(ino: number): FileNode {
    const node = this.node(ino);
    if (node.kind !== 'file') fail(Errno.ISDIR);
    return node;
  }

  private add(node: Inode): number {
    if (this.inodes.size >= MAX_INODES) fail(Errno.NOSPC);
    const ino = this.nextIno++;
    this.inodes.set(ino, node);
    return ino;
  }

  /** A new directory that is its own parent: a preopen's root. */
  root(): number {
    const ino = this.add(newDir(0, this.now()));
    (this.inodes.get(ino) as DirNode).parent = ino;
    return ino;
  }

  /**
   * Follow `path` from the directory `start`. The walk may not leave
   * `start` ("..": NOTCAPABLE) nor be absolute, as WASI's capability model
   * asks; every component but the last must be an existing directory.
   */
  lookup(start: number, path: string): Lookup {
    if (path === '') fail(Errno.NOENT);
    if (path.startsWith('/')) fail(Errno.NOTCAPABLE);
    if (path.includes('\0')) fail(Errno.INVAL); // a C string cannot hold it, and a saved name may not
    if (utf8.encode(path).length > MAX_PATH_BYTES) fail(Errno.NAMETOOLONG);
    const parts = path.split('/').filter((p) => p !== '');
    const stack = [start];
    for (const part of parts.slice(0, -1)) this.step(stack, part);
    const last = parts[parts.length - 1];
    const mustBeDir = path.endsWith('/');
    if (last === '.' || last === '..') {
      this.step(stack, last);
      return { parent: stack[stack.length - 1], name: null, ino: stack[stack.length - 1], mustBeDir };
    }
    if (utf8.encode(last).length > MAX_NAME_BYTES) fail(Errno.NAMETOOLONG);
    const parent = stack[stack.length - 1];
    return { parent, name: last, ino: this.dir(parent).entries.get(last), mustBeDir };
  }

  private step(stack: number[], part: string): void {
    if (part === '.') return;
    if (part === '..') {
      if (stack.length === 1) fail(Errno.NOTCAPABLE);
      stack.pop();
      return;
    }
    if (utf8.encode(part).length > MAX_NAME_BYTES) fail(Errno.NAMETOOLONG);
    const ino = this.dir(stack[stack.length - 1]).entries.get(part);
    if (ino === undefined) fail(Errno.NOENT);
    if (this.node(ino).kind !== 'dir') fail(Errno.NOTDIR);
    stack.push(ino);
  }

  /** The node `at` names, or NOENT; NOTDIR if the path ended in "/" and it is a file. */
  existing(at: Lookup): number {
    if (at.ino === undefined) fail(Errno.NOENT);
    if (at.mustBeDir && this.node(at.ino).kind !== 'dir') fail(Errno.NOTDIR);
    return at.ino;
  }

  /** The directory new names go into: NOENT once it was removed (an fd may still have it). */
  private liveDir(ino: number): DirNode {
    const dir = this.dir(ino);
    if (dir.nlink === 0) fail(Errno.NOENT);
    if (this.names >= MAX_NAMES) fail(Errno.NOSPC);
    return dir;
  }

  createFile(at: Lookup): number {
    if (at.name === null || at.ino !== undefined) fail(Errno.EXIST);
    if (at.mustBeDir) fail(Errno.ISDIR);
    this.liveDir(at.parent);
    return this.enter(at.parent, at.name, this.add(newFile(this.now())));
  }

  createDir(at: Lookup): number {
    if (at.name === null || at.ino !== undefined) fail(Errno.EXIST);
    this.liveDir(at.parent);
    return this.enter(at.parent, at.name, this.add(newDir(at.parent, this.now())));
  }

  private enter(parent: number, name: string, ino: number): number {
    const dir = this.dir(parent);
    if (this.names >= MAX_NAMES) fail(Errno.NOSPC);
    dir.entries.set(name, ino);
    this.names++;
    dir.mtim = dir.ctim = this.now();
    return ino;
  }

  /** Take `name` out of `parent`; the node goes when nothing names it and no fd has it. */
  private remove(parent: number, name: string): void {
    const dir = this.dir(parent);
    const ino = dir.entries.get(name)!;
    dir.entries.delete(name);
    this.names--;
    dir.mtim = dir.ctim = this.now();
    const node = this.node(ino);
    if (node.kind === 'dir') {
      node.nlink = 0;
      node.parent = ino; // a removed directory is its own parent: ".." stays inside it, and nothing leads up from it
    } else {
      node.nlink--;
    }
    node.ctim = this.now();
    this.release(ino);
  }

  /** Drop `ino` if it has no name and no fd: called after an unlink and after fd_close. */
  release(ino: number): void {
    const node = this.inodes.get(ino);
    if (node === undefined || node.nlink > 0 || this.isOpen(ino)) return;
    if (node.kind === 'file') this.usedBytes -= node.size;
    this.inodes.delete(ino);
  }

  unlinkFile(at: Lookup): void {
    const ino = this.existing(at);
    if (at.name === null || this.node(ino).kind === 'dir') fail(Errno.ISDIR);
    this.remove(at.parent, at.name);
  }

  removeDir(at: Lookup): void {
    const dir = this.dir(this.existing(at));
    if (at.name === null) fail(Errno.INVAL);
    if (dir.entries.size > 0) fail(Errno.NOTEMPTY);
    this.remove(at.parent, at.name);
  }

  /** A hard link: files only (a directory has one name). */
  link(from: Lookup, to: Lookup): void {
    const ino = this.existing(from);
    const node = this.node(ino);
    if (node.kind === 'dir') fail(Errno.PERM);
    if (to.name === null || to.ino !== undefined) fail(Errno.EXIST);
    if (to.mustBeDir) fail(Errno.NOTDIR);
    this.liveDir(to.parent);
    node.nlink++;
    node.ctim = this.now();
    this.enter(to.parent, to.name, ino);
  }

  /** rename(2): replaces a file by a file, or a directory by an empty one; never moves a directory into itself. */
  rename(from: Lookup, to: Lookup): void {
    const ino = this.existing(from);
    if (from.name === null || to.name === null) fail(Errno.INVAL);
    const node = this.node(ino);
    if (to.ino === ino) return;
    this.liveDir(to.parent);
    if (node.kind === 'dir') {
      if (this.isWithin(to.parent, ino)) fail(Errno.INVAL);
      if (to.ino !== undefined && this.dir(to.ino).entries.size > 0) fail(Errno.NOTEMPTY);
    } else {
      if (to.mustBeDir || from.mustBeDir) fail(Errno.NOTDIR);
      if (to.ino !== undefined && this.node(to.ino).kind === 'dir') fail(Errno.ISDIR);
    }
    if (to.ino !== undefined) this.remove(to.parent, to.name);
    const source = this.dir(from.parent);
    source.entries.delete(from.name);
    this.names--;
    source.mtim = source.ctim = this.now();
    this.enter(to.parent, to.name, ino);
    if (node.kind === 'dir') node.parent = to.parent;
    node.ctim = this.now();
  }

  /** Whether directory `ino` is `ancestor` or lies below it. */
  private isWithin(ino: number, ancestor: number): boolean {
    for (let at = ino; ; at = this.dir(at).parent) {
      if (at === ancestor) return true;
      if (this.dir(at).parent === at) return false;
    }
  }

  /** Up to `length` bytes of the file from `offset` (fewer at its end). */
  read(ino: number, offset: number, length: number): Uint8Array {
    const file = this.file(ino);
    if (offset >= file.size) return new Uint8Array(0);
    return file.data.slice(offset, Math.min(file.size, offset + length));
  }

  /** Write `data` at `offset`, growing the file (a gap reads as zeros). */
  write(ino: number, offset: number, data: Uint8Array): void {
    const file = this.file(ino);
    const end = offset + data.length;
    if (end > file.size) this.resize(file, end);
    file.data.set(data, offset);
    file.mtim = file.ctim = this.now();
  }

  /** Set the file's size: truncate, or extend with zeros. */
  setSize(ino: number, size: number): void {
    const file = this.file(ino);
    this.resize(file, size);
    file.mtim = file.ctim = this.now();
  }

  private resize(file: FileNode, size: number): void {
    if (this.usedBytes - file.size + size > MAX_FS_BYTES) fail(Errno.NOSPC);
    if (size > file.data.length) {
      const grown = new Uint8Array(Math.min(MAX_FS_BYTES, Math.max(size, file.data.length * 2, 256)));
      grown.set(file.data.subarray(0, file.size));
      file.data = grown;
    } else if (size < file.size) {
      file.data.fill(0, size, file.size);
    }
    this.usedBytes += size - file.size;
    file.size = size;
  }
}
