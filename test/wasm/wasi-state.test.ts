/**
 * The WASI device's saved section: canonical (save(restore(x)) = x),
 * complete (what a program did is there after a restore), and refused with
 * a message naming what is wrong when it is malformed: every frame check,
 * contents that contradict themselves, and any one byte flipped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { ERROR_CLASSES, WasiStateError } from '../../src/errors.js';
import { rebuildError, serializeError } from '../../src/serialized-error.js';
import { MAX_WASI_STATE_BYTES, WasiDevice } from '../../src/wasm/wasi/wasi-device.js';
import { Errno, OFlags, Rights } from '../../src/wasm/wasi/wasi-abi.js';
import { fileLimit } from '../waits.js';
import { Direct } from './wasi-harness.js';

fileLimit(import.meta.url, 60_000);

/** The JSON part of a saved state, as the tests edit it (wasi-state-codec.ts draws its fields). */
// biome-ignore lint/suspicious/noExplicitAny: the tests reach into arbitrary fields to break them
type SavedJson = Record<string, any>;

const RW = BigInt(Rights.FD_READ | Rights.FD_WRITE);

/** A device that did a bit of everything: files, a directory, an unlinked open file, random draws, a pending sleep. */
function busyDevice(): WasiDevice {
  const d = Direct.fresh({
    args: ['prog', 'arg'], env: ['A=1'], stdin: new TextEncoder().encode('input'),
    preopens: [{ guestPath: '/data', files: new Map([['x/y', new TextEncoder().encode('yy')], ['z', new Uint8Array(3)]]) }],
  });
  const fd = d.open('new', OFlags.CREAT, RW);
  d.put(300, 'written');
  d.iovecs(100, [[300, 7]]);
  d.wasi.fd_write(fd, 100, 1, 500);
  d.open('z', 0, RW);
  d.wasi.path_unlink_file(3, 1000, d.put(1000, 'z'));
  d.wasi.path_create_directory(3, 1000, d.put(1000, 'empty'));
  d.wasi.random_get(2000, 5);
  d.iovecs(100, [[300, 2]]);
  d.wasi.fd_read(0, 100, 1, 500);
  d.spy.view.setBigUint64(3000 + 24, 1000n, true);
  d.host.sleepPlan.push({ pausedAtNs: 5n });
  d.wasi.poll_oneoff(3000, 4000, 1, 5000);
  assert.notEqual(d.device.pendingSleepNs, null);
  return d.device;
}

/** `data` with its JSON part changed by `edit` and the frame made right again (sizes, checksum). */
function rewrite(data: Uint8Array, edit: (json: SavedJson) => void): Uint8Array {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const jsonBytes = view.getUint32(8, true);
  const json = JSON.parse(Buffer.from(data.subarray(16, 16 + jsonBytes)).toString());
  edit(json);
  const newJson = Buffer.from(JSON.stringify(json));
  const blob = data.subarray(16 + jsonBytes, data.length - 4);
  const out = Buffer.concat([data.subarray(0, 16), newJson, blob, Buffer.alloc(4)]);
  out.writeUInt32LE(newJson.length, 8);
  out.writeUInt32LE(crc32(out.subarray(0, out.length - 4)) >>> 0, out.length - 4);
  return new Uint8Array(out);
}

function refused(data: Uint8Array, message: RegExp): void {
  assert.throws(() => WasiDevice.restore(data), (err: Error & { code?: string }) => {
    assert.ok(err instanceof WasiStateError, `a WasiStateError, got ${err}`);
    assert.equal(err.code, 'ERR_FERRY_WASI_STATE');
    assert.match(err.message, message);
    return true;
  });
}

test('save(restore(x)) is x, for a fresh device and for one that did a bit of everything', () => {
  for (const device of [WasiDevice.fresh({ args: [], env: [], seed: 0n }), busyDevice()]) {
    const saved = device.save();
    const again = WasiDevice.restore(saved).save();
    assert.deepEqual(again, saved);
    assert.deepEqual(WasiDevice.restore(again).save(), saved);
  }
});

test('a restored device holds what the program left: files, directories, descriptors, input position, random, the pending sleep', () => {
  const device = busyDevice();
  const d = new Direct(WasiDevice.restore(device.save()));
  const [data] = d.device.preopenFiles();
  assert.deepEqual([...data.files.keys()], ['x/y', 'new']);
  assert.equal(Buffer.from(data.files.get('new')!).toString(), 'written');
  assert.equal(d.wasi.path_filestat_get(3, 0, 1000, d.put(1000, 'empty'), 2000), 0);
  assert.equal(d.bytes[2016], 3, 'a directory');
  d.iovecs(100, [[300, 10]]);
  assert.equal(d.wasi.fd_read(0, 100, 1, 500), 0);
  assert.equal(d.text(300, d.u32(500)), 'put');
  assert.equal(d.wasi.fd_read(5, 100, 1, 500), 0, 'the unlinked file, still open as fd 5');
  assert.deepEqual([...d.bytes.subarray(300, 303)], [0, 0, 0]);
  assert.equal(d.device.pendingSleepNs, device.pendingSleepNs);
  const original = new Direct(device);
  original.wasi.random_get(100, 24);
  d.wasi.random_get(100, 24);
  assert.deepEqual(d.bytes.subarray(100, 124), original.bytes.subarray(100, 124), 'the next draws agree');
});

test('a malformed frame is refused naming the check: size, magic, version, sizes, checksum', () => {
  const good = busyDevice().save();
  refused(new Uint8Array(MAX_WASI_STATE_BYTES + 1), /16777217 bytes, more than 16777216/);
  refused(good.subarray(0, 10), /10 bytes, shorter than its 20-byte frame/);
  const magic = good.slice();
  magic[0] = 0x58;
  refused(magic, /magic "XWSI", expected "FWSI"/);
  const version = good.slice();
  version[4] = 9;
  refused(version, /version 9, expected 1/);
  refused(good.subarray(0, good.length - 1), /sizes: JSON \d+ and blob \d+ bytes make \d+, the section has \d+/);
  const flipped = good.slice();
  flipped[40] ^= 1;
  refused(flipped, /checksum 0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}: the section is corrupt/);
});

test('contents that contradict themselves are refused naming the field, even with a right checksum', () => {
  const good = busyDevice().save();
  const cases: [(j: SavedJson) => void, RegExp][] = [
    [(j) => { j.fds[4].ino = 999; }, /fds\[4\]\.ino: 999 is not a file that exists/],
    [(j) => { j.fds[1].kind = 'socket'; }, /fds\[1\]\.kind: "socket" is not one of/],
    [(j) => { j.fds.push({ ...j.fds[0] }); }, /descriptor 0 twice/],
    [(j) => { j.inodes[2].nlink = 2; }, /nlink 2, but 1 names/],
    [(j) => { j.inodes[0].entries.push(['ghost', 77]); }, /entry "ghost" names node 77, which does not exist/],
    [(j) => { j.inodes[0].entries.push(['../up', 2]); }, /bad name "\.\.\/up"/],
    [(j) => { j.random = ['0', '0', '0', '0']; }, /random: not four words, not all zero/],
    [(j) => { j.random[0] = '-1'; }, /random\[0\]: "-1" is not a u64/],
    [(j) => { j.stdin = [1, 4]; }, /stdin: blob range starts at 1, expected 0/],
    [(j) => { j.inodes = j.inodes.filter((n: { kind: string }) => n.kind === 'dir'); }, /bytes that nothing refers to|not a file that exists/],
    [(j) => { j.nextIno = 2; }, /repeated or not below nextIno 2/],
    [(j) => { j.pendingSleep.deadlineNs = 5; }, /pendingSleep\.deadlineNs: 5 is not a u64 in decimal/],
    [(j) => { j.args = 'prog'; }, /args: not an array/],
    [(j) => { j.fds[3].preopen = 7; }, /fds\[3\]\.preopen: not a string/],
    [(j) => { delete j.exitCode; }, /exitCode: undefined is not an integer/],
  ];
  for (const [edit, message] of cases) refused(rewrite(good, edit), message);
  assert.deepEqual(rewrite(good, () => {}), good, 'rewrite alone changes nothing');
});

test('a directory loop and an unreachable node are refused', () => {
  const good = busyDevice().save();
  const byIno = (j: SavedJson, ino: number) => j.inodes.find((n: { ino: number }) => n.ino === ino);
  refused(rewrite(good, (j: SavedJson) => {
    const root = j.inodes[0];
    const [x, empty] = ['x', 'empty'].map((name) => byIno(j, root.entries.find(([n]: [string]) => n === name)[1]));
    root.entries = root.entries.filter(([n]: [string]) => n !== 'x' && n !== 'empty');
    x.entries.push(['empty', empty.ino]);
    empty.entries.push(['x', x.ino]);
    x.parent = empty.ino;
    empty.parent = x.ino;
  }), /inode \d+: its parents form a loop/);
  refused(rewrite(good, (j: SavedJson) => {
    const root = j.inodes[0];
    const x = byIno(j, root.entries.find(([n]: [string]) => n === 'x')[1]);
    root.entries = root.entries.filter(([n]: [string]) => n !== 'x');
    x.entries.push(['self', x.ino]);
    x.parent = x.ino;
  }), /inode \d+: a directory named by \[\d+\] with parent \d+ and nlink 1/);
  refused(rewrite(good, (j: SavedJson) => {
    const root = j.inodes[0];
    const named = root.entries.find(([name]: [string]) => name === 'new');
    root.entries = root.entries.filter((e: unknown) => e !== named);
    j.inodes.find((n: { ino: number }) => n.ino === named[1]).nlink = 0;
    j.fds = j.fds.filter((f: { ino: number }) => f.ino !== named[1]);
  }), /no name and no descriptor: nothing can reach it/);
});

test('any one byte flipped, anywhere, is refused with a WasiStateError (never another exception)', () => {
  const good = busyDevice().save();
  for (let i = 0; i < good.length; i += Math.max(1, Math.floor(good.length / 400))) {
    const bad = good.slice();
    bad[i] ^= 0x10;
    assert.throws(() => WasiDevice.restore(bad), WasiStateError, `byte ${i}`);
  }
});

test('WasiStateError keeps its class and code across a thread boundary', () => {
  assert.equal(ERROR_CLASSES.get('ERR_FERRY_WASI_STATE'), WasiStateError);
  const back = rebuildError(serializeError(new WasiStateError('WASI device state: version 2, expected 1')));
  assert.ok(back instanceof WasiStateError);
  assert.equal(back.message, 'WASI device state: version 2, expected 1');
});

test('a device filled to its caps (nodes, names, file bytes, stdin, descriptors) saves under the section cap and restores', () => {
  const d = Direct.fresh({ stdin: new Uint8Array(4 * 1024 * 1024), preopens: [{ guestPath: '/data', files: new Map() }] });
  const big = d.open('big', OFlags.CREAT, RW);
  assert.equal(d.wasi.fd_allocate(big, 0n, BigInt(8 * 1024 * 1024)), 0);
  let files = 0;
  for (;;) {
    const len = d.put(1000, `${'f'.repeat(200)}-${files}`);
    const errno = d.wasi.path_open(3, 0, 1000, len, OFlags.CREAT, RW, 0n, 0, 1500);
    if (errno !== 0) {
      assert.equal(errno, Errno.NOSPC);
      break;
    }
    d.wasi.fd_close(d.u32(1500));
    files++;
  }
  assert.equal(files, 4096 - 2, 'nodes: the root, big, and the rest');
  let links = 0;
  for (; links < 10_000; links++) {
    const from = d.put(1000, 'big');
    const to = d.put(2000, `${'l'.repeat(200)}-${links}`);
    const errno = d.wasi.path_link(3, 0, 1000, from, 3, 2000, to);
    if (errno !== 0) {
      assert.equal(errno, Errno.NOSPC);
      break;
    }
  }
  assert.equal(links, 8192 - 4095, 'names: the cap less those the files have');
  let opened = 0;
  for (; opened < 2000 && d.wasi.path_open(3, 0, 1000, d.put(1000, 'big'), 0, RW, 0n, 0, 1500) === 0; opened++);
  assert.equal(d.wasi.path_open(3, 0, 1000, 3, 0, RW, 0n, 0, 1500), Errno.MFILE);
  assert.equal(opened, 1024 - 5, 'descriptors: 0-2, the preopen, big, and the rest');
  const saved = d.device.save();
  assert.ok(saved.length < MAX_WASI_STATE_BYTES, `${saved.length} bytes`);
  assert.deepEqual(WasiDevice.restore(saved).save(), saved);
});

test('what a program passes never makes a state that cannot be restored: odd flags, endless deadlines, NUL in names', () => {
  const d = Direct.fresh({ preopens: [{ guestPath: '/data', files: new Map() }] });
  const len = d.put(1000, 'f');
  assert.equal(d.wasi.path_open(3, 0, 1000, len, OFlags.CREAT, RW, 0n, 0x100, 1500), Errno.INVAL, 'fdflags beyond those defined');
  assert.equal(d.wasi.path_open(3, 0, 1000, d.put(1000, 'a\0b'), OFlags.CREAT, RW, 0n, 0, 1500), Errno.INVAL, 'a NUL in a name');
  d.spy.view.setBigUint64(3000 + 16, 1n, true); // clock 1 (monotonic)
  d.spy.view.setBigUint64(3000 + 24, (1n << 64n) - 1n, true); // the longest relative timeout
  d.host.sleepPlan.push({ pausedAtNs: 5n });
  assert.equal(d.wasi.poll_oneoff(3000, 4000, 1, 5000), 0);
  assert.equal(d.device.pendingSleepNs, (1n << 64n) - 1n, 'the deadline stops at 2^64 - 1');
  assert.equal(d.wasi.poll_oneoff(3000, 4000, 4097, 5000), Errno.INVAL, 'more than 4096 subscriptions');
  const restored = WasiDevice.restore(d.device.save());
  assert.equal(restored.pendingSleepNs, (1n << 64n) - 1n);
});
