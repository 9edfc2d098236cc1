/**
 * Post-copy, destination side, on the loader thread (the exchange is drawn
 * in postcopy-source.ts): the vCPUs' requests go to the source as REQUEST
 * records; each arrived page is checked against its own CRC32, then
 * installed only through the presence map (page-installer.ts), never
 * written over a page the guest has since written; a bad page is asked for
 * again, never zero-filled. PEND closes the source's push: every page it
 * pushed has arrived by then (one ordered stream), so its count must equal
 * what arrived, and any page still missing must be one asked again; when
 * the last page is here, DONE.
 *
 * What this side keeps is what a recovery needs (postcopy-recovery.ts):
 * the presence map says which pages arrived, `asked` which are waited for.
 */
import { WireError } from '../errors.js';
import { PageInstaller, type PageInstallerShared } from '../memory/page-installer.js';
import { PageRequests } from '../memory/page-requests.js';
import { PageWaits } from '../memory/page-waits.js';
import { PAGE_SIZE } from '../memory/page.js';
import { PresenceMap } from '../memory/presence-map.js';
import { MAX_REQUEST_PAGES, crc32 } from '../wire/format.js';
import { RECORD, REQUEST_AGAIN, encodeRecord } from '../wire/records.js';
import type { PostcopyLoaderStats } from './messages.js';

/** How long one wait for the vCPUs' requests lasts before the loop looks again (a stop ends it sooner only then). */
const REQUEST_POLL_MS = 50;
/** Latency samples kept for p50/p99 (more are dropped). */
const MAX_SAMPLES = 1 << 20;

export interface PostcopyLoaderPort {
  /** Write a return-path record. */
  send(record: Buffer): void;
  /** Every page is here and the totals held: the migration is complete. */
  done(): void;
  /** The stream broke post-copy's rules. */
  fail(err: Error): void;
}

export class PostcopyLoader {
  private readonly installer: PageInstaller;
  private readonly presence: PresenceMap;
  private readonly requests: PageRequests;
  /** Global page of each block's first page. */
  private readonly starts: number[];
  /** Pages asked for and not here yet (asked once), and those asked again after a bad copy. */
  private readonly asked = new Set<number>();
  private readonly again = new Set<number>();
  private readonly samples: number[] = [];
  private pendArrived = false;
  private stopped = false;
  private readonly missingAtGo: number;
  private received = 0;
  private installed = 0;
  private present = 0;
  private bad = 0;
  private requested = 0;

  constructor(shared: PageInstallerShared, blockPages: readonly number[], private readonly port: PostcopyLoaderPort) {
    this.installer = PageInstaller.attach(shared);
    this.presence = new PresenceMap(shared.presence);
    this.requests = new PageRequests(new PageWaits(shared.waits));
    let at = 0;
    this.starts = blockPages.map((p) => {
      const s = at;
      at += p;
      return s;
    });
    this.missingAtGo = this.presence.missingPages;
  }

  /** Pages missing now. */
  get missingPages(): number {
    return this.presence.missingPages;
  }

  /** The first page missing at or after `from`, or -1 (a recovery's bitmap). */
  nextMissing(from: number): number {
    return this.presence.nextMissing(from);
  }

  /**
   * A recovery's connection is up and its bitmap sent: count PEND's pages
   * from here, and ask again for every page still waited for (the requests
   * on the broken link may never have arrived; the source dropped its queue).
   */
  resumeLink(): void {
    this.received = 0;
    this.pendArrived = false;
    for (const p of this.again) this.asked.add(p);
    this.again.clear();
    for (const p of this.asked) if (this.presence.isPresent(p)) this.asked.delete(p);
    if (this.asked.size > 0) this.ask([...this.asked], false);
  }

  /** PCPAGES: check each page, install the good ones, ask again for the bad. */
  onPages(block: number, head: Buffer, data: Uint8Array): void {
    const { first, checks } = RECORD.PcPages.decode(head);
    const askAgain: number[] = [];
    for (let i = 0; i < checks.length; i++) {
      const page = this.starts[block] + first + i;
      const bytes = data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      this.received++;
      if (crc32(bytes) !== checks[i]) {
        this.bad++;
        if (!this.presence.isPresent(page)) askAgain.push(page);
        continue;
      }
      if (this.installer.install(page, bytes) === 'installed') this.installed++;
      else this.present++;
      this.asked.delete(page);
      this.again.delete(page);
    }
    if (askAgain.length > 0) this.ask(askAgain, true);
    this.maybeDone();
  }

  /** PEND: the source pushed everything; its count must be what arrived, and only pages asked again may be missing. */
  onPend(sent: number): void {
    this.pendArrived = true;
    if (sent !== this.received) {
      this.port.fail(new WireError(`PEND: the source sent ${sent} post-copy pages, ${this.received} arrived`));
      return;
    }
    const missing = this.presence.missingPages;
    if (missing > this.again.size) {
      const first = this.presence.nextMissing(0);
      this.port.fail(new WireError(`PEND: the source pushed every page it had (${sent}), yet ${missing - this.again.size} pages never came ` +
        `(page ${first} first): a missing page is an error, never a zero`));
      return;
    }
    this.maybeDone();
  }

  /** Forward the vCPUs' requests until stopped (the loop never blocks the thread: page-requests.ts). */
  async serve(): Promise<void> {
    while (!this.stopped) {
      const got = await this.requests.nextRequests(REQUEST_POLL_MS);
      const pages: number[] = [];
      for (const r of got) {
        if (this.asked.has(r.page) || this.presence.isPresent(r.page)) continue;
        this.asked.add(r.page);
        pages.push(r.page);
      }
      if (pages.length > 0 && !this.stopped) this.ask(pages, false);
      this.takeLatencies();
    }
  }

  stop(): void {
    this.stopped = true;
  }

  stats(): PostcopyLoaderStats {
    this.takeLatencies();
    const sorted = Float64Array.from(this.samples).sort();
    const at = (q: number) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1e6);
    return {
      missingAtGo: this.missingAtGo, received: this.received, installed: this.installed, present: this.present, bad: this.bad,
      requested: this.requested, latencyP50Ms: at(0.5), latencyP99Ms: at(0.99), latencySamples: sorted.length,
    };
  }

  private ask(pages: readonly number[], again: boolean): void {
    for (let i = 0; i < pages.length; i += MAX_REQUEST_PAGES) {
      const chunk = pages.slice(i, i + MAX_REQUEST_PAGES).map((p) => (again ? (p | REQUEST_AGAIN) >>> 0 : p));
      if (again) for (const p of pages) this.again.add(p);
      this.port.send(encodeRecord(RECORD.Request, { pages: chunk }));
    }
    this.requested += pages.length;
  }

  private takeLatencies(): void {
    for (const ns of this.requests.takeLatencies()) if (this.samples.length < MAX_SAMPLES) this.samples.push(ns);
  }

  private maybeDone(): void {
    if (this.stopped || !this.pendArrived || this.presence.missingPages > 0) return;
    this.stopped = true;
    this.port.done();
  }
}
