/** Deterministic 32-bit generators: the whole state is one number. */

/** One step of xorshift32 (Marsaglia); never returns 0 for a non-zero state. */
export function xorshift32(state: number): number {
  let x = state | 0;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** A well-mixed 32-bit hash of a 32-bit value (lowbias32 finaliser). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A non-zero seed derived from any number. */
export function seedFrom(n: number): number {
  return mix32(n ^ 0x9e3779b9) || 1;
}
