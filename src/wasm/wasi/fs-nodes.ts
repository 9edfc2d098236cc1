/**
 * The in-memory filesystem's nodes: regular files (their bytes) and
 * directories (their entries, in creation order, which is the order
 * fd_readdir lists them in). Plain data, saved as it is (wasi-state-codec.ts).
 *
 * Not here: symbolic links (path_symlink is ENOTSUP, and nothing is a
 * link), devices, sockets, permissions and owners.
 */

export interface Times {
  /** ns since 1970 (the host's wall clock when the file changed). */
  atim: bigint;
  mtim: bigint;
  ctim: bigint;
}

export interface FileNode extends Times {
  readonly kind: 'file';
  /** Names that refer to it; 0 once unlinked (it lives on while an fd has it open). */
  nlink: number;
  /** Storage; `size` bytes of it are the file, the rest is spare capacity (zero). */
  data: Uint8Array;
  size: number;
}

export interface DirNode extends Times {
  readonly kind: 'dir';
  /** 1 while it has a name (or is a preopen's root), 0 once removed. */
  nlink: number;
  /** The directory that names it; a preopen's root is its own parent. */
  parent: number;
  readonly entries: Map<string, number>;
}

export type Inode = FileNode | DirNode;

/** Longest name of one entry, bytes of UTF-8 (NAME_MAX). */
export const MAX_NAME_BYTES = 255;
/** Longest path a call may pass (PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

export function newFile(now: bigint, data = new Uint8Array(0)): FileNode {
  return { kind: 'file', nlink: 1, data, size: data.length, atim: now, mtim: now, ctim: now };
}

export function newDir(parent: number, now: bigint): DirNode {
  return { kind: 'dir', nlink: 1, parent, entries: new Map(), atim: now, mtim: now, ctim: now };
}

/** The file's bytes (a view of its storage). */
export function contents(file: FileNode): Uint8Array {
  return file.data.subarray(0, file.size);
}
