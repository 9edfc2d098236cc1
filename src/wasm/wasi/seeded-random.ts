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

/**
 * The generator, computed on 32-bit halves (hi, lo) of its four words: the
 * same outputs as the 64-bit definition (the tests compare with the
 * reference sequence), about 30 times faster than with bigints, so that
 * random_get of a megabyte stays a few milliseconds of the vCPU's time.
 */
export class SeededRandom {
  /** s0 hi, s0 lo, s1 hi, s1 lo, s2 hi, s2 lo, s3 hi, s3 lo. */
  private readonly s = new Uint32Array(8);

  constructor(state: RandomState) {
    state.forEach((word, i) => {
      this.s[2 * i] = Number(word >> 32n);
      this.s[2 * i + 1] = Number(word & 0xffffffffn);
    });
  }

  get state(): RandomState {
    const w = (i: number) => (BigInt(this.s[2 * i]) << 32n) | BigInt(this.s[2 * i + 1]);
    return [w(0), w(1), w(2), w(3)];
  }

  /** The next output into `view` at `at`, little-endian. */
  private step(view: DataView, at: number): void {
    const s = this.s;
    // result = rotl(s1 * 5, 7) * 9
    let lo = s[3] * 5;
    let hi = (s[2] * 5 + Math.floor(lo / 0x100000000)) >>> 0;
    lo >>>= 0;
    const rhi = ((hi << 7) | (lo >>> 25)) >>> 0;
    const rlo = ((lo << 7) | (hi >>> 25)) >>> 0;
    lo = rlo * 9;
    hi = (rhi * 9 + Math.floor(lo / 0x100000000)) >>> 0;
    view.setUint32(at, lo >>> 0, true);
    view.setUint32(at + 4, hi, true);
    // t = s1 << 17; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 45)
    const thi = ((s[2] << 17) | (s[3] >>> 15)) >>> 0;
    const tlo = (s[3] << 17) >>> 0;
    s[4] ^= s[0]; s[5] ^= s[1];
    s[6] ^= s[2]; s[7] ^= s[3];
    s[2] ^= s[4]; s[3] ^= s[5];
    s[0] ^= s[6]; s[1] ^= s[7];
    s[4] ^= thi; s[5] ^= tlo;
    const [h, l] = [s[7], s[6]]; // rotl by 32 swaps the halves, then rotl by 13
    s[6] = (h << 13) | (l >>> 19);
    s[7] = (l << 13) | (h >>> 19);
  }

  /** The next 64-bit output. */
  next(): bigint {
    const view = new DataView(new ArrayBuffer(8));
    this.step(view, 0);
    return view.getBigUint64(0, true);
  }

  /** `length` bytes: ceil(length / 8) outputs, little-endian, the last one cut. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(Math.ceil(length / 8) * 8);
    const view = new DataView(out.buffer);
    for (let at = 0; at < out.length; at += 8) this.step(view, at);
    return out.subarray(0, length);
  }
}
