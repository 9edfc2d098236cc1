/**
 * The path_* calls: a path is looked up from a directory descriptor (a
 * preopen or a directory opened below one) and may not leave it
 * (memory-fs.ts). Symbolic links do not exist here: lookups never follow
 * one, path_symlink is NOTSUP and path_readlink finds nothing to read
 * (INVAL on an existing name, as readlink(2) on a non-link).
 */
import { type CallContext, type WasiCall, u64 } from './call-context.js';
import { filestat, setTimes } from './calls-fd-meta.js';
import type { Lookup } from './memory-fs.js';
import { ALL_FD_FLAGS, Errno, FILESTAT_BYTES, OFlags, Rights } from './wasi-abi.js';
import { fail } from './wasi-errno.js';

/** Where `path` (in guest memory) leads from directory descriptor `fd`. */
function at(ctx: CallContext, fd: number, path: number, length: number): Lookup {
  const entry = ctx.state.fds.get(fd);
  if (entry.kind !== 'dir') fail(Errno.NOTDIR);
  return ctx.state.fs.lookup(entry.ino, ctx.mem.string(path, length));
}

/** The node path_open opens: the existing one (checked against the flags), or a new file (CREAT). */
function target(ctx: CallContext, where: Lookup, oflags: number): number {
  const fs = ctx.state.fs;
  if (where.ino === undefined) {
    if ((oflags & OFlags.CREAT) === 0) fail(Errno.NOENT);
    if ((oflags & OFlags.DIRECTORY) !== 0) fail(Errno.INVAL);
    return fs.createFile(where);
  }
  if ((oflags & OFlags.CREAT) !== 0 && (oflags & OFlags.EXCL) !== 0) fail(Errno.EXIST);
  const ino = fs.existing(where);
  if ((oflags & OFlags.DIRECTORY) !== 0) fs.dir(ino);
  return ino;
}

/**
 * path_open. The new descriptor's rights are those asked for, within what
 * the directory passes on (its inheriting rights). A directory cannot be
 * opened for writing or truncated (ISDIR, as open(2)). TRUNC empties a file.
 */
function open(ctx: CallContext, fd: number, path: number, length: number, oflags: number,
  base: bigint, inheriting: bigint, fdflags: number, out: number): number {
  const dir = ctx.state.fds.get(fd);
  if ((fdflags & ~ALL_FD_FLAGS) !== 0) fail(Errno.INVAL);
  ctx.mem.check(out, 4);
  const where = at(ctx, fd, path, length);
  const rightsBase = Number(u64(base) & BigInt(dir.rightsInheriting));
  const node = where.ino === undefined ? undefined : ctx.state.fs.node(where.ino);
  if (node?.kind === 'dir' && ((oflags & OFlags.TRUNC) !== 0 || (rightsBase & Rights.FD_WRITE) !== 0)) fail(Errno.ISDIR);
  const ino = target(ctx, where, oflags);
  const kind = ctx.state.fs.node(ino).kind;
  if (kind === 'file' && (oflags & OFlags.TRUNC) !== 0) ctx.state.fs.setSize(ino, 0);
  const opened = ctx.state.fds.open({
    kind, ino, offset: 0, fdflags, rightsBase, rightsInheriting: Number(u64(inheriting) & BigInt(dir.rightsInheriting)), preopen: null,
  });
  ctx.mem.storeU32(out, opened);
  return Errno.SUCCESS;
}

export const pathCalls: Record<string, WasiCall> = {
  path_open: (ctx, fd: number, _dirflags: number, path: number, length: number, oflags: number,
    base: bigint, inheriting: bigint, fdflags: number, out: number) => open(ctx, fd, path, length, oflags, base, inheriting, fdflags, out),
  path_create_directory: (ctx, fd: number, path: number, length: number) => {
    ctx.state.fs.createDir(at(ctx, fd, path, length));
    return Errno.SUCCESS;
  },
  path_unlink_file: (ctx, fd: number, path: number, length: number) => {
    ctx.state.fs.unlinkFile(at(ctx, fd, path, length));
    return Errno.SUCCESS;
  },
  path_remove_directory: (ctx, fd: number, path: number, length: number) => {
    ctx.state.fs.removeDir(at(ctx, fd, path, length));
    return Errno.SUCCESS;
  },
  path_rename: (ctx, fd: number, oldPath: number, oldLength: number, newFd: number, newPath: number, newLength: number) => {
    ctx.state.fs.rename(at(ctx, fd, oldPath, oldLength), at(ctx, newFd, newPath, newLength));
    return Errno.SUCCESS;
  },
  path_link: (ctx, oldFd: number, _flags: number, oldPath: number, oldLength: number, newFd: number, newPath: number, newLength: number) => {
    ctx.state.fs.link(at(ctx, oldFd, oldPath, oldLength), at(ctx, newFd, newPath, newLength));
    return Errno.SUCCESS;
  },
  path_filestat_get: (ctx, fd: number, _flags: number, path: number, length: number, out: number) => {
    ctx.mem.check(out, FILESTAT_BYTES);
    const ino = ctx.state.fs.existing(at(ctx, fd, path, length));
    ctx.mem.store(out, filestat(ino, ctx.state.fs.node(ino)));
    return Errno.SUCCESS;
  },
  path_filestat_set_times: (ctx, fd: number, _flags: number, path: number, length: number, atim: bigint, mtim: bigint, flags: number) => {
    const ino = ctx.state.fs.existing(at(ctx, fd, path, length));
    return setTimes(ctx, ctx.state.fs.node(ino), atim, mtim, flags);
  },
  path_readlink: (ctx, fd: number, path: number, length: number) => {
    ctx.state.fs.existing(at(ctx, fd, path, length));
    return Errno.INVAL;
  },
  path_symlink: (ctx, _oldPath: number, _oldLength: number, fd: number) => {
    const entry = ctx.state.fds.get(fd);
    return entry.kind === 'dir' ? Errno.NOTSUP : Errno.NOTDIR;
  },
};
