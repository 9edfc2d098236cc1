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
