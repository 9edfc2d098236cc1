/**
 * WASI preview 1 as the program sees it: error numbers, flags, rights and
 * the byte layout of the structures the calls read and write (from
 * wasi-libc's wasi/api.h, whose _Static_asserts pin every offset below).
 * All integers are little-endian.
 *
 *   iovec / ciovec   8 bytes   buf u32 @0, buf_len u32 @4
 *   fdstat          24 bytes   filetype u8 @0, flags u16 @2, rights_base u64 @8, rights_inheriting u64 @16
 *   filestat        64 bytes   dev u64 @0, ino u64 @8, filetype u8 @16, nlink u64 @24, size u64 @32,
 *                              atim u64 @40, mtim u64 @48, ctim u64 @56
 *   dirent          24 bytes   d_next u64 @0, d_ino u64 @8, d_namlen u32 @16, d_type u8 @20; the name follows
 *   prestat          8 bytes   tag u8 @0 (0 = directory), pr_name_len u32 @4
 *   subscription    48 bytes   userdata u64 @0, tag u8 @8; clock: id u32 @16, timeout u64 @24,
 *                              precision u64 @32, flags u16 @40; fd_read/fd_write: fd u32 @16
 *   event           32 bytes   userdata u64 @0, error u16 @8, type u8 @10, nbytes u64 @16, flags u16 @24
 */

/** Error numbers (__WASI_ERRNO_*): the ones this layer returns. */
export const Errno = {
  SUCCESS: 0, ACCES: 2, AGAIN: 6, BADF: 8, EXIST: 20, FAULT: 21, FBIG: 22, ILSEQ: 25, INVAL: 28, IO: 29, ISDIR: 31,
  MFILE: 33, NAMETOOLONG: 37, NOENT: 44, NOSPC: 51, NOSYS: 52, NOTDIR: 54, NOTEMPTY: 55, NOTSOCK: 57, NOTSUP: 58,
  OVERFLOW: 61, PERM: 63, SPIPE: 70, XDEV: 75, NOTCAPABLE: 76,
} as const;

export const Filetype = { UNKNOWN: 0, CHARACTER_DEVICE: 2, DIRECTORY: 3, REGULAR_FILE: 4 } as const;

export const Clock = { REALTIME: 0, MONOTONIC: 1, PROCESS_CPUTIME: 2, THREAD_CPUTIME: 3 } as const;

export const Whence = { SET: 0, CUR: 1, END: 2 } as const;

export const FdFlags = { APPEND: 1, DSYNC: 2, NONBLOCK: 4, RSYNC: 8, SYNC: 16 } as const;
export const ALL_FD_FLAGS = 31;

export const OFlags = { CREAT: 1, DIRECTORY: 2, EXCL: 4, TRUNC: 8 } as const;

export const FstFlags = { ATIM: 1, ATIM_NOW: 2, MTIM: 4, MTIM_NOW: 8 } as const;

export const EventType = { CLOCK: 0, FD_READ: 1, FD_WRITE: 2 } as const;
export const SUBCLOCK_ABSTIME = 1;

/** Rights (__WASI_RIGHTS_*): bit numbers 0-29. Only FD_READ and FD_WRITE are enforced (see wasi-device.ts). */
export const Rights = {
  FD_READ: 1 << 1, FD_SEEK: 1 << 2, FD_FDSTAT_SET_FLAGS: 1 << 3, FD_TELL: 1 << 5, FD_WRITE: 1 << 6,
  FD_READDIR: 1 << 14, FD_FILESTAT_GET: 1 << 21, POLL_FD_READWRITE: 1 << 27,
} as const;
/** Every right preview 1 defines. */
export const ALL_RIGHTS = 2 ** 30 - 1;
/** What stdin, stdout and stderr carry: no seek or tell, so wasi-libc's isatty() calls them terminals. */
export const STDIN_RIGHTS = Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE;
export const STDOUT_RIGHTS = Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE;

export const IOVEC_BYTES = 8;
export const FDSTAT_BYTES = 24;
export const FILESTAT_BYTES = 64;
export const DIRENT_BYTES = 24;
export const PRESTAT_BYTES = 8;
export const SUBSCRIPTION_BYTES = 48;
export const EVENT_BYTES = 32;

/** fd_advise's advice runs from NORMAL (0) to NOREUSE (5). */
export const MAX_ADVICE = 5;
