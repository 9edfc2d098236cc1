/**
 * The packet codecs (src/wire/compression.ts): round trips on page-like
 * data, the maxRatio rule, every way decompress refuses (truncated,
 * corrupt, trailing bytes, a frame declaring or yielding more or fewer
 * bytes than the packet), unavailable packages, levels, and a codec
 * running in a worker thread. A codec whose package did not install here
 * is skipped, saying why.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { PAGE_SIZE } from '../../src/memory/page.js';
import {
  COMPRESSION_METHODS, type CodecMethod, MAX_PACKET_BYTES, type NativeLoader, compressionUnavailable, makeCodec,
} from '../../src/wire/compression.js';
import { defaultLoader } from '../../src/wire/native-packages.js';
import { lz4Frame, rleBlocks, zlibZeros, zstdFrame } from './compression-frames.js';
import { SAMPLE_KINDS, samplePages } from './page-samples.js';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 60_000);

const CODECS: readonly CodecMethod[] = ['zlib', 'zstd', 'lz4'];
const skip = (m: CodecMethod) => compressionUnavailable(m) ?? false;

/** A copy (Buffer's `slice` is a view, and a codec's result may be a view of its buffer). */
const copy = (a: Uint8Array) => Uint8Array.from(a);

/** Asserts that `fn` throws a CompressionError whose message matches `message`. */
function refuses(fn: () => void, message: RegExp): void {
  assert.throws(fn, (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_FERRY_COMPRESSION', `a CompressionError, got ${err.stack}`);
    assert.match(err.message, message);
    return true;
  });
}

test('the methods are none, zlib, zstd and lz4; none and zlib need no package', () => {
  assert.deepEqual(COMPRESSION_METHODS, ['none', 'zlib', 'zstd', 'lz4']);
  assert.equal(compressionUnavailable('none'), null);
  assert.equal(compressionUnavailable('zlib'), null);
  assert.match(compressionUnavailable('brotli' as CodecMethod) ?? '', /unknown compression method "brotli" \(one of none, zlib, zstd, lz4\)/);
});

for (const method of CODECS) {
  test(`${method}: page-like packets round-trip (zero, random, text, sweep, mixed; 1, 16, 128 pages)`, { skip: skip(method) }, () => {
    const codec = makeCodec(method);
    for (const kind of SAMPLE_KINDS) {
      for (const pages of [1, 16, 128]) {
        const src = samplePages(kind, pages, pages);
        const frame = codec.compress(src, 1);
        if (frame === null) {
          assert.ok(kind === 'random' || (kind === 'mixed' && pages === 1), `${kind} x ${pages}: only random data may fail to shrink at all`);
          continue;
        }
        const dst = new Uint8Array(src.length).fill(0xee);
        codec.decompress(copy(frame), dst);
        assert.ok(Buffer.from(dst).equals(Buffer.from(src)), `${kind} x ${pages}: the packet decompresses to its pages`);
        if (kind === 'text') assert.ok(frame.length * 2 < src.length, `text shrinks by half at least: ${frame.length} of ${src.length}`);
      }
    }
  });

  test(`${method}: maxRatio: a frame is returned only when smaller than src x maxRatio; random data is sent raw by default`, { skip: skip(method) }, () => {
    const codec = makeCodec(method);
    assert.equal(codec.compress(samplePages('random', 128)), null, 'random pages do not shrink by 10 %');
    const src = samplePages('text', 16);
    const size = codec.compress(src, 1)!.length;
    assert.equal(codec.compress(src, size / src.length), null, 'not smaller than src x maxRatio: null');
    assert.equal(codec.compress(src, (size + 1) / src.length)?.length, size, 'smaller: the frame');
    assert.notEqual(codec.compress(src), null, 'text at the default 0.9');
    assert.throws(() => codec.compress(src, 0), /maxRatio 0 is not in \(0, 1\]/);
    assert.throws(() => codec.compress(new Uint8Array(MAX_PACKET_BYTES + 1)), /over the 524288-byte cap/);
  });

  test(`${method}: truncated data, trailing bytes, a smaller packet and bad sizes are refused, naming what`, { skip: skip(method) }, () => {
    const codec = makeCodec(method);
    const src = samplePages('mixed', 4);
    const frame = copy(codec.compress(src, 1)!);
    const dst = new Uint8Array(src.length);
    for (const cut of [1, 7, frame.length >> 1]) {
      refuses(() => codec.decompress(frame.subarray(0, frame.length - cut), dst), /truncated|corrupt|fewer/);
    }
    refuses(() => codec.decompress(Uint8Array.from([...frame, 0, 0, 0]), dst), /follow|corrupt|too small/);
    refuses(() => codec.decompress(frame, new Uint8Array(src.length + PAGE_SIZE)), /20480|fewer|corrupt/);
    refuses(() => codec.decompress(frame, new Uint8Array(src.length - PAGE_SIZE)), /12288|more than/);
    refuses(() => codec.decompress(frame, new Uint8Array(0)), /declares 0 raw bytes; a packet holds 1 to 524288/);
    refuses(() => codec.decompress(frame, new Uint8Array(MAX_PACKET_BYTES + 1)), /declares 524289 raw bytes/);
    refuses(() => codec.decompress(new Uint8Array(0), dst), /the compressed data is empty/);
    codec.decompress(frame, dst);
    assert.ok(Buffer.from(dst).equals(Buffer.from(src)), 'the codec still works after its refusals');
  });
}

test('zlib: corrupt bytes, a bomb and bytes after the stream are refused', () => {
  const codec = makeCodec('zlib');
  const frame = codec.compress(samplePages('text', 2))!;
  const bad = copy(frame);
  bad[0] = 0x07; // BTYPE 11: reserved
  refuses(() => codec.decompress(bad, new Uint8Array(2 * PAGE_SIZE)), /zlib: corrupt or truncated deflate data: invalid block type/);
  const bomb = zlibZeros(64 << 20);
  assert.ok(bomb.length < 128 * 1024, `64 MiB of zeros deflate to ${bomb.length} bytes`);
  refuses(() => codec.decompress(bomb, new Uint8Array(MAX_PACKET_BYTES)), /inflates to more than the 524288 bytes the packet declares \(a decompression bomb/);
  refuses(() => codec.decompress(Uint8Array.from([...frame, 1]), new Uint8Array(2 * PAGE_SIZE)), /1 bytes follow the end of the deflate stream/);
});

test('zstd: hand-built frames: an honest one decodes; one declaring 1 TiB, one whose blocks pass its size, one without a size, two frames are refused', { skip: skip('zstd') }, () => {
  const codec = makeCodec('zstd');
  const dst = new Uint8Array(MAX_PACKET_BYTES);
  codec.decompress(zstdFrame(dst.length, rleBlocks(dst.length, 0x5a)), dst);
  assert.ok(dst.every((b) => b === 0x5a), 'four RLE blocks of 128 KiB fill the packet');
  refuses(() => codec.decompress(zstdFrame(2 ** 40, rleBlocks(4096)), dst), /the frame declares 1099511627776 bytes, the packet declares 524288 \(more than the packet holds: a decompression bomb/);
  refuses(() => codec.decompress(zstdFrame(dst.length, rleBlocks(64 << 20)), dst), /blocks decode to more than the 524288 bytes it declares \(a decompression bomb/);
  refuses(() => codec.decompress(zstdFrame(dst.length, rleBlocks(dst.length - 1)), dst), /corrupt frame/);
  refuses(() => codec.decompress(zstdFrame(null, rleBlocks(dst.length)), dst), /does not declare its content size/);
  const half = zstdFrame(dst.length / 2, rleBlocks(dst.length / 2));
  refuses(() => codec.decompress(Uint8Array.from([...half, ...half]), dst), /declares 262144 bytes, the packet declares 524288/);
  const reserved = zstdFrame(4096, rleBlocks(4096));
  reserved[reserved.length - 4] |= 0b110; // block type 3: reserved
  refuses(() => codec.decompress(reserved, dst.subarray(0, 4096)), /zstd: (corrupt frame|the frame is truncated or corrupt)/);
  refuses(() => codec.decompress(Uint8Array.from([1, 2, 3, 4, 5, 6]), dst), /not a zstd frame \(first bytes 01020304\)/);
});

test('lz4: a prefix declaring other than the packet is refused before the package is asked (no allocation of 4 GiB); bombs and short blocks are refused', { skip: skip('lz4') }, () => {
  const calls: number[] = [];
  const real = defaultLoader('lz4-napi') as { compressSync: unknown; uncompressSync: (b: Buffer) => Buffer };
  const counting: NativeLoader = () => ({ ...real, uncompressSync: (b: Buffer) => { calls.push(b.length); return real.uncompressSync(b); } });
  const codec = makeCodec('lz4', { loader: counting });
  const dst = new Uint8Array(MAX_PACKET_BYTES);
  codec.decompress(lz4Frame(dst.length, dst.length), dst);
  assert.equal(dst[0], 0x61);
  assert.equal(dst[dst.length - 1], 0x62);
  assert.equal(calls.length, 1);
  refuses(() => codec.decompress(lz4Frame(0xffffffff, 4096), dst), /the block declares 4294967295 bytes, the packet declares 524288 \(more than the packet holds/);
  refuses(() => codec.decompress(lz4Frame(dst.length + 1, dst.length + 1), dst), /declares 524289 bytes/);
  assert.equal(calls.length, 1, 'the package was not called for a prefix that differs from the packet');
  refuses(() => codec.decompress(lz4Frame(dst.length, 64 << 20), dst), /lz4: corrupt or truncated block: .*too small/);
  refuses(() => codec.decompress(lz4Frame(dst.length, dst.length - 100), dst), /the block decodes to 524188 bytes, the packet declares 524288 \(fewer/);
  refuses(() => codec.decompress(Uint8Array.from([0, 16, 0, 0, 0x0f, 0x00, 0x10]), new Uint8Array(4096)), /lz4: corrupt or truncated block/);
  refuses(() => codec.decompress(Uint8Array.from([0, 16, 0, 0]), new Uint8Array(4096)), /4 bytes of data, fewer than a length prefix and one token/);
});

test('a missing or incompatible package makes its method unavailable, saying which package and why', () => {
  const missing: NativeLoader = (name) => {
    throw new Error(`Cannot find module '${name}'\nRequire stack:\n- /somewhere`);
  };
  assert.equal(compressionUnavailable('zstd', missing), "zstd needs the optional package zstd-napi, which did not install: Cannot find module 'zstd-napi/binding'");
  assert.equal(compressionUnavailable('lz4', missing), "lz4 needs the optional package lz4-napi, which did not install: Cannot find module 'lz4-napi'");
  assert.equal(compressionUnavailable('zlib', missing), null);
  assert.throws(() => makeCodec('zstd', { loader: missing }), {
    code: 'ERR_FERRY_INVALID_ARGUMENT',
    message: "multifd-compression zstd cannot be used here: zstd needs the optional package zstd-napi, which did not install: Cannot find module 'zstd-napi/binding'",
  });
  assert.match(compressionUnavailable('lz4', () => ({})) ?? '', /lz4-napi, whose module lz4-napi has no uncompressSync: an incompatible version/);
  assert.equal(makeCodec('zlib', { loader: missing }).method, 'zlib');
});

test('levels: QEMU ranges (zlib 0-9, zstd 0-20, default 1), anything else refused naming the parameter', () => {
  assert.throws(() => makeCodec('zlib', { zlibLevel: 10 }), /multifd-zlib-level 10 is not an integer from 0 to 9/);
  assert.throws(() => makeCodec('zlib', { zlibLevel: 1.5 }), /multifd-zlib-level 1.5 is not an integer/);
  assert.throws(() => makeCodec('zstd', { zstdLevel: -1 }), /multifd-zstd-level -1 is not an integer from 0 to 20/);
  const src = samplePages('text', 32);
  const fast = makeCodec('zlib', { zlibLevel: 1 }).compress(src)!.length;
  const best = makeCodec('zlib', { zlibLevel: 9 }).compress(src)!.length;
  assert.ok(best < fast, `level 9 writes less than level 1 (${best} < ${fast})`);
});

test('every available codec compresses in a worker thread, and the main thread decompresses what it sent', async () => {
  const methods = CODECS.filter((m) => compressionUnavailable(m) === null);
  const url = new URL('../../src/wire/compression.js', import.meta.url).href;
  const samples = new URL('./page-samples.js', import.meta.url).href;
  const code = `
    import { parentPort } from 'node:worker_threads';
    const { makeCodec } = await import(${JSON.stringify(url)});
    const { samplePages } = await import(${JSON.stringify(samples)});
    parentPort.postMessage(${JSON.stringify(methods)}.map((m) => makeCodec(m).compress(samplePages('text', 8))));`;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
  try {
    const [frames] = await bounded('the worker compressing', new Promise<[(Uint8Array | null)[]]>((resolve, reject) => {
      worker.once('message', (m) => resolve([m]));
      worker.once('error', reject);
    }), 30_000);
    assert.equal(frames.length, methods.length);
    methods.forEach((m, i) => {
      const dst = new Uint8Array(8 * PAGE_SIZE);
      makeCodec(m).decompress(frames[i]!, dst);
      assert.ok(Buffer.from(dst).equals(Buffer.from(samplePages('text', 8))), `${m}: the worker's frame decodes to its pages`);
    });
  } finally {
    await worker.terminate();
  }
});
