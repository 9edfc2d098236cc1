/**
 * The programs' own generator and hash (guests/common.h), in BigInt, so
 * that the tests compute what a program must print independently of it.
 */
const MASK = (1n << 64n) - 1n;

/** splitmix64, as prng_next() in guests/common.h. */
export class SplitMix64 {
  constructor(private state: bigint) {}

  next(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }

  /** next() % n, as a number. */
  below(n: number): number {
    return Number(this.next() % BigInt(n));
  }
}

export const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;

/** FNV-1a 64 over `bytes`, continuing from `h`. */
export function fnv1a64(h: bigint, bytes: Uint8Array): bigint {
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV64_PRIME) & MASK;
  return h;
}

/** FNV-1a 64 over the 8 little-endian bytes of `v` (a negative v as two's complement). */
export function fnv1a64U64(h: bigint, v: bigint | number): bigint {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return fnv1a64(h, bytes);
}

/** 16 lower-case hex digits, as printf's %016" PRIx64 ". */
export const hex64 = (v: bigint): string => v.toString(16).padStart(16, '0');

/** Wrap to 64 bits unsigned. */
export const u64 = (v: bigint): bigint => v & MASK;
