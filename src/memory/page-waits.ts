/**
 * Where vCPUs wait for missing pages (post-copy, DESIGN.md invariant 7):
 * one slot per vCPU, a doorbell for whoever serves the requests, the
 * all-blocked accounting (QEMU's postcopy-blocktime) and the request
 * latencies. One SharedArrayBuffer; all Atomics code for it lives here.
 *
 *   Int32   LOCK BLOCKED DOORBELL VCPUS SAFETY_MS - - -   header
 *   BigInt64 EPOCH                           process.hrtime at creation: the shared clock's zero
 *   BigInt64 ALL_SINCE ALL_TOTAL             ns: start of the all-blocked period now (0: none), total
 *   per vCPU, Int32 x 8:
 *     PAGE   page waited for + 1 (0: none)   vCPU writes, installer/consumer read
 *     SEQ    requests made                   vCPU writes, consumer reads
 *     WAKE   bumped to wake the vCPU         installer, main (pause/exit) bump; vCPU waits on it
 *     HEAD TAIL DROPPED                      its latency ring (vCPU pushes, consumer takes)
 *   per vCPU, Float64 REQUEST_NS             when the request was made (shared clock)
 *   per vCPU, Float64[RING] latencies, ns    request to the page seen present
 *
 * Why no wake is lost (a vCPU waiting for page p):
 * - The vCPU stores PAGE = p+1, loads WAKE (w), loads p's present bit, and
 *   only if it is clear and no request for it is posted, `Atomics.wait(WAKE, w)`.
 * - The installer sets the present bit (presence-map.ts), then loads every
 *   slot's PAGE and, for each equal to p+1, `Atomics.add(WAKE)` and notifies.
 *   All are sequentially consistent: if the vCPU's load of the bit missed
 *   the installer's set, the installer's later load of PAGE sees p+1, and its
 *   add to WAKE follows the vCPU's load of w, so the wait returns at once
 *   (WAKE is no longer w) or is woken by the notify.
 * - A pause or an exit: the main thread stores the vCPU's request word
 *   (vcpu-control.ts), then `kick`s its WAKE. The vCPU loads w before it
 *   loads the request word; if it missed the new request, the kick follows
 *   its load of w: the same argument. A wait is also bounded (the safety
 *   net, `safetyMs`), never the mechanism; tests set it to minutes, so
 *   that only a wake can end their waits.
 * - The consumer: a request's PAGE and REQUEST_NS are stored before SEQ's
 *   and DOORBELL's seq-cst adds; the consumer loads DOORBELL (d), then scans
 *   SEQ then PAGE of each slot, then waits on DOORBELL == d. A request made
 *   after its scan bumps DOORBELL: no request is missed. A slot read while
 *   it changes can yield a page twice or a page already here: dedupe and
 *   refusal are the consumer's business (the installer refuses a present page).
 * - All-blocked time: BLOCKED and the period's start and end change under
 *   LOCK (a spin lock held for a few instructions, by vCPUs only). A reader
 *   loads ALL_TOTAL then ALL_SINCE with 64-bit atomic loads, unlocked: exact
 *   when no vCPU is entering or leaving a wait; a read racing a leave may
 *   miss the period that is ending (a figure, reread later, is exact).
 */
import { InvalidArgumentError } from '../errors.js';
import type { PresenceMap } from './presence-map.js';

const LOCK = 0;
const BLOCKED = 1;
const DOORBELL = 2;
const VCPUS = 3;
const SAFETY = 4;
const HEADER_INTS = 8;
const EPOCH = 4; // BigInt64 indices: bytes 32, 40, 48 (after the Int32 header)
const ALL_SINCE = 5;
const ALL_TOTAL = 6;
const HEADER_BYTES = 56;

const PAGE = 0;
const SEQ = 1;
const WAKE = 2;
const HEAD = 3;
const TAIL = 4;
const DROPPED = 5;
const SLOT_INTS = 8;

/** Latency samples a vCPU keeps until the consumer takes them (more are counted as dropped). */
export const LATENCY_RING = 1024;
/** By default a wait re-checks its page and its vCPU's requests at least this often (a safety net, not the mechanism). */
export const SAFETY_MS = 100;
const MAX_SAFETY_MS = 600_000;
/** Most vCPUs a board serves (as the guest's limit). */
const MAX_SLOTS = 64;

/** What a thread needs to attach to the board (structured-cloneable). */
export interface PageWaitsShared {
  readonly vcpus: number;
  readonly buffer: SharedArrayBuffer;
}

/** A vCPU's request for a page, as the consumer reads it. */
export interface PageRequest {
  readonly vcpu: number;
  readonly page: number;
  /** When it was asked, on the board's clock (`nowNs`). */
  readonly requestedNs: number;
}

/** How a wait ended: the page is here, or the vCPU has a request to see (pause, exit); the ns waited. */
export interface WaitOutcome {
  readonly present: boolean;
  readonly waitedNs: number;
}

export class PageWaits {
  readonly vcpus: number;
  readonly buffer: SharedArrayBuffer;
  readonly safetyMs: number;
  private readonly head: Int32Array;
  private readonly clock: BigInt64Array;
  private readonly slots: Int32Array;
  private readonly requestNs: Float64Array;
  private readonly rings: Float64Array;
  private readonly epoch: bigint;

  /** A board for `vcpus` vCPUs whose waits re-check every `safetyMs` (tests make it long: then only a wake ends a wait). */
  static create(vcpus: number, safetyMs = SAFETY_MS): PageWaits {
    if (!Number.isInteger(vcpus) || vcpus < 0 || vcpus > MAX_SLOTS) {
      throw new InvalidArgumentError(`page waits: vCPU count must be an integer in [0, ${MAX_SLOTS}], got ${String(vcpus)}`);
    }
    if (!Number.isInteger(safetyMs) || safetyMs < 1 || safetyMs > MAX_SAFETY_MS) {
      throw new InvalidArgumentError(`page waits: the safety re-check must be an integer of milliseconds in [1, ${MAX_SAFETY_MS}], got ${String(safetyMs)}`);
    }
    const bytes = HEADER_BYTES + vcpus * (SLOT_INTS * 4 + 8 + LATENCY_RING * 8);
    const buffer = new SharedArrayBuffer(Math.ceil(bytes / 8) * 8);
    const head = new Int32Array(buffer, 0, HEADER_INTS);
    head[VCPUS] = vcpus;
    head[SAFETY] = safetyMs;
    new BigInt64Array(buffer, 0, HEADER_BYTES / 8)[EPOCH] = process.hrtime.bigint();
    return new PageWaits({ vcpus, buffer });
  }

  constructor(shared: PageWaitsShared) {
    this.vcpus = shared.vcpus;
    this.buffer = shared.buffer;
    this.head = new Int32Array(shared.buffer, 0, HEADER_INTS);
    this.clock = new BigInt64Array(shared.buffer, 0, HEADER_BYTES / 8);
    this.slots = new Int32Array(shared.buffer, HEADER_BYTES, shared.vcpus * SLOT_INTS);
    const f64 = HEADER_BYTES + shared.vcpus * SLOT_INTS * 4;
    this.requestNs = new Float64Array(shared.buffer, f64, shared.vcpus);
    this.rings = new Float64Array(shared.buffer, f64 + shared.vcpus * 8, shared.vcpus * LATENCY_RING);
    this.epoch = this.clock[EPOCH];
    this.safetyMs = this.head[SAFETY];
  }

  toShared(): PageWaitsShared {
    return { vcpus: this.vcpus, buffer: this.buffer };
  }

  /** The board's clock: ns since it was made, the same in every thread (CLOCK_MONOTONIC). */
  nowNs(): number {
    return Number(process.hrtime.bigint() - this.epoch);
  }

  // ---- vCPU side ----

  /**
   * Wait until `page` is present or `interrupted()` (the vCPU has a new
   * request): publish the request, ring the doorbell, sleep on WAKE in
   * pieces of at most `safetyMs`. Counts the all-blocked time; a wait that
   * ends with the page present leaves its latency in the vCPU's ring.
   */
  wait(slot: number, page: number, presence: PresenceMap, interrupted: () => boolean): WaitOutcome {
    const s = slot * SLOT_INTS;
    const start = this.nowNs();
    this.requestNs[slot] = start;
    Atomics.store(this.slots, s + PAGE, page + 1);
    Atomics.add(this.slots, s + SEQ, 1);
    Atomics.add(this.head, DOORBELL, 1);
    Atomics.notify(this.head, DOORBELL);
    this.enterBlocked(start);
    let present = false;
    for (;;) {
      const w = Atomics.load(this.slots, s + WAKE);
      if (presence.isPresent(page)) {
        present = true;
        break;
      }
      if (interrupted()) break;
      Atomics.wait(this.slots, s + WAKE, w, this.safetyMs);
    }
    Atomics.store(this.slots, s + PAGE, 0);
    const end = this.nowNs();
    this.leaveBlocked(end);
    if (present) this.pushLatency(slot, end - start);
    return { present, waitedNs: end - start };
  }

  /** One vCPU more is blocked at `nowNs`: the last one starts an all-blocked period. */
  enterBlocked(nowNs: number): void {
    this.lock();
    const n = Atomics.add(this.head, BLOCKED, 1) + 1;
    if (n === this.vcpus) Atomics.store(this.clock, ALL_SINCE, BigInt(Math.max(1, Math.round(nowNs))));
    this.unlock();
  }

  /** One vCPU less is blocked at `nowNs`: if all were, the all-blocked period ends. */
  leaveBlocked(nowNs: number): void {
    this.lock();
    if (Atomics.sub(this.head, BLOCKED, 1) === this.vcpus) {
      const since = Atomics.load(this.clock, ALL_SINCE);
      Atomics.store(this.clock, ALL_SINCE, 0n);
      const add = BigInt(Math.max(0, Math.round(nowNs) - Number(since)));
      Atomics.store(this.clock, ALL_TOTAL, Atomics.load(this.clock, ALL_TOTAL) + add);
    }
    this.unlock();
  }

  private pushLatency(slot: number, ns: number): void {
    const s = slot * SLOT_INTS;
    const h = Atomics.load(this.slots, s + HEAD);
    if (((h - Atomics.load(this.slots, s + TAIL)) | 0) >= LATENCY_RING) {
      Atomics.add(this.slots, s + DROPPED, 1);
      return;
    }
    this.rings[slot * LATENCY_RING + (h & (LATENCY_RING - 1))] = ns;
    Atomics.store(this.slots, s + HEAD, (h + 1) | 0);
  }

  private lock(): void {
    while (Atomics.compareExchange(this.head, LOCK, 0, 1) !== 0) {
      // Held for a few instructions by another vCPU: spin.
    }
  }

  private unlock(): void {
    Atomics.store(this.head, LOCK, 0);
  }

  // ---- installer and main side ----

  /** Wake the vCPUs waiting for `page` (call after it is published present). */
  wake(page: number): void {
    const slots = this.slots;
    for (let s = 0; s < this.vcpus * SLOT_INTS; s += SLOT_INTS) {
      if (Atomics.load(slots, s + PAGE) === page + 1) {
        Atomics.add(slots, s + WAKE, 1);
        Atomics.notify(slots, s + WAKE);
      }
    }
  }

  /** Wake vCPU `slot` whatever it waits for (after posting it a request: pause, exit). */
  kick(slot: number): void {
    Atomics.add(this.slots, slot * SLOT_INTS + WAKE, 1);
    Atomics.notify(this.slots, slot * SLOT_INTS + WAKE);
  }

  /** vCPUs blocked now. */
  get blocked(): number {
    return Atomics.load(this.head, BLOCKED);
  }

  /** Time all vCPUs were blocked together, ns, up to `nowNs` (a period under way included). */
  allBlockedNs(nowNs = this.nowNs()): number {
    const total = Number(Atomics.load(this.clock, ALL_TOTAL));
    const since = Number(Atomics.load(this.clock, ALL_SINCE));
    return total + (since > 0 ? Math.max(0, nowNs - since) : 0);
  }

  // ---- consumer side (one consumer: page-requests.ts) ----

  /** The doorbell's value now: pass it to `ring` after scanning. */
  doorbell(): number {
    return Atomics.load(this.head, DOORBELL);
  }

  /** Resolves when the doorbell is no longer `seen`, or after `ms`. Never blocks the thread. */
  async ring(seen: number, ms: number): Promise<void> {
    const r = Atomics.waitAsync(this.head, DOORBELL, seen, ms);
    if (r.async) await r.value;
  }

  /** Append the requests made since `lastSeq` (per slot, updated) to `out`. */
  scan(lastSeq: Int32Array, out: PageRequest[]): void {
    for (let v = 0; v < this.vcpus; v++) {
      const s = v * SLOT_INTS;
      const seq = Atomics.load(this.slots, s + SEQ);
      if (seq === lastSeq[v]) continue;
      lastSeq[v] = seq;
      const page = Atomics.load(this.slots, s + PAGE) - 1;
      if (page >= 0) out.push({ vcpu: v, page, requestedNs: this.requestNs[v] });
    }
  }

  /** Take the latency samples vCPU `slot` has left, appending to `out`; returns how many were dropped in all. */
  takeLatencies(slot: number, out: number[]): number {
    const s = slot * SLOT_INTS;
    const h = Atomics.load(this.slots, s + HEAD);
    for (let t = Atomics.load(this.slots, s + TAIL); t !== h; t = (t + 1) | 0) {
      out.push(this.rings[slot * LATENCY_RING + (t & (LATENCY_RING - 1))]);
    }
    Atomics.store(this.slots, s + TAIL, h);
    return Atomics.load(this.slots, s + DROPPED);
  }
}
