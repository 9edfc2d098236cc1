/**
 * The proof of a channel before its thread (channel-proof.ts,
 * channel-loaders.ts), over loopback TCP with real worker threads: a
 * stranger (no CHANNEL, garbage, another guest's) is dropped, named,
 * without a thread and without failing the migration, and its bytes do not
 * feed the idle watch; two connections claiming the same index: the
 * second is refused, named, without a thread; a proved channel whose
 * thread cannot start, or whose thread dies mid pass, fails the migration
 * naming the channel, and END's barrier with it.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { workerChannelThread, type ChannelThread, type SpawnChannelThread } from '../../src/migration/channel-loader-thread.js';
import { ChannelLoaders } from '../../src/migration/channel-loaders.js';
import type { FromChannelLoader } from '../../src/migration/messages.js';
import { RamLoader } from '../../src/migration/ram-loader.js';
import { decodeHeader, encodeHeader } from '../../src/wire/format.js';
import { RECORD, encodeRecord } from '../../src/wire/records.js';
import { bounded, fileLimit, until } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const UUID = '0f0f0f0f-1111-4222-8333-444444444444';
const MiB = 1024 * 1024;
const header = decodeHeader(encodeHeader({ pageSize: 4096, uuid: UUID, vcpus: 0, blocks: [{ name: 'ram0', pages: 1024 }], channels: 2, compression: null, verify: true }));
const channel = (index: number, uuid = UUID) => encodeRecord(RECORD.Channel, { index, channels: 2, uuid });
const zeroPass = (index: number) => Buffer.concat([
  channel(index), encodeRecord(RECORD.Pass, { pass: 1 }), encodeRecord(RECORD.Zero, { first: index * 512, count: 512 }), encodeRecord(RECORD.Sync, { pass: 1 }),
]);

const open: { close(): void }[] = [];
after(() => { for (const o of open) o.close(); });

interface Rig { loaders: ChannelLoaders; failures: Error[]; dropped: string[]; heard: number[]; spawned: number[] }

/** ChannelLoaders on a loopback server (`spawn`: default real workers, counted); `streams` written whole, each on its own connection, in order. */
async function rig(streams: Buffer[], spawn: SpawnChannelThread = workerChannelThread): Promise<Rig> {
  const r: Rig = { failures: [], dropped: [], heard: [], spawned: [] } as unknown as Rig;
  const counted: SpawnChannelThread = (init) => {
    r.spawned.push(init.index);
    return spawn(init);
  };
  r.loaders = new ChannelLoaders(header, new RamLoader(header), {
    fail: (err) => { r.failures.push(err); }, allConnected: () => {}, onBytes: (n) => { r.heard.push(n); }, dropped: (why) => { r.dropped.push(why); },
  }, 16 * MiB, { spawn: counted });
  const server = net.createServer((s) => r.loaders.add(s));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  open.push(server, { close: () => r.loaders.close(0) });
  const port = (server.address() as net.AddressInfo).port;
  for (const bytes of streams) {
    const c = net.connect(port, '127.0.0.1', () => c.end(bytes));
    c.on('error', () => {});
    open.push({ close: () => c.destroy() });
    await until('the connection taken', () => r.loaders.connected + r.dropped.length + r.failures.length >= streams.indexOf(bytes) + 1, 30_000);
  }
  return r;
}

test('strangers (no CHANNEL, garbage, another guest\'s, too short) are dropped, named, with no thread, their bytes unheard; the migration goes on', async () => {
  const strangers = [
    Buffer.concat([encodeRecord(RECORD.Pass, { pass: 1 }), Buffer.alloc(64)]),
    Buffer.from([0x0b, ...Buffer.alloc(100, 0xee)]),
    channel(0, '11111111-1111-4111-8111-111111111111'),
    channel(0).subarray(0, 20),
  ];
  const r = await rig(strangers);
  try {
    assert.equal(r.dropped.length, 4, r.dropped.join('\n'));
    for (const why of r.dropped) assert.match(why, /^an unproven connection from 127\.0\.0\.1:\d+: /);
    assert.match(r.dropped[2], /CHANNEL: guest 11111111-1111-4111-8111-111111111111, the stream is guest /);
    assert.match(r.dropped[3], /it closed after 20 bytes, before a whole CHANNEL/);
    assert.deepEqual(r.spawned, [], 'no thread for a stranger');
    assert.deepEqual(r.failures, [], 'the migration untouched');
    assert.deepEqual(r.heard, [], 'no stranger\'s byte feeds the idle watch');
    assert.equal(r.loaders.liveThreads, 0);
  } finally {
    r.loaders.close(0);
  }
});

test('two connections claim channel 1: the first is it, the second is refused, named, with no thread; the migration goes on to END', async () => {
  const r = await rig([zeroPass(1), zeroPass(1), zeroPass(0)]);
  try {
    assert.equal(r.dropped.length, 1, r.dropped.join('\n'));
    assert.match(r.dropped[0], /^an unproven connection from 127\.0\.0\.1:\d+: CHANNEL: channel 1 connected twice/);
    assert.deepEqual(r.spawned, [1, 0], 'one thread per proved channel');
    await bounded('END\'s barrier', r.loaders.finish(1), 30_000);
    assert.deepEqual(r.failures, []);
  } finally {
    r.loaders.close(0);
  }
  await bounded('every channel thread to end', r.loaders.exited(), 10_000);
});

test('a proved channel whose thread cannot start fails the migration, naming the channel, before END', async () => {
  const r = await rig([zeroPass(1)], () => { throw new Error('Worker: out of threads'); });
  try {
    await until('the failure', () => r.failures.length > 0, 30_000);
    assert.match(r.failures[0].message, /^channel 1: its loader thread could not start: Worker: out of threads/);
    await assert.rejects(r.loaders.finish(1), /channel 1: its loader thread could not start/);
  } finally {
    r.loaders.close(0);
  }
});

test('a channel\'s thread that dies mid pass fails the migration naming the channel; END\'s barrier rejects', async () => {
  let crash: (() => void) | null = null;
  const dying: SpawnChannelThread = (init) => {
    const t = workerChannelThread(init);
    let exit: ((err: Error | null) => void) | null = null;
    crash = () => { t.terminate(); exit?.(new Error('it exited with code 1')); };
    return { ...t, onExit: (fn) => { exit = fn; t.onExit(() => {}); }, onMessage: (fn) => t.onMessage((m: FromChannelLoader) => { if (m.type !== 'synced') fn(m); }) } satisfies ChannelThread;
  };
  const r = await rig([zeroPass(0)], dying);
  try {
    await until('channel 0 proved', () => r.loaders.connected === 1 && crash !== null, 30_000);
    crash!();
    await until('the failure', () => r.failures.length > 0, 30_000);
    assert.match(r.failures[0].message, /^channel 0: its loader thread failed: it exited with code 1/);
    await assert.rejects(r.loaders.finish(1), /channel 0: its loader thread failed/);
  } finally {
    r.loaders.close(0);
  }
});
