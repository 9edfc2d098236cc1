/**
 * The packet codecs on one core (src/wire/compression.ts): for each codec
 * and level, on packets of 128 pages (512 KiB) of random, text-like, sweep
 * and mixed pages (test/wire/page-samples.ts): the ratio (raw bytes per
 * byte sent; a packet that does not shrink by 10 % is sent raw, as the
 * channel threads do), and compress and decompress speeds in raw MB/s per
 * second of CPU time (the figure the `auto` rule takes) and of wall time.
 * Not run by the tests.
 *
 *   node dist/bench/compression.js     (about a minute; median (min-max) of 3 runs)
 */
import { fmt, summarize } from '../src/bench/stats.js';
import { type CodecMethod, MAX_PACKET_BYTES, type PacketCodec, compressionUnavailable, makeCodec } from '../src/wire/compression.js';
import { type SampleKind, samplePages } from '../test/wire/page-samples.js';

const PACKETS = 32; // 16 MiB per data kind
const RUNS = 3;
const KINDS: readonly SampleKind[] = ['random', 'text', 'sweep', 'mixed'];
const CONFIGS: readonly { method: CodecMethod; level?: number }[] = [
  { method: 'lz4' },
  { method: 'zstd', level: 1 }, { method: 'zstd', level: 3 }, { method: 'zstd', level: 9 },
  { method: 'zlib', level: 1 }, { method: 'zlib', level: 6 },
];

/** CPU seconds (user + system) of this process, and wall seconds, spent in `fn`. */
function measure(fn: () => void): { cpu: number; wall: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1e6, wall: (performance.now() - t0) / 1e3 };
}

/** `fn` (which handles `bytes` raw bytes) once to warm up, then RUNS times: MB/s per CPU second and per wall second. */
function speeds(fn: () => void, bytes: number): string {
  fn();
  const runs = Array.from({ length: RUNS }, () => measure(fn));
  const cpu = summarize(runs.map((m) => bytes / m.cpu / 1e6));
  const wall = summarize(runs.map((m) => bytes / m.wall / 1e6));
  return `${fmt(cpu, 0)} cpu, ${wall.median.toFixed(0)} wall`;
}

function packetsOf(kind: SampleKind): Uint8Array[] {
  const all = samplePages(kind, (PACKETS * MAX_PACKET_BYTES) / 4096, 7);
  return Array.from({ length: PACKETS }, (_, i) => all.subarray(i * MAX_PACKET_BYTES, (i + 1) * MAX_PACKET_BYTES));
}

function row(codec: PacketCodec, label: string, kind: SampleKind, packets: Uint8Array[]): string {
  // Copied at once: a codec's result may be a view of its buffer, valid until its next compress.
  const frames = packets.map((p) => {
    const f = codec.compress(p);
    return f === null ? null : Uint8Array.from(f);
  });
  const sent = frames.reduce((n, f) => n + (f?.length ?? MAX_PACKET_BYTES), 0);
  const raw = packets.length * MAX_PACKET_BYTES;
  const compressed = frames.filter((f) => f !== null).length;
  const comp = speeds(() => { for (const p of packets) codec.compress(p); }, raw);
  const dst = new Uint8Array(MAX_PACKET_BYTES);
  const decompressedBytes = compressed * MAX_PACKET_BYTES;
  const decomp = compressed === 0 ? 'n/a (every packet sent raw)' : speeds(() => { for (const f of frames) if (f !== null) codec.decompress(f, dst); }, decompressedBytes);
  return `${label.padEnd(7)} ${kind.padEnd(6)} ratio ${(raw / sent).toFixed(2).padStart(6)} (${compressed}/${packets.length} packets compressed)  compress MB/s: ${comp}  decompress MB/s: ${decomp}`;
}

const data = new Map(KINDS.map((k) => [k, packetsOf(k)] as const));
console.log(`# packet codecs, one core, packets of ${MAX_PACKET_BYTES / 1024} KiB; MB/s of raw data: median (min-max) of ${RUNS} runs per CPU second, then the wall-time median`);
for (const { method, level } of CONFIGS) {
  const why = compressionUnavailable(method);
  if (why !== null) {
    console.log(`${method}: skipped: ${why}`);
    continue;
  }
  const codec = makeCodec(method, method === 'zstd' ? { zstdLevel: level } : { zlibLevel: level });
  const label = level === undefined ? method : `${method}-${level}`;
  for (const kind of KINDS) console.log(row(codec, label, kind, data.get(kind)!));
}
