/**
 * The calls that move bytes through a descriptor: fd_read, fd_write,
 * fd_pread, fd_pwrite, fd_seek, fd_tell, fd_readdir.
 *
 * Every result pointer is checked before the call has any effect, so a
 * call that returns EFAULT changed nothing: no input consumed, no output
 * written. fd_write to stdout or stderr hands the bytes of all its iovecs
 * to `host.write` in one synchronous call and is never re-run (a re-run
 * after a migration would repeat output); stdin reads the configured bytes
 * and never blocks, so no fd_read is ever unwound.
 */
import { type CallContext, type WasiCall, safeU64, u64 } from './call-context.js';
import type { FdEntry } from './fd-table.js';
import type { Iovec } from './memory-access.js';
import { DIRENT_BYTES, Errno, FdFlags, Filetype, Rights, Whence } from './wasi-abi.js';
import { fail } from './wasi-errno.js';
import type { Inode } from './fs-nodes.js';

export const filetypeOf = (node: Inode): number => (node.kind === 'dir' ? Filetype.DIRECTORY : Filetype.REGULAR_FILE);

/** Where fd_read and fd_write of `entry` find bytes: a file, or stdin; a stream has no position (SPIPE for p-calls). */
function seekable(entry: FdEntry): void {
  if (entry.kind === 'dir') fail(Errno.ISDIR);
  if (entry.kind !== 'file') fail(Errno.SPIPE);
}

/**
 * Bytes one fd_write takes at most: more is a short write (the count says
 * how much), which libc's loops continue, as Linux caps a write at 2 GiB.
 * It bounds the copy a program can make the host allocate (1024 iovecs of
 * the whole memory each would be terabytes).
 */
export const MAX_WRITE_BYTES = 16 * 1024 * 1024;

function gather(ctx: CallContext, iovs: readonly Iovec[]): Uint8Array {
  const total = Math.min(MAX_WRITE_BYTES, iovs.reduce((n, v) => n + v.len, 0));
  const out = new Uint8Array(total);
  let at = 0;
  for (const v of iovs) {
    const length = Math.min(v.len, total - at);
    out.set(ctx.mem.read(v.buf, length), at);
    at += length;
  }
  return out;
}

function scatter(ctx: CallContext, iovs: readonly Iovec[], data: Uint8Array): void {
  let at = 0;
  for (const v of iovs) {
    if (at >= data.length) break;
    const piece = data.subarray(at, at + v.len);
    ctx.mem.store(v.buf, piece);
    at += piece.length;
  }
}

/** The bytes a read of `length` at `offset` returns: from stdin or a file. */
function source(ctx: CallContext, entry: FdEntry, offset: number, length: number): Uint8Array {
  if (entry.kind === 'stdin') return ctx.state.stdin.slice(offset, offset + length);
  seekable(entry);
  return ctx.state.fs.read(entry.ino, offset, length);
}

function read(ctx: CallContext, fd: number, iovsPtr: number, count: number, offset: bigint | null, resultPtr: number): number {
  const entry = ctx.state.fds.withRight(fd, Rights.FD_READ);
  if (offset !== null) seekable(entry);
  const iovs = ctx.mem.iovecs(iovsPtr, count);
  ctx.mem.check(resultPtr, 4);
  const length = iovs.reduce((n, v) => n + v.len, 0);
  const data = source(ctx, entry, offset === null ? entry.offset : safeU64(offset, Errno.INVAL), length);
  scatter(ctx, iovs, data);
  if (offset === null) entry.offset += data.length;
  ctx.mem.storeU32(resultPtr, data.length);
  return Errno.SUCCESS;
}

function write(ctx: CallContext, fd: number, iovsPtr: number, count: number, offset: bigint | null, resultPtr: number): number {
  const entry = ctx.state.fds.withRight(fd, Rights.FD_WRITE);
  if (offset !== null || entry.kind === 'dir') seekable(entry);
  const data = gather(ctx, ctx.mem.iovecs(iovsPtr, count));
  ctx.mem.check(resultPtr, 4);
  if (entry.kind === 'stdout' || entry.kind === 'stderr') {
    if (data.length > 0) ctx.host.write(entry.kind === 'stdout' ? 1 : 2, data);
  } else {
    const fs = ctx.state.fs;
    const append = (entry.fdflags & FdFlags.APPEND) !== 0;
    const at = offset !== null ? safeU64(offset, Errno.INVAL) : append ? fs.file(entry.ino).size : entry.offset;
    fs.write(entry.ino, at, data);
    if (offset === null) entry.offset = at + data.length;
  }
  ctx.mem.storeU32(resultPtr, data.length);
  return Errno.SUCCESS;
}

function seek(ctx: CallContext, fd: number, delta: bigint, whence: number, resultPtr: number): number {
  const entry = ctx.state.fds.get(fd);
  seekable(entry);
  ctx.mem.check(resultPtr, 8);
  const base = whence === Whence.SET ? 0 : whence === Whence.CUR ? entry.offset
    : whence === Whence.END ? ctx.state.fs.file(entry.ino).size : fail(Errno.INVAL);
  const target = BigInt(base) + BigInt.asIntN(64, delta);
  if (target < 0n) fail(Errno.INVAL);
  if (target > BigInt(Number.MAX_SAFE_INTEGER)) fail(Errno.OVERFLOW);
  entry.offset = Number(target);
  ctx.mem.storeU64(resultPtr, target);
  return Errno.SUCCESS;
}

/** One dirent (24 bytes) and its name. */
function dirent(next: number, ino: number, name: string, type: number): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const out = new Uint8Array(DIRENT_BYTES + nameBytes.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(next), true);
  view.setBigUint64(8, BigInt(ino), true);
  view.setUint32(16, nameBytes.length, true);
  view.setUint8(20, type);
  out.set(nameBytes, DIRENT_BYTES);
  return out;
}

/**
 * fd_readdir: ".", "..", then the entries in creation order; entry i's
 * cookie (d_next) is i + 1. The buffer is filled to the last byte, the last
 * entry cut if it does not fit: the caller sees bufused = buf_len and asks
 * again from that entry's cookie, as the specification says.
 */
function readdir(ctx: CallContext, fd: number, buf: number, length: number, cookie: bigint, resultPtr: number): number {
  const entry = ctx.state.fds.get(fd);
  if (entry.kind !== 'dir') fail(Errno.NOTDIR);
  const fs = ctx.state.fs;
  const dir = fs.dir(entry.ino);
  ctx.mem.check(buf, length);
  ctx.mem.check(resultPtr, 4);
  const list: [string, number][] = [['.', entry.ino], ['..', dir.parent], ...dir.entries];
  const out = new Uint8Array(length);
  let at = 0;
  for (let i = Number(u64(cookie) > BigInt(list.length) ? BigInt(list.length) : u64(cookie)); i < list.length && at < length; i++) {
    const [name, ino] = list[i];
    const piece = dirent(i + 1, ino, name, filetypeOf(fs.node(ino))).subarray(0, length - at);
    out.set(piece, at);
    at += piece.length;
  }
  ctx.mem.store(buf, out.subarray(0, at));
  ctx.mem.storeU32(resultPtr, at);
  return Errno.SUCCESS;
}

export const fdIoCalls: Record<string, WasiCall> = {
  fd_read: (ctx, fd: number, iovs: number, count: number, out: number) => read(ctx, fd, iovs, count, null, out),
  fd_pread: (ctx, fd: number, iovs: number, count: number, offset: bigint, out: number) => read(ctx, fd, iovs, count, offset, out),
  fd_write: (ctx, fd: number, iovs: number, count: number, out: number) => write(ctx, fd, iovs, count, null, out),
  fd_pwrite: (ctx, fd: number, iovs: number, count: number, offset: bigint, out: number) => write(ctx, fd, iovs, count, offset, out),
  fd_seek: (ctx, fd: number, delta: bigint, whence: number, out: number) => seek(ctx, fd, delta, whence, out),
  fd_tell: (ctx, fd: number, out: number) => {
    const entry = ctx.state.fds.get(fd);
    seekable(entry);
    ctx.mem.storeU64(out, BigInt(entry.offset));
    return Errno.SUCCESS;
  },
  fd_readdir: (ctx, fd: number, buf: number, length: number, cookie: bigint, out: number) => readdir(ctx, fd, buf, length, cookie, out),
};
