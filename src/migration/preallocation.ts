/**
 * A destination's preallocation (QEMU's -mem-prealloc with
 * prealloc-threads, for the pages that will come): the source sends its
 * ever-written map right after the header (WRITTEN records, asked for with
 * PREALLOC: docs/wire-format.md, "Preallocation"), and threads touch those
 * pages (memory/page-toucher.ts) while the first pass arrives, so that the
 * loader copies into memory already committed. The migration never waits
 * for it: the loader writes as pages come, touched or not.
 *
 *   header      -> the threads start (a worker costs ~30 ms here: started
 *                  now, they are ready when the map is)
 *   WRITTEN...  -> the pages wanted
 *   WRITTEN LAST-> the cap is fixed, the threads touch
 *   END         -> stop (every page is loaded: touching more is waste)
 *
 * What it touches: the source's ever-written pages at its setup, the first
 * pass's plan. A page first written at the source later is not touched (the
 * loader commits it, as without preallocation); a page written and zeroed
 * since is touched though the source sends it as ZERO (finding which are
 * zero is the first pass's scan, which the map does not wait for).
 *
 * The cap (the rule): the threads touch at most the free memory when the
 * map is complete (os.freemem(): MemAvailable on Linux) minus a margin of
 * max(256 MiB, 5 % of RAM), so that preallocation cannot take memory the
 * host needs; the loader's own writes are the same pages. When the cap is
 * hit they touch what fits and stop; the figures say `capped`, and the
 * rest is committed by the loader as it writes, as without preallocation.
 *
 * Post-copy is refused with preallocation (loader-session.ts): the pages
 * post-copy delivers are the ones a source marks missing at its switch,
 * unknown while the map is touched, and in QEMU a touched page never
 * faults, so post-copy could not deliver it.
 */
import { availableParallelism, freemem, totalmem } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TouchPlan } from '../memory/page-toucher.js';
import { PAGE_SIZE } from '../memory/page.js';
import type { RamBlock } from '../memory/ram-block.js';
import { monoMs } from './waiter.js';

/** A toucher thread -> its preallocation. */
export type FromToucher = { readonly type: 'done'; readonly touched: number };

export type PreallocStatus = 'waiting-for-map' | 'touching' | 'completed' | 'capped' | 'stopped' | 'failed';

export interface PreallocFigures {
  /**
   * waiting-for-map; touching; completed (every page of the map touched);
   * capped (stopped at the free-memory cap); stopped (END came first: the
   * loader had written every page); failed (a thread failed: the
   * migration went on without it).
   */
  readonly status: PreallocStatus;
  readonly threads: number;
  /** Pages in the source's ever-written map. */
  readonly mapPages: number;
  readonly touchedPages: number;
  /** The cap, pages (free memory at the map's end minus the margin; or the test's). */
  readonly capPages: number;
  /** From the map's end to the last thread's end (or now, while touching), ms. */
  readonly ms: number;
  /** Why it failed (status failed). */
  readonly error?: string;
}

export interface PreallocOptions {
  /** Threads; 0: the machine's cores. */
  readonly threads: number;
  /** Tests only: a cap below the free-memory one, bytes. */
  readonly maxBytes?: number;
  /** The figures when preallocation starts and when it ends. */
  readonly onChange?: (figures: PreallocFigures) => void;
}

/** The margin of free memory preallocation leaves: max(256 MiB, 5 % of RAM). */
export function preallocMarginBytes(total = totalmem()): number {
  return Math.max(256 * 1024 * 1024, Math.floor(total / 20));
}

export class Preallocation {
  readonly plan: TouchPlan;
  readonly threads: number;
  private readonly workers: Worker[] = [];
  private status: PreallocStatus = 'waiting-for-map';
  private mapPages = 0;
  private capPages = 0;
  private startMs = 0;
  private endMs = 0;
  private running = 0;
  private error: string | undefined;

  /** Start the threads for `blocks` (each waits for the plan). */
  constructor(blocks: readonly RamBlock[], private readonly options: PreallocOptions) {
    this.plan = TouchPlan.create(blocks);
    this.threads = options.threads === 0 ? availableParallelism() : options.threads;
    try {
      for (let i = 0; i < this.threads; i++) this.workers.push(this.spawn());
    } catch (err) {
      this.failed(err);
    }
  }

  /** A WRITTEN record's ranges (checked by the decoder: in the block, in order, coalesced). */
  addRanges(block: number, ranges: ArrayLike<number>): void {
    for (let i = 0; i < ranges.length; i += 2) {
      this.plan.want(block, ranges[i], ranges[i + 1]);
      this.mapPages += ranges[i + 1];
    }
  }

  /** The map is whole: fix the cap and let the threads touch. */
  mapComplete(): void {
    if (this.status !== 'waiting-for-map') return;
    const free = Math.max(0, freemem() - preallocMarginBytes());
    this.capPages = Math.floor(Math.min(free, this.options.maxBytes ?? Infinity) / PAGE_SIZE);
    this.plan.arm(this.capPages);
    this.status = 'touching';
    this.startMs = monoMs();
    this.running = this.workers.length;
    this.endMs = 0;
    for (const w of this.workers) w.postMessage(this.plan.shared);
    this.options.onChange?.(this.figures());
    if (this.running === 0) this.finish();
  }

  /**
   * END arrived: touching more is waste. The threads stop before their next
   * chunk (within 2 MiB each); preallocation's time ends now, and its
   * status says `stopped` at once (finish() refines it when they are done).
   */
  stop(): void {
    this.plan.stop();
    if (this.status === 'waiting-for-map') this.close();
    if (this.status !== 'touching') return;
    this.status = 'stopped';
    this.endMs = monoMs();
    this.options.onChange?.(this.figures());
  }

  /** The migration ended: stop and end the threads now. */
  close(): void {
    this.plan.stop();
    for (const w of this.workers) void w.terminate();
  }

  figures(): PreallocFigures {
    const end = this.endMs === 0 ? monoMs() : this.endMs;
    return {
      status: this.status, threads: this.threads, mapPages: this.mapPages, touchedPages: this.plan.touchedPages, capPages: this.capPages,
      ms: this.startMs === 0 ? 0 : Math.round(end - this.startMs), ...(this.error === undefined ? {} : { error: this.error }),
    };
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./prealloc-worker.js', import.meta.url), { workerData: null });
    w.unref();
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      // One that ends before the plan came would never say done: it is no longer counted.
      if (this.status === 'waiting-for-map') this.workers.splice(this.workers.indexOf(w), 1);
      else if (--this.running === 0) this.finish();
    };
    w.on('message', (m: FromToucher) => { if (m.type === 'done') end(); });
    w.on('error', (err) => {
      this.failed(err);
      end();
    });
    w.on('exit', end);
    return w;
  }

  private failed(err: unknown): void {
    this.error ??= `a preallocation thread failed: ${(err as Error).message}`;
    this.plan.stop();
  }

  /** Every thread ended: say how. */
  private finish(): void {
    if (this.endMs === 0) this.endMs = monoMs();
    const p = this.plan;
    this.status = this.error !== undefined ? 'failed' : p.capped ? 'capped' : p.touchedPages < this.mapPages ? 'stopped' : 'completed';
    this.options.onChange?.(this.figures());
  }
}
