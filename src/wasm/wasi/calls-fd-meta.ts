/**
 * The calls about a descriptor itself rather than its bytes: closing and
 * renumbering, its flags and rights, its file's status, times and size,
 * the preopened directories' names, and the hints (sync, advise, allocate).
 */
import { type CallContext, type WasiCall, safeU64, u64 } from './call-context.js';
import { filetypeOf } from './calls-fd-io.js';
import type { FdEntry } from './fd-table.js';
import type { Inode } from './fs-nodes.js';
import { record } from './memory-access.js';
import { ALL_FD_FLAGS, Errno, FDSTAT_BYTES, FILESTAT_BYTES, Filetype, FstFlags, MAX_ADVICE, PRESTAT_BYTES, Rights } from './wasi-abi.js';
import { fail } from './wasi-errno.js';

/** A filestat record of `node` (`ino` its number); null: a standard stream (a character device). */
export function filestat(ino: number, node: Inode | null): Uint8Array {
  return record(FILESTAT_BYTES, (v) => {
    v.setBigUint64(8, BigInt(ino), true);
    v.setUint8(16, node === null ? Filetype.CHARACTER_DEVICE : filetypeOf(node));
    v.setBigUint64(24, BigInt(node?.nlink ?? 1), true);
    v.setBigUint64(32, BigInt(node?.kind === 'file' ? node.size : 0), true);
    v.setBigUint64(40, node?.atim ?? 0n, true);
    v.setBigUint64(48, node?.mtim ?? 0n, true);
    v.setBigUint64(56, node?.ctim ?? 0n, true);
  });
}

/** fd_filestat_set_times and path_filestat_set_times: each time given, "now", or left; both for one time is INVAL. */
export function setTimes(ctx: CallContext, node: Inode, atim: bigint, mtim: bigint, flags: number): number {
  if ((flags & FstFlags.ATIM && flags & FstFlags.ATIM_NOW) || (flags & FstFlags.MTIM && flags & FstFlags.MTIM_NOW)) fail(Errno.INVAL);
  const now = ctx.wallNowNs();
  if (flags & FstFlags.ATIM) node.atim = u64(atim);
  if (flags & FstFlags.ATIM_NOW) node.atim = now;
  if (flags & FstFlags.MTIM) node.mtim = u64(mtim);
  if (flags & FstFlags.MTIM_NOW) node.mtim = now;
  node.ctim = now;
  return Errno.SUCCESS;
}

const nodeOf = (ctx: CallContext, entry: FdEntry): Inode | null =>
  entry.kind === 'file' || entry.kind === 'dir' ? ctx.state.fs.node(entry.ino) : null;

/** The descriptor of an open file (not a stream: SPIPE; not a directory: ISDIR). */
function fileEntry(ctx: CallContext, fd: number, right = 0): FdEntry {
  const entry = right === 0 ? ctx.state.fds.get(fd) : ctx.state.fds.withRight(fd, right);
  if (entry.kind === 'dir') fail(Errno.ISDIR);
  if (entry.kind !== 'file') fail(Errno.SPIPE);
  return entry;
}

const release = (ctx: CallContext, entry: FdEntry | null): void => {
  if (entry !== null && (entry.kind === 'file' || entry.kind === 'dir')) ctx.state.fs.release(entry.ino);
};

function fdstat(ctx: CallContext, fd: number, out: number): number {
  const entry = ctx.state.fds.get(fd);
  const node = nodeOf(ctx, entry);
  ctx.mem.store(out, record(FDSTAT_BYTES, (v) => {
    v.setUint8(0, node === null ? Filetype.CHARACTER_DEVICE : filetypeOf(node));
    v.setUint16(2, entry.fdflags, true);
    v.setBigUint64(8, BigInt(entry.rightsBase), true);
    v.setBigUint64(16, BigInt(entry.rightsInheriting), true);
  }));
  return Errno.SUCCESS;
}

function setRights(ctx: CallContext, fd: number, base: bigint, inheriting: bigint): number {
  const entry = ctx.state.fds.get(fd);
  if ((u64(base) & ~BigInt(entry.rightsBase)) !== 0n || (u64(inheriting) & ~BigInt(entry.rightsInheriting)) !== 0n) fail(Errno.NOTCAPABLE);
  entry.rightsBase = Number(u64(base));
  entry.rightsInheriting = Number(u64(inheriting));
  return Errno.SUCCESS;
}

function prestatName(ctx: CallContext, fd: number, path: number, length: number): number {
  const name = ctx.state.fds.get(fd).preopen ?? fail(Errno.BADF);
  const bytes = new TextEncoder().encode(name);
  if (length < bytes.length) fail(Errno.NAMETOOLONG);
  ctx.mem.store(path, bytes);
  return Errno.SUCCESS;
}

/** fd_sync, fd_datasync: the files are memory, always "on disk"; a stream cannot be synced (INVAL, as fsync on a terminal). */
function sync(ctx: CallContext, fd: number): number {
  const entry = ctx.state.fds.get(fd);
  return entry.kind === 'file' || entry.kind === 'dir' ? Errno.SUCCESS : Errno.INVAL;
}

export const fdMetaCalls: Record<string, WasiCall> = {
  fd_close: (ctx, fd: number) => {
    release(ctx, ctx.state.fds.close(fd));
    return Errno.SUCCESS;
  },
  fd_renumber: (ctx, from: number, to: number) => {
    release(ctx, ctx.state.fds.renumber(from, to));
    return Errno.SUCCESS;
  },
  fd_fdstat_get: (ctx, fd: number, out: number) => fdstat(ctx, fd, out),
  fd_fdstat_set_flags: (ctx, fd: number, flags: number) => {
    const entry = ctx.state.fds.get(fd);
    if ((flags & ~ALL_FD_FLAGS) !== 0) fail(Errno.INVAL);
    entry.fdflags = flags;
    return Errno.SUCCESS;
  },
  fd_fdstat_set_rights: (ctx, fd: number, base: bigint, inheriting: bigint) => setRights(ctx, fd, base, inheriting),
  fd_filestat_get: (ctx, fd: number, out: number) => {
    const entry = ctx.state.fds.get(fd);
    ctx.mem.store(out, filestat(entry.ino, nodeOf(ctx, entry)));
    return Errno.SUCCESS;
  },
  fd_filestat_set_size: (ctx, fd: number, size: bigint) => {
    const entry = fileEntry(ctx, fd, Rights.FD_WRITE);
    ctx.state.fs.setSize(entry.ino, safeU64(size, Errno.FBIG));
    return Errno.SUCCESS;
  },
  fd_filestat_set_times: (ctx, fd: number, atim: bigint, mtim: bigint, flags: number) => {
    const node = nodeOf(ctx, ctx.state.fds.get(fd));
    return node === null ? Errno.SUCCESS : setTimes(ctx, node, atim, mtim, flags);
  },
  fd_prestat_get: (ctx, fd: number, out: number) => {
    const name = ctx.state.fds.get(fd).preopen ?? fail(Errno.BADF);
    ctx.mem.store(out, record(PRESTAT_BYTES, (v) => v.setUint32(4, new TextEncoder().encode(name).length, true)));
    return Errno.SUCCESS;
  },
  fd_prestat_dir_name: (ctx, fd: number, path: number, length: number) => prestatName(ctx, fd, path, length),
  fd_sync: (ctx, fd: number) => sync(ctx, fd),
  fd_datasync: (ctx, fd: number) => sync(ctx, fd),
  fd_advise: (ctx, fd: number, _offset: bigint, _length: bigint, advice: number) => {
    fileEntry(ctx, fd);
    return advice > MAX_ADVICE ? Errno.INVAL : Errno.SUCCESS;
  },
  fd_allocate: (ctx, fd: number, offset: bigint, length: bigint) => {
    const entry = fileEntry(ctx, fd, Rights.FD_WRITE);
    const end = safeU64(offset, Errno.FBIG) + safeU64(length, Errno.FBIG);
    const fs = ctx.state.fs;
    if (end > fs.file(entry.ino).size) fs.setSize(entry.ino, end);
    return Errno.SUCCESS;
  },
};
