/**
 * The vCPU loop, run in a worker thread (vcpu-worker.ts is its tiny entry;
 * tests may run it anywhere). It runs the workload in slices of at most
 * 1 ms, checks for requests between chunks of at most 64 pages, sleeps the
 * throttle share of each slice, and on a pause request writes its own state
 * then acknowledges (vcpu-control.ts explains the ordering).
 *
 * Post-copy: a step that touches a missing page stops with a MissingPage
 * signal before touching it (guest-memory.ts); the loop waits for the page
 * (page-waits.ts: the request is published, an install or a new request
 * wakes the wait) and runs the step again, as a CPU restarts a faulting
 * instruction. Steps are restartable (workload.ts). A wait ended by a
 * request ends the slice: the loop's top pauses or exits as always, and
 * the step is retried after a resume.
 */
import { GuestMemory } from '../memory/guest-memory.js';
import { MissingPage } from '../memory/missing-page.js';
import { PageWaits } from '../memory/page-waits.js';
import { PresenceMap } from '../memory/presence-map.js';
import { RequestKind, Stat, VcpuControl, requestKind } from './vcpu-control.js';
import type { VcpuInit, VcpuState } from './vcpu-messages.js';
import { createWorkload, restoreWorkload, type Workload } from './workloads/index.js';

/** Longest stretch of work between two looks at the request word. */
export const SLICE_NS = 1_000_000;
/** Pages written between two looks at the request word and the clock. */
export const CHUNK_PAGES = 64;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const nowNs = (): number => performance.now() * 1e6;

export function encodeVcpuState(state: VcpuState): Uint8Array {
  return encoder.encode(JSON.stringify(state));
}

export function decodeVcpuState(bytes: Uint8Array): VcpuState {
  return JSON.parse(decoder.decode(bytes)) as VcpuState;
}

/** Where this vCPU waits for missing pages (null: every page is always here). */
interface PageWait {
  readonly presence: PresenceMap;
  readonly waits: PageWaits;
  readonly slot: number;
}

export function runVcpu(init: VcpuInit): void {
  const ctl = new VcpuControl(init.control);
  const mem = GuestMemory.attach(init.ram, init.pages?.presence);
  const pages: PageWait | null = init.pages === undefined ? null
    : { presence: new PresenceMap(init.pages.presence), waits: new PageWaits(init.pages.waits), slot: init.index };
  let workload: Workload = createWorkload(init.workload, mem.totalPages);

  for (;;) {
    const request = ctl.request();
    const kind = requestKind(request);
    if (kind === RequestKind.Exit) {
      ctl.ack(request);
      return;
    }
    if (kind === RequestKind.Pause) {
      if (!ctl.acked(request)) {
        const seen = nowNs();
        ctl.saveState(encodeVcpuState({ guestNs: ctl.stat(Stat.GuestNs), workload: workload.save() }));
        ctl.addStat(Stat.Pauses, 1);
        ctl.setStat(Stat.MaxPauseAckNs, Math.max(ctl.stat(Stat.MaxPauseAckNs), nowNs() - seen));
        ctl.ack(request);
      }
      ctl.waitChange(request);
      continue;
    }
    const loaded = ctl.takeLoad();
    if (loaded !== null) {
      const state = decodeVcpuState(loaded);
      workload = restoreWorkload(state.workload, mem.totalPages);
      ctl.setStat(Stat.GuestNs, state.guestNs);
    }
    if (!ctl.acked(request)) ctl.ack(request);
    runSlice(ctl, mem, workload, request, pages);
  }
}

/** One slice: work for up to SLICE_NS (waiting for missing pages as they come), then sleep the throttle share. */
function runSlice(ctl: VcpuControl, mem: GuestMemory, workload: Workload, request: number, pages: PageWait | null): void {
  const start = nowNs();
  const guestStart = ctl.stat(Stat.GuestNs);
  const done = workload.pagesDone;
  let now = start;
  let busy = 0;
  let blocked = 0;
  while (now - start < SLICE_NS) {
    const t = now;
    let n: number;
    try {
      n = workload.step(mem, guestStart + (now - start), CHUNK_PAGES);
    } catch (signal) {
      if (!(signal instanceof MissingPage) || pages === null) throw signal;
      now = nowNs();
      busy += now - t;
      blocked += waitForPage(ctl, pages, signal.page, request);
      now = nowNs();
      if (ctl.request() !== request) break;
      continue;
    }
    now = nowNs();
    busy += now - t;
    if (ctl.request() !== request) break;
    if (n === 0) {
      // Nothing due: wait for the rest of the slice, or a request.
      ctl.waitChange(request, (SLICE_NS - (now - start)) / 1e6);
      const after = nowNs();
      ctl.addStat(Stat.IdleNs, after - now);
      now = after;
      break;
    }
  }
  ctl.addStat(Stat.BusyNs, busy);
  ctl.addStat(workload.readsOnly === true ? Stat.PagesRead : Stat.PagesWritten, workload.pagesDone - done);
  ctl.addStat(Stat.PagesDirtied, mem.takeNewlyDirtied());
  ctl.addStat(Stat.Slices, 1);
  ctl.setStat(Stat.GuestNs, guestStart + (now - start));
  throttleSleep(ctl, request, now - start - blocked, now);
}

/**
 * Wait for `page` until it is here or a request comes; count the wait.
 * Returns the ns waited. The guest clock runs on meanwhile (a stalled CPU's
 * does); pacing catches up only within its 1 ms credit cap.
 */
function waitForPage(ctl: VcpuControl, pages: PageWait, page: number, request: number): number {
  const { waitedNs } = pages.waits.wait(pages.slot, page, pages.presence, () => ctl.request() !== request);
  ctl.addStat(Stat.PageWaitNs, waitedNs);
  ctl.addStat(Stat.PageWaits, 1);
  return waitedNs;
}

/**
 * Throttle, as QEMU's (cpu_throttle_thread: a vCPU sleeps
 * percent / (100 - percent) of each timeslice, working or idle): sleep so
 * that sleep / (slice + sleep) = percent / 100, the slice's idle wait
 * included, its page waits not (a blocked vCPU is not using its share).
 * The guest clock keeps running while throttled (a descheduled vCPU's
 * clock does), so paced workloads catch up only within their 1 ms credit cap.
 */
function throttleSleep(ctl: VcpuControl, request: number, sliceNs: number, now: number): void {
  const percent = ctl.throttle();
  const sleepNs = percent > 0 ? (Math.max(0, sliceNs) * percent) / (100 - percent) : 0;
  if (sleepNs > 0 && ctl.request() === request) {
    ctl.addStat(Stat.ThrottleAskedNs, sleepNs);
    ctl.throttleSleep(request, sleepNs / 1e6);
    const slept = nowNs() - now;
    ctl.addStat(Stat.ThrottleNs, slept);
    ctl.setStat(Stat.GuestNs, ctl.stat(Stat.GuestNs) + slept);
  }
}
