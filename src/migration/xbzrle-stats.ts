/**
 * XBZRLE's counters, as QEMU's XBZRLECacheStats (query-migrate's
 * `xbzrle-cache`): the totals move with each page the cache decides on
 * (xbzrle-cache.ts); the two rates are computed per period by `updateRates`,
 * which the sender calls where QEMU's migration_update_rates runs (at a
 * dirty sync, once more than a second has passed since the last period).
 */

/** query-migrate's `xbzrle-cache` object, QEMU's field names. */
export interface XbzrleCacheInfo {
  readonly 'cache-size': number;
  readonly bytes: number;
  readonly pages: number;
  readonly 'cache-miss': number;
  readonly 'cache-miss-rate': number;
  readonly 'encoding-rate': number;
  readonly overflow: number;
}

export class XbzrleStats {
  /** The cache's size in bytes (after rounding to a power of two number of pages). */
  cacheSizeBytes = 0;
  /**
   * Bytes the XBZRLE pages cost: each delta with its per-page overhead, and
   * a whole page (4096) for each overflow (QEMU's `bytes`, which likewise
   * counts an overflowed page as sent whole).
   */
  bytes = 0;
  /** Pages that hit the cache and were encoded: sent as deltas, skipped as unchanged, or overflowed (QEMU's `pages`). */
  pages = 0;
  /** Pages looked up after the first pass and not found (QEMU's `cache-miss`); each went whole. */
  cacheMiss = 0;
  /** Encodings longer than the limit (QEMU's `overflow`); each page went whole. */
  overflow = 0;
  /** Misses of the last period over the pages sent in it (all kinds), 0..1. */
  cacheMissRate = 0;
  /**
   * Last period's bytes of the pages encoded (4096 each) over what they
   * cost (`bytes`): 4 means a quarter of the bytes went. 0 when no page
   * was encoded or none cost anything (all skipped), as QEMU says it.
   */
  encodingRate = 0;
  private missPrev = 0;
  private pagesPrev = 0;
  private bytesPrev = 0;

  constructor(private readonly pageSize: number) {}

  /**
   * Close a period: `pagesSent` is every page sent in it (normal, zero and
   * XBZRLE: QEMU's target_page_count since the last period). Mirrors
   * migration_update_rates: nothing changes for a period that sent nothing.
   */
  updateRates(pagesSent: number): void {
    if (pagesSent <= 0) return;
    this.cacheMissRate = (this.cacheMiss - this.missPrev) / pagesSent;
    const encodedPages = this.pages - this.pagesPrev;
    const encodedBytes = this.bytes - this.bytesPrev;
    this.encodingRate = encodedPages === 0 || encodedBytes === 0 ? 0 : (encodedPages * this.pageSize) / encodedBytes;
    this.missPrev = this.cacheMiss;
    this.pagesPrev = this.pages;
    this.bytesPrev = this.bytes;
  }

  /** Start over (a new migration): every counter and period at zero; the size stays. */
  reset(): void {
    this.bytes = this.pages = this.cacheMiss = this.overflow = 0;
    this.cacheMissRate = this.encodingRate = 0;
    this.missPrev = this.pagesPrev = this.bytesPrev = 0;
  }

  /** The figures under QEMU's names. */
  info(): XbzrleCacheInfo {
    return {
      'cache-size': this.cacheSizeBytes,
      bytes: this.bytes,
      pages: this.pages,
      'cache-miss': this.cacheMiss,
      'cache-miss-rate': this.cacheMissRate,
      'encoding-rate': this.encodingRate,
      overflow: this.overflow,
    };
  }
}
