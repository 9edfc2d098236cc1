/**
 * The WASI device's calls, called directly over one page of memory with
 * the fake host: bad pointers, the standard streams, the errno of what
 * ferry does not support, the filesystem's edges, and the configuration's
 * checks (clocks, sleeps and random: wasi-clocks.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WASI } from 'node:wasi';
import { WASI_FUNCTIONS, WasiDevice, WasiExit } from '../../src/wasm/wasi/wasi-device.js';
import { Errno, OFlags, Rights } from '../../src/wasm/wasi/wasi-abi.js';
import { fileLimit } from '../waits.js';
import { Direct } from './wasi-harness.js';

fileLimit(import.meta.url, 60_000);

const READ = BigInt(Rights.FD_READ | Rights.FD_SEEK | Rights.FD_TELL | Rights.FD_READDIR);
const RW = READ | BigInt(Rights.FD_WRITE);
const data = (files: Record<string, string> = {}) =>
  [{ guestPath: '/data', files: new Map(Object.entries(files).map(([k, v]) => [k, new TextEncoder().encode(v)])) }];

test('WASI_FUNCTIONS names the 46 calls of preview 1 (node:wasi\'s set) and imports() provides each', () => {
  const node = Object.keys((new WASI({ version: 'preview1' }).getImportObject() as Record<string, object>).wasi_snapshot_preview1).sort();
  assert.deepEqual([...WASI_FUNCTIONS].sort(), node);
  const imports = Direct.fresh().device.imports(Direct.fresh().host);
  assert.deepEqual(Object.keys(imports).sort(), node);
  for (const name of node) assert.equal(typeof imports[name], 'function', name);
});

test('a pointer or length outside memory is EFAULT, with nothing written, no output, no input or random drawn', () => {
  const d = Direct.fresh({ stdin: new TextEncoder().encode('abc'), preopens: data({ f: 'x' }) });
  const before = d.bytes.slice();
  d.iovecs(100, [[65530, 100]]);
  d.iovecs(200, [[300, 2]]);
  d.put(300, 'f');
  const calls: [string, () => number][] = [
    ['args_sizes_get', () => d.wasi.args_sizes_get(65534, 0)],
    ['args_get (a pointer at 2^32 - 16, passed as a negative i32)', () => d.wasi.args_get(-16, 400)],
    ['environ_sizes_get', () => d.wasi.environ_sizes_get(0, 65536)],
    ['clock_time_get', () => d.wasi.clock_time_get(1, 0n, 65535)],
    ['fd_write (an iovec past the end)', () => d.wasi.fd_write(1, 100, 1, 500)],
    ['fd_write (nwritten past the end)', () => d.wasi.fd_write(1, 200, 1, 65534)],
    ['fd_read (nread past the end)', () => d.wasi.fd_read(0, 200, 1, 70000)],
    ['random_get', () => d.wasi.random_get(65000, 1000)],
    ['path_open (the path)', () => d.wasi.path_open(3, 0, 65530, 100, 0, READ, 0n, 0, 500)],
    ['path_open (the fd out)', () => d.wasi.path_open(3, 0, 300, 1, 0, READ, 0n, 0, 65534)],
    ['poll_oneoff', () => d.wasi.poll_oneoff(65520, 0, 1, 100)],
    ['fd_prestat_dir_name', () => d.wasi.fd_prestat_dir_name(3, 65535, 10)],
    ['fd_filestat_get', () => d.wasi.fd_filestat_get(3, 65500)],
    ['fd_readdir', () => d.wasi.fd_readdir(3, 65000, 1000, 0n, 0)],
  ];
  const snapshot = d.bytes.slice();
  for (const [name, call] of calls) assert.equal(call(), Errno.FAULT, name);
  assert.deepEqual(d.bytes, snapshot, 'no byte changed');
  assert.deepEqual(d.spy.spans, [], 'no write reported');
  assert.equal(d.host.writes, 0, 'nothing went to stdout');
  assert.equal(d.wasi.fd_read(0, 200, 1, 500), 0);
  assert.equal(d.text(300, 2), 'ab', 'stdin was not consumed by the failed read');
  const fresh = Direct.fresh({ stdin: new TextEncoder().encode('abc'), preopens: data({ f: 'x' }) });
  d.wasi.random_get(1000, 16);
  fresh.wasi.random_get(1000, 16);
  assert.deepEqual(d.bytes.subarray(1000, 1016), fresh.bytes.subarray(1000, 1016), 'the failed random_get drew nothing');
  assert.notDeepEqual(before.subarray(1000, 1016), d.bytes.subarray(1000, 1016));
});

test('memory above what the program may address (its memory.size, below ferry\'s region) is EFAULT too', () => {
  const d = Direct.fresh();
  const limited = new Direct(WasiDevice.fresh({ args: ['p'], env: [], seed: 1n }));
  Object.assign(limited.spy, { addressable: () => 32768 });
  assert.equal(limited.wasi.clock_time_get(1, 0n, 40000), Errno.FAULT);
  assert.equal(limited.wasi.random_get(32760, 16), Errno.FAULT);
  assert.equal(limited.wasi.clock_time_get(1, 0n, 32760), 0);
  assert.equal(d.wasi.clock_time_get(1, 0n, 40000), 0, 'without the limit, the whole buffer');
});

test('fd_write to stdout and stderr: one synchronous host.write per call with all iovecs; stdin reads the configured bytes', () => {
  const d = Direct.fresh({ stdin: new TextEncoder().encode('hello, stdin') });
  d.put(300, 'abc');
  d.put(310, 'defg');
  d.iovecs(100, [[300, 3], [310, 4], [320, 0]]);
  assert.equal(d.wasi.fd_write(1, 100, 3, 500), 0);
  assert.equal(d.u32(500), 7);
  assert.equal(d.host.writes, 1);
  assert.equal(d.wasi.fd_write(2, 100, 1, 500), 0);
  assert.equal(d.host.out(), 'abcdefg');
  assert.equal(d.host.stderr.toString(), 'abc');
  assert.equal(d.wasi.fd_write(0, 100, 1, 500), Errno.BADF, 'stdin is not writable');
  d.iovecs(100, [[600, 5], [700, 3]]);
  assert.equal(d.wasi.fd_read(0, 100, 2, 500), 0);
  assert.equal(d.u32(500), 8);
  assert.equal(d.text(600, 5) + d.text(700, 3), 'hello, s');
  const moved = new Direct(WasiDevice.restore(d.device.save()));
  moved.iovecs(100, [[600, 100]]);
  assert.equal(moved.wasi.fd_read(0, 100, 1, 500), 0);
  assert.equal(moved.text(600, moved.u32(500)), 'tdin', 'the position moved with the device');
  assert.equal(moved.wasi.fd_read(0, 100, 1, 500), 0);
  assert.equal(moved.u32(500), 0, 'then EOF');
  assert.equal(moved.wasi.fd_read(1, 100, 1, 500), Errno.BADF, 'stdout is not readable');
});

test('what ferry does not support answers with its errno: sockets, signals, symlinks; proc_exit ends the run', () => {
  const d = Direct.fresh({ preopens: data({ f: 'x' }) });
  for (const call of ['sock_accept', 'sock_recv', 'sock_send', 'sock_shutdown']) {
    assert.equal(d.wasi[call](1, 0, 0, 0, 0, 0), Errno.NOTSOCK, call);
    assert.equal(d.wasi[call](9, 0, 0, 0, 0, 0), Errno.BADF, `${call} on a closed descriptor`);
  }
  assert.equal(d.wasi.proc_raise(6), Errno.NOSYS);
  assert.equal(d.wasi.path_symlink(300, d.put(300, 'f'), 3, 400, d.put(400, 'g')), Errno.NOTSUP);
  assert.equal(d.wasi.path_readlink(3, 300, 1, 500, 10, 600), Errno.INVAL, 'f is not a link');
  assert.equal(d.wasi.path_readlink(3, 400, 1, 500, 10, 600), Errno.NOENT);
  assert.equal(d.wasi.sched_yield(), 0);
  assert.equal(d.device.exitCode, null);
  assert.throws(() => d.wasi.proc_exit(-1), (err: unknown) => err instanceof WasiExit && err.code === 4294967295);
  assert.equal(d.device.exitCode, 4294967295, 'the code as the u32 it is');
});

test('paths stay inside their directory; rights, kinds and names give POSIX\'s errno', () => {
  const d = Direct.fresh({ preopens: data({ 'a/f': 'file' }) });
  const open = (path: string, oflags = 0, rights = READ) => {
    const len = d.put(1000, path);
    return d.wasi.path_open(3, 0, 1000, len, oflags, rights, 0n, 0, 1500);
  };
  assert.equal(open('../x'), Errno.NOTCAPABLE);
  assert.equal(open('a/../../x'), Errno.NOTCAPABLE);
  assert.equal(open('/etc/passwd'), Errno.NOTCAPABLE);
  assert.equal(open('a/../a/f'), 0);
  assert.equal(open('a/f/'), Errno.NOTDIR);
  assert.equal(open('a/f/g'), Errno.NOTDIR);
  assert.equal(open('missing'), Errno.NOENT);
  assert.equal(open('a', 0, RW), Errno.ISDIR, 'a directory is not opened for writing');
  assert.equal(open('a/f', OFlags.DIRECTORY), Errno.NOTDIR);
  assert.equal(open('a/f', OFlags.CREAT | OFlags.EXCL, RW), Errno.EXIST);
  assert.equal(open(`${'n'.repeat(256)}`, OFlags.CREAT, RW), Errno.NAMETOOLONG);
  d.put(1000, new Uint8Array([0xff, 0xfe]));
  assert.equal(d.wasi.path_open(3, 0, 1000, 2, 0, READ, 0n, 0, 1500), Errno.ILSEQ);
  const readOnly = d.open('a/f', 0, READ);
  d.iovecs(100, [[300, 4]]);
  assert.equal(d.wasi.fd_write(readOnly, 100, 1, 500), Errno.BADF, 'written through a read-only descriptor');
  assert.equal(d.wasi.fd_read(readOnly, 100, 1, 500), 0);
  assert.equal(d.text(300, 4), 'file');
  assert.equal(d.wasi.fd_fdstat_set_rights(readOnly, RW, 0n), Errno.NOTCAPABLE, 'rights are never added');
  assert.equal(d.wasi.fd_seek(1, 0n, 0, 500), Errno.SPIPE);
  assert.equal(d.wasi.fd_seek(readOnly, -5n, 0, 500), Errno.INVAL);
  assert.equal(d.wasi.fd_prestat_get(readOnly, 500), Errno.BADF, 'not a preopen');
  assert.equal(d.wasi.fd_prestat_get(3, 500), 0);
  assert.equal(d.u32(504), 5);
  assert.equal(d.wasi.fd_prestat_dir_name(3, 600, 4), Errno.NAMETOOLONG);
  assert.equal(d.wasi.fd_prestat_dir_name(3, 600, 5), 0);
  assert.equal(d.text(600, 5), '/data');
  assert.equal(d.wasi.path_remove_directory(3, 1000, d.put(1000, 'a')), Errno.NOTEMPTY);
  assert.equal(d.wasi.path_unlink_file(3, 1000, d.put(1000, 'a')), Errno.ISDIR);
  assert.equal(d.wasi.path_create_directory(3, 1000, d.put(1000, 'a/f')), Errno.EXIST);
  assert.equal(d.wasi.path_rename(3, 1000, d.put(1000, 'a'), 3, 1100, d.put(1100, 'a/sub')), Errno.INVAL, 'into itself');
  assert.equal(d.wasi.fd_close(readOnly), 0);
  assert.equal(d.wasi.fd_close(readOnly), Errno.BADF);
});

test('an unlinked file lives while a descriptor has it, across a save and restore, and goes at its last close', () => {
  const d = Direct.fresh({ preopens: data({ tmp: 'scratch data' }) });
  const fd = d.open('tmp', 0, RW);
  assert.equal(d.wasi.path_unlink_file(3, 1000, d.put(1000, 'tmp')), 0);
  assert.equal(d.wasi.path_filestat_get(3, 0, 1000, 3, 2000), Errno.NOENT);
  const moved = new Direct(WasiDevice.restore(d.device.save()));
  moved.iovecs(100, [[300, 20]]);
  assert.equal(moved.wasi.fd_read(fd, 100, 1, 500), 0);
  assert.equal(moved.text(300, moved.u32(500)), 'scratch data');
  assert.equal(moved.wasi.fd_filestat_get(fd, 2000), 0);
  assert.equal(moved.u64(2024), 0n, 'nlink 0');
  const withNode = moved.device.save().length;
  assert.equal(moved.wasi.fd_close(fd), 0);
  assert.ok(moved.device.save().length < withNode - 12, 'the file\'s bytes are gone from the state');
});

test('fd_readdir fills a small buffer to its end and goes on from the last entry\'s cookie', () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 5; i++) files[`file-${i}`] = `${i}`;
  const d = Direct.fresh({ preopens: data(files) });
  const names: string[] = [];
  let cookie = 0n;
  for (let round = 0; round < 20; round++) {
    assert.equal(d.wasi.fd_readdir(3, 1000, 40, cookie, 2000), 0);
    const used = d.u32(2000);
    let at = 1000;
    while (at + 24 <= 1000 + used) {
      const len = d.u32(at + 16);
      if (at + 24 + len > 1000 + used) break; // cut: ask again from this entry
      names.push(d.text(at + 24, len));
      cookie = d.u64(at);
      at += 24 + len;
    }
    if (used < 40) break;
  }
  assert.deepEqual(names, ['.', '..', 'file-0', 'file-1', 'file-2', 'file-3', 'file-4']);
  assert.equal(d.wasi.fd_readdir(1, 1000, 40, 0n, 2000), Errno.NOTDIR);
});

test('the files together are capped at 8 MiB: a write past it is ENOSPC and changes nothing', () => {
  const d = Direct.fresh({ preopens: data() });
  const fd = d.open('big', OFlags.CREAT, RW);
  assert.equal(d.wasi.fd_allocate(fd, 0n, BigInt(8 * 1024 * 1024 - 10)), 0);
  d.iovecs(100, [[300, 20]]);
  assert.equal(d.wasi.fd_seek(fd, 0n, 2, 500), 0);
  assert.equal(d.wasi.fd_write(fd, 100, 1, 500), Errno.NOSPC);
  assert.equal(d.wasi.fd_filestat_get(fd, 2000), 0);
  assert.equal(d.u64(2032), BigInt(8 * 1024 * 1024 - 10));
  d.iovecs(100, [[300, 10]]);
  assert.equal(d.wasi.fd_write(fd, 100, 1, 500), 0, 'up to the cap');
  assert.equal(d.wasi.fd_filestat_set_size(fd, 1n << 40n), Errno.NOSPC);
  assert.equal(d.wasi.fd_filestat_set_size(fd, 1n << 60n), Errno.FBIG, 'a size past 2^53');
});

test('a bad configuration is refused with a message naming what is wrong', () => {
  const base = { args: ['p'], env: [], seed: 1n };
  const cases: [object, RegExp][] = [
    [{ args: ['a\0b'] }, /args\[0\] contains a NUL character/],
    [{ env: ['NOEQUALS'] }, /env\[0\] "NOEQUALS" is not KEY=VALUE/],
    [{ seed: -1n }, /seed must be a bigint from 0 to 2\^64 - 1, got -1/],
    [{ seed: 1n << 64n }, /seed must be a bigint/],
    [{ stdin: new Uint8Array(4 * 1024 * 1024 + 1) }, /stdin of 4194305 bytes is more than 4194304/],
    [{ preopens: [{ guestPath: '/d', files: new Map([['../x', new Uint8Array(1)]]) }] }, /file path "\.\.\/x" must be relative/],
    [{ preopens: [{ guestPath: '/d', files: new Map([['a', new Uint8Array(1)], ['a/b', new Uint8Array(1)]]) }] }, /file "a\/b" cannot be made/],
    [{ preopens: [{ guestPath: '', files: new Map() }] }, /needs a name/],
    [{ preopens: [{ guestPath: '/d', files: new Map([['big', new Uint8Array(8 * 1024 * 1024 + 1)]]) }] }, /more than the filesystem's 8388608/],
  ];
  for (const [change, message] of cases) {
    assert.throws(() => WasiDevice.fresh({ ...base, ...change }), (err: Error & { code?: string }) =>
      err.code === 'ERR_FERRY_INVALID_ARGUMENT' && message.test(err.message), String(message));
  }
});

test('fd_write takes at most 16 MiB per call (a short write, as Linux caps one) and at most 1024 iovecs', () => {
  const d = new Direct(WasiDevice.fresh({ args: [], env: [], seed: 1n }));
  d.memory.grow(300); // about 19 MiB
  d.iovecs(100, Array.from({ length: 3 }, () => [4096, 8 * 1024 * 1024] as [number, number]));
  assert.equal(d.wasi.fd_write(1, 100, 3, 500), 0);
  assert.equal(d.u32(500), 16 * 1024 * 1024, 'two iovecs of three');
  assert.equal(d.host.writes, 1);
  assert.equal(d.host.stdout.length, 16 * 1024 * 1024);
  assert.equal(d.wasi.fd_write(1, 100, 1025, 500), Errno.INVAL);
  assert.equal(d.wasi.fd_read(0, 100, 1025, 500), Errno.INVAL);
});
