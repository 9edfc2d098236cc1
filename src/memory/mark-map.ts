/**
 * A byte map of marks: one byte per page of a RAM block, somewhere in the
 * block's reserved tail, that a writer may set by a plain store of a
 * non-zero byte instead of `Atomics.or` on the dirty log's producer bitmap
 * (a plain byte store measured ~10x cheaper than a locked OR per store in
 * store-dense WebAssembly; DESIGN.md section 7).
 *
 *   map byte p        page p: 0 = not marked since the last harvest
 *   map word k        Int32 over bytes 4k..4k+3 (pages 4k..4k+3)
 *   producer word w   covers pages 32w..32w+31 = map words 8w..8w+7
 *
 * The dirty log harvests the map under its lock, one producer word at a
 * time (dirty-log.ts, which argues the ordering: a plain load of a map
 * word, skip if 0, else `Atomics.exchange(word, 0)`). When the block's page
 * count is not a multiple of 4, the last 1-3 bytes are exchanged one by
 * one: a word there would also cover bytes past the map, which are not
 * ours to clear. So no byte outside the map is ever read as a mark or
 * cleared, and no page past the block's end is ever reported.
 */
import { InvalidArgumentError } from '../errors.js';

/** Pages per map word, and map words per producer word. */
const PAGES_PER_MAP_WORD = 4;
const MAP_WORDS_PER_WORD = 8;

/**
 * Whether the plain-store mark map's ordering argument holds on this CPU
 * (dirty-log.ts): it needs stores to become visible in program order, as
 * on x86-64. On a weakly ordered CPU (arm64) the writer would need a
 * release fence between its data and its mark, which the WebAssembly
 * rewriter does not emit: a guest that marks through the map must refuse
 * to start there.
 */
export function markMapSupported(): boolean {
  return process.arch === 'x64';
}

export class MarkMap {
  /** The whole words of the map (pages 0 .. 4 x words.length). */
  private readonly words: Int32Array;
  /** The last pages % 4 bytes, exchanged one by one (a whole word would reach past the map). */
  private readonly tail: Uint8Array;
  private readonly tailFirstPage: number;

  constructor(buffer: SharedArrayBuffer, byteOffset: number, readonly pages: number) {
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0 || byteOffset + pages > buffer.byteLength) {
      throw new InvalidArgumentError(
        `mark map: ${pages} bytes at offset ${byteOffset} must be 4-byte aligned and inside the memory's ${buffer.byteLength} bytes`);
    }
    const whole = Math.floor(pages / PAGES_PER_MAP_WORD);
    this.words = new Int32Array(buffer, byteOffset, whole);
    this.tailFirstPage = whole * PAGES_PER_MAP_WORD;
    this.tail = new Uint8Array(buffer, byteOffset + this.tailFirstPage, pages - this.tailFirstPage);
  }

  /**
   * Take (read and clear) the marks of producer word `w` (pages 32w..32w+31)
   * as its 32 bits. Caller holds the dirty log's lock; see dirty-log.ts for
   * why the plain load before each exchange loses nothing.
   */
  take(w: number): number {
    const words = this.words;
    const from = w * MAP_WORDS_PER_WORD;
    const to = Math.min(from + MAP_WORDS_PER_WORD, words.length);
    let bits = 0;
    for (let k = from; k < to; k++) {
      if (words[k] === 0) continue;
      const m = Atomics.exchange(words, k, 0);
      if (m !== 0) bits |= nonZeroBytes(m) << ((k - from) * PAGES_PER_MAP_WORD);
    }
    if (this.tail.length > 0 && (this.tailFirstPage >>> 5) === w) bits |= this.takeTail();
    return bits;
  }

  /** Whether producer word `w`'s pages may hold a mark (plain loads: a mark missed now stays for later). */
  any(w: number): boolean {
    const words = this.words;
    const from = w * MAP_WORDS_PER_WORD;
    const to = Math.min(from + MAP_WORDS_PER_WORD, words.length);
    for (let k = from; k < to; k++) if (words[k] !== 0) return true;
    if ((this.tailFirstPage >>> 5) !== w) return false;
    for (let i = 0; i < this.tail.length; i++) if (this.tail[i] !== 0) return true;
    return false;
  }

  /** The tail bytes' marks, at their bit positions within their producer word. */
  private takeTail(): number {
    let bits = 0;
    for (let i = 0; i < this.tail.length; i++) {
      if (this.tail[i] !== 0 && Atomics.exchange(this.tail, i, 0) !== 0) bits |= 1 << ((this.tailFirstPage + i) & 31);
    }
    return bits;
  }
}

/** 4 bits: bit j set when byte j (little-endian) of `m` is non-zero. */
function nonZeroBytes(m: number): number {
  return ((m & 0xff) !== 0 ? 1 : 0) | ((m & 0xff00) !== 0 ? 2 : 0) | ((m & 0xff0000) !== 0 ? 4 : 0) | ((m & 0xff000000) !== 0 ? 8 : 0);
}
