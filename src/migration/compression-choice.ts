/**
 * `multifd-compression auto` (issue 15): compress only when the link, not
 * the CPU, limits the migration. Two pure rules over what the channel
 * threads measure; the threads call them, the `why` goes to query-migrate.
 *
 * 1. Whether to compress (`chooseCompression`), from:
 *    - the link rate L: bytes/s the link carried (bytes as sent, whatever
 *      they encode), and whether the senders were blocked on the socket
 *      while it was measured (link-bound: L is the link's rate) or busy
 *      (CPU-bound: L is only what they achieved);
 *    - each thread's compression speed c (input bytes per second of CPU
 *      time) and the ratio r (raw bytes per byte sent, QEMU's
 *      `compression-rate`) seen on samples;
 *    - the number of channel threads T (and the cores they share, if fewer).
 *
 *    The arithmetic, in raw (payload) bytes per second:
 *      raw effective rate        = L
 *      compressed effective rate = min(L x r, min(T, cores) x c)
 *    Compression pays when the compressed rate beats the raw one by the
 *    margin: compressed > raw x (1 + 10 %) to turn it on, and it stays on
 *    while compressed >= raw x (1 + 5 %) (hysteresis: a ratio or a speed
 *    that wobbles by a few % from window to window does not flip it each
 *    time). Why 10 %: the ratio is a sample's and may not hold for the next
 *    pages, and compressing takes cores the guest's vCPUs share; a gain
 *    smaller than that is within the measurement's noise. It is what
 *    `auto` may lose against the better fixed choice at the border.
 *
 *    Senders that were busy (not link-bound) are limited by their CPU
 *    already: compressing adds CPU per byte, so it is off whatever the
 *    ratio. While compression is on, senders that keep up with their
 *    compressor no longer wait for the link: the caller then passes the
 *    last link-bound figure (measured before compression, or in a window
 *    where compressing senders still waited), with `linkBound` true.
 *
 *    What it ignores: the destination's decompression (lz4 and zstd
 *    decompress 3-10x faster than they compress, on cores the loader's
 *    memory writes leave idle); a link that got faster while compression
 *    was on and CPU-bound (its figure is the last link-bound one); and the
 *    sender's own cost per byte sent besides compressing (T x c is an upper
 *    bound of what T threads compress and send).
 *
 * 2. How often to probe while compression is off (`probeEvery`): one
 *    packet in N is compressed as a sample, to re-measure the ratio (the
 *    guest's data may change) and the speed. A probe costs B / c of CPU for
 *    a packet of B bytes; sending a packet raw costs B / s, s being the
 *    sender's own speed (raw bytes per second of its CPU time). The probe's
 *    share of the sender's CPU is (B / c) / (N x B / s + B / c); at most
 *    2 % gives N >= 49 x s / c. A probe whose frame shrank enough is sent
 *    compressed (its cost is paid); otherwise raw.
 *
 * 3. With compression on, every packet goes through the codec with
 *    `maxRatio` 0.9 (packet-codec.ts DEFAULT_MAX_RATIO): a packet that
 *    does not shrink by 10 % comes back null and is sent raw, counted in
 *    the ratio as 1 (so random data drives r to 1 and rule 1 off).
 */

/** The gain compression must promise to be turned on, and to stay on. */
export const AUTO_MARGIN_ON = 0.1;
export const AUTO_MARGIN_OFF = 0.05;
/** The most of a sender's CPU that probing may take. */
export const PROBE_CPU_SHARE = 0.02;
/**
 * A sender's speed assumed until one is measured, raw bytes per CPU second:
 * a memory copy here (about 10 GB/s), faster than any sender, so that the
 * probe interval derived from it is the longest one and probing stays
 * under its share whatever the real speed.
 */
export const ASSUMED_SEND_BYTES_PER_CPU_SEC = 10e9;

export interface CompressionChoiceInputs {
  /** Bytes/s the link carried, as sent (compressed or not). */
  readonly linkBytesPerSec: number;
  /** Whether the senders were blocked on the socket while it was measured (true: it is the link's rate). */
  readonly linkBound: boolean;
  /** One thread's compression speed, input bytes per CPU second; 0 when not measured yet. */
  readonly compressBytesPerCpuSec: number;
  /** Raw bytes per byte sent on the samples (3: a third of the size; packets sent raw count as 1); 0 when not measured yet. */
  readonly ratio: number;
  /** Channel threads compressing. */
  readonly threads: number;
  /** Cores those threads can use, when fewer than threads; default threads. */
  readonly cores?: number;
  /** Whether compression is on now (the margin to stay on is smaller than to turn on). */
  readonly compressing?: boolean;
}

export interface CompressionChoice {
  readonly compress: boolean;
  /** The decision in words, with its figures (query-migrate shows it). */
  readonly why: string;
  /** The two effective payload rates compared, bytes/s (0 when not computed). */
  readonly rawBytesPerSec: number;
  readonly compressedBytesPerSec: number;
}

/** Bytes/s as decimal MB/s, for the `why`. */
function mbps(bytesPerSec: number): string {
  return `${(bytesPerSec / 1e6).toFixed(bytesPerSec < 10e6 ? 1 : 0)} MB/s`;
}

export function chooseCompression(i: CompressionChoiceInputs): CompressionChoice {
  const off = (why: string, raw = 0, compressed = 0): CompressionChoice => ({ compress: false, why, rawBytesPerSec: raw, compressedBytesPerSec: compressed });
  if (!(i.ratio > 0) || !(i.compressBytesPerCpuSec > 0)) return off('raw: no compressed sample measured yet');
  if (!(i.linkBytesPerSec > 0)) return off('raw: no link rate measured yet');
  const raw = i.linkBytesPerSec;
  if (!i.linkBound) {
    return off(`raw: the CPU limits, not the link (senders busy, never waiting for the link, at ${mbps(raw)})`, raw);
  }
  const parallel = Math.max(1, Math.min(i.threads, i.cores ?? i.threads));
  const byLink = raw * i.ratio;
  const byCpu = parallel * i.compressBytesPerCpuSec;
  const compressed = Math.min(byLink, byCpu);
  const margin = i.compressing ? AUTO_MARGIN_OFF : AUTO_MARGIN_ON;
  const compress = i.compressing ? compressed >= raw * (1 + margin) : compressed > raw * (1 + margin);
  const figures = `min(link ${mbps(raw)} x ratio ${i.ratio.toFixed(2)}, ${parallel} threads x ${mbps(i.compressBytesPerCpuSec)})`;
  const limit = byLink <= byCpu ? 'the link' : 'compression speed';
  const cmp = i.compressing ? (compress ? '>=' : '<') : (compress ? '>' : '<=');
  const why = `${compress ? 'compress' : 'raw'}: compressed ${mbps(compressed)} = ${figures}, limited by ${limit}, ${cmp} raw ${mbps(raw)} x ${1 + margin}`;
  return { compress, why, rawBytesPerSec: raw, compressedBytesPerSec: compressed };
}

export interface ProbeInputs {
  /** One sender's speed sending raw: raw bytes per second of its CPU time; 0 when not measured yet. */
  readonly sendBytesPerCpuSec: number;
  /** One thread's compression speed, input bytes per CPU second; 0 when not measured yet. */
  readonly compressBytesPerCpuSec: number;
}

export interface ProbeInterval {
  /** Compress one packet in this many (1: every packet) while compression is off. */
  readonly everyPackets: number;
  readonly why: string;
}

export function probeEvery(i: ProbeInputs): ProbeInterval {
  if (!(i.compressBytesPerCpuSec > 0)) return { everyPackets: 1, why: 'probe the next packet: no compression speed measured yet' };
  const send = i.sendBytesPerCpuSec > 0 ? i.sendBytesPerCpuSec : ASSUMED_SEND_BYTES_PER_CPU_SEC;
  const assumed = i.sendBytesPerCpuSec > 0 ? '' : ' (assumed: not measured yet)';
  const n = Math.max(1, Math.ceil((1 / PROBE_CPU_SHARE - 1) * (send / i.compressBytesPerCpuSec)));
  return {
    everyPackets: n,
    why: `probe 1 packet in ${n}: compressing at ${mbps(i.compressBytesPerCpuSec)} against sending at ${mbps(send)}${assumed} keeps probing under ${PROBE_CPU_SHARE * 100} % of a sender's CPU`,
  };
}
