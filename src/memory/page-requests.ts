/**
 * The consumer's side of the page waits (page-waits.ts): the pages vCPUs are
 * waiting for, as they ask, without polling (the doorbell is awaited with
 * `Atomics.waitAsync`, so the consumer's thread never blocks), and the
 * latency of each wait. One consumer per guest: it owns the last request
 * seen per vCPU. Dedupe is the consumer's business: a vCPU interrupted by a
 * pause asks again after the resume, and two vCPUs may ask for one page.
 */
import { InvalidArgumentError } from '../errors.js';
import type { PageRequest, PageWaits } from './page-waits.js';

export type { PageRequest } from './page-waits.js';

export class PageRequests {
  private readonly lastSeq: Int32Array;
  private dropped = 0;

  constructor(private readonly waits: PageWaits) {
    this.lastSeq = new Int32Array(waits.vcpus);
  }

  /**
   * The requests made since the last call; if there are none, waits for
   * one, at most `timeoutMs`, and returns [] if none came.
   */
  async nextRequests(timeoutMs: number): Promise<PageRequest[]> {
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || timeoutMs > 3_600_000) {
      throw new InvalidArgumentError(`page requests: timeout must be a number of milliseconds in [0, 3600000], got ${String(timeoutMs)}`);
    }
    const deadline = performance.now() + timeoutMs;
    const out: PageRequest[] = [];
    for (;;) {
      const bell = this.waits.doorbell();
      this.waits.scan(this.lastSeq, out);
      const left = deadline - performance.now();
      if (out.length > 0 || left <= 0) return out;
      await this.waits.ring(bell, left);
    }
  }

  /**
   * Latencies of the waits that ended with their page present since the
   * last call, ns: from a vCPU's request to its seeing the page (the
   * install, then the wake-up). One sample per wait: a page two vCPUs waited
   * for gives two.
   */
  takeLatencies(): number[] {
    const out: number[] = [];
    let dropped = 0;
    for (let v = 0; v < this.waits.vcpus; v++) dropped += this.waits.takeLatencies(v, out);
    this.dropped = dropped;
    return out;
  }

  /** Samples a vCPU could not keep because its ring was full (latencies not taken in time), as of the last take. */
  get droppedLatencies(): number {
    return this.dropped;
  }
}
