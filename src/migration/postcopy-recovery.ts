/**
 * Post-copy recovery (QEMU's postcopy-paused / migrate-recover / migrate
 * resume), the pieces both sides share. After GO the source holds the only
 * copy of the missing pages, so a broken link must not end the migration:
 * both sides pause (postcopy-paused), neither discards anything, and a new
 * connection continues it.
 *
 *   source (postcopy-paused)                 destination (postcopy-paused)
 *                                             migrate-recover URI: listen (postcopy-recover-setup)
 *   migrate URI resume: connect ───────────▶ accept (postcopy-recover)
 *   header with RESUME (same UUID, geometry) ▶ checked against the migration it holds
 *         ◀──────────────────────────────── READY, RECVBITMAP... (the pages it lacks), RESUMEACK n
 *   unsent := those pages (postcopy-active)   (postcopy-active)
 *         ◀──────────────────────────────── REQUEST (every request still waiting)
 *   PCPAGES... PEND (this connection's count) ▶ ... DONE, as before
 *
 * Why the destination's bitmap and not the source's record of what it
 * sent: bytes in flight at the break are lost (the kernel's buffers on
 * both sides die with the connection), so only the destination knows what
 * arrived. A failure during the recovery itself returns both sides to
 * postcopy-paused, as QEMU 8.2 does; another migrate-recover may follow.
 *
 * What recovery cannot save: a source that died (the pages it held are
 * gone: the guest is lost, said at the destination), and a link that broke
 * between the destination's DONE and the source reading it (the
 * destination is complete and listens no more; the source stays paused
 * until it is told, and its guest, postmigrate, is never resumed by itself).
 */
import { WireError } from '../errors.js';

/** Ends the waits of one connection in post-copy: the link broke, and the migration pauses rather than fails. */
export class LinkBrokenError extends Error {
  override name = 'LinkBrokenError';
}

/**
 * The source's view of a RECVBITMAP sequence: ranges in order, within the
 * guest's pages, closed by RESUMEACK whose count must match. Bad input is a
 * WireError naming what was wrong.
 */
export class ResumeBitmap {
  private readonly ranges: number[] = [];
  private end = 0;
  private count = 0;
  private closed = false;

  constructor(private readonly totalPages: number) {}

  /** One RECVBITMAP: (first, count) pairs of global pages. */
  add(pairs: ArrayLike<number>): void {
    if (this.closed) throw new WireError('RECVBITMAP: after RESUMEACK');
    for (let i = 0; i < pairs.length; i += 2) {
      const first = pairs[i];
      const n = pairs[i + 1];
      if (n < 1 || first < this.end || first + n > this.totalPages) {
        throw new WireError(`RECVBITMAP: range ${first}+${n} is ${n < 1 ? 'empty' : first < this.end ? 'out of order' : `past the guest's ${this.totalPages} pages`}`);
      }
      this.ranges.push(first, n);
      this.end = first + n;
      this.count += n;
    }
  }

  /** RESUMEACK: the bitmap is whole; its count must be what the ranges named. Returns the ranges. */
  close(missing: number): number[] {
    if (this.closed) throw new WireError('RESUMEACK: arrived twice');
    if (missing !== this.count) throw new WireError(`RESUMEACK: ${missing} pages missing, the bitmap named ${this.count}`);
    this.closed = true;
    return this.ranges;
  }
}

/**
 * The destination's side: its missing pages as RECVBITMAP heads of at most
 * `maxRanges` ranges each, and their count. `firstMissing(from)` is the
 * presence map's nextMissing (-1: none left).
 */
export function bitmapRanges(firstMissing: (from: number) => number, totalPages: number, maxRanges: number): { records: Uint32Array[]; missing: number } {
  const nextMissing = (from: number) => {
    const q = firstMissing(from);
    return q < 0 ? totalPages : q;
  };
  const records: Uint32Array[] = [];
  let cur: number[] = [];
  let missing = 0;
  for (let p = nextMissing(0); p < totalPages; ) {
    let end = p + 1;
    while (end < totalPages && nextMissing(end) === end) end++;
    cur.push(p, end - p);
    missing += end - p;
    if (cur.length === 2 * maxRanges) {
      records.push(Uint32Array.from(cur));
      cur = [];
    }
    p = nextMissing(end);
  }
  if (cur.length > 0) records.push(Uint32Array.from(cur));
  return { records, missing };
}
