/**
 * random_get's generator: xoshiro256** (Blackman and Vigna, 2018), its four
 * 64-bit words seeded from the 64-bit seed by splitmix64 as its authors
 * recommend. The words are device state: a program migrated between two
 * draws draws at the destination what it would have drawn unmigrated, and
 * the seed (`--seed`) is what "deterministic" means for invariant 8.
 *
 * Each 64-bit output gives 8 bytes, little-endian; a request of n bytes
 * takes ceil(n / 8) outputs and drops the unused tail, so the sequence
 * depends only on the seed and the lengths asked for. Not for secrets: the
 * state is in the migration stream.
 */

const MASK = (1n << 64n) - 1n;

export type RandomState = readonly [bigint, bigint, bigint, bigint];

const rotl = (x: bigint, k: bigint): bigint => ((x << k) | (x >> (64n - k))) & MASK;

/** The generator's state for `seed` (0 to 2^64 - 1): four splitmix64 outputs. */
export function seedRandom(seed: bigint): RandomState {
  let x = BigInt.asUintN(64, seed);
  const next = (): bigint => {
    x = (x + 0x9e3779b97f4a7c15n) & MASK;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  };
  return [next(), next(), next(), next()];
}

export class SeededRandom {
  private s0: bigint;
  private s1: bigint;
  private s2: bigint;
  private s3: bigint;

  constructor(state: RandomState) {
    [this.s0, this.s1, this.s2, this.s3] = state;
  }

  get state(): RandomState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** The next 64-bit output. */
  next(): bigint {
    const result = (rotl((this.s1 * 5n) & MASK, 7n) * 9n) & MASK;
    const t = (this.s1 << 17n) & MASK;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 45n);
    return result;
  }

  /** `length` bytes: ceil(length / 8) outputs, little-endian, the last one cut. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(Math.ceil(length / 8) * 8);
    const view = new DataView(out.buffer);
    for (let at = 0; at < out.length; at += 8) view.setBigUint64(at, this.next(), true);
    return out.subarray(0, length);
  }
}
