/**
 * A plain, byte-at-a-time model of QEMU's XBZRLE encoder
 * (migration/xbzrle.c xbzrle_encode_buffer, its word loops left out: they
 * change the speed, not the runs), to hold src/wire/xbzrle.ts to the same
 * bytes and the same overflows. Allocates freely; for tests only.
 */
function uleb(v: number): number[] {
  return v < 0x80 ? [v] : [(v & 0x7f) | 0x80, v >> 7];
}

/** The delta of `now` against `old`, or -1 (overflow past `limit`), or 0 bytes (equal pages: QEMU returns 0). */
export function referenceEncode(old: Uint8Array, now: Uint8Array, limit: number): number[] | -1 {
  const n = now.length;
  const out: number[] = [];
  let i = 0;
  while (i < n) {
    if (out.length + 2 > limit) return -1;
    let z = 0;
    while (i < n && old[i] === now[i]) { z++; i++; }
    if (z === n) return [];
    if (i === n) return out;
    out.push(...uleb(z));
    if (out.length + 2 > limit) return -1;
    const start = i;
    while (i < n && old[i] !== now[i]) i++;
    out.push(...uleb(i - start));
    if (out.length + (i - start) > limit) return -1;
    for (let k = start; k < i; k++) out.push(now[k]);
  }
  return out;
}

/**
 * QEMU's decoder (xbzrle_decode_buffer with uleb128_decode_small), byte for
 * byte: applies `delta` to a copy of `page` and returns it, or null where
 * QEMU returns -1. Its `(slen - i) < 2` checks come first, as there.
 */
export function referenceDecode(delta: Uint8Array, page: Uint8Array): Uint8Array | null {
  const dst = page.slice();
  const slen = delta.length;
  const dlen = page.length;
  const read = (at: number): [number, number] => {
    if (!(delta[at] & 0x80)) return [delta[at], 1];
    if (delta[at + 1] & 0x80) return [-1, 0];
    return [(delta[at] & 0x7f) | (delta[at + 1] << 7), 2];
  };
  let i = 0;
  let d = 0;
  while (i < slen) {
    if (slen - i < 2) return null;
    let [count, ret] = read(i);
    if (count < 0 || (i > 0 && count === 0)) return null;
    i += ret;
    d += count;
    if (d > dlen) return null;
    if (slen - i < 2) return null;
    [count, ret] = read(i);
    if (count <= 0) return null;
    i += ret;
    if (d + count > dlen || i + count > slen) return null;
    dst.set(delta.subarray(i, i + count), d);
    d += count;
    i += count;
  }
  return dst;
}
