/**
 * The shared control block of one vCPU: how the main thread asks a vCPU to
 * run, pause or exit, how the vCPU acknowledges, and where the vCPU writes
 * its own state. All Atomics code for the block lives here.
 *
 *   Int32 fields                       written by   read by
 *   REQUEST   (epoch << 2) | kind      main         vCPU (checked every chunk)
 *   ACK       last REQUEST acted upon  vCPU         main (pause/resume wait)
 *   THROTTLE  percent 0..99            main         vCPU (each slice; set per vCPU)
 *   STATE_LEN bytes of saved state     vCPU/loader  vCPU/main
 *   LOAD      1: load state at RUN     main/loader  vCPU
 *   FAILED    1: the vCPU threw        vCPU         main
 *   Float64 stats at STATS_OFFSET      vCPU         anyone (exact once paused)
 *   state bytes at STATE_OFFSET        vCPU/loader  vCPU/main
 *
 * Why it is safe:
 * - Pause: main stores REQUEST = PAUSE (new epoch) and notifies. The vCPU
 *   checks REQUEST between chunks of at most 64 pages and sleeps only in
 *   `Atomics.wait` on REQUEST, so it sees the request within a chunk or is
 *   woken from its wait. It then writes its state, then stores ACK = REQUEST.
 *   Its RAM stores and dirty marks all precede that seq-cst store, so once
 *   main loads ACK equal to its request, every write and mark of the vCPU is
 *   visible to main and to any later sync (invariant 1 across a pause), and
 *   the vCPU writes nothing more until REQUEST changes.
 * - The epoch makes each request distinct: a stale ACK from an earlier pause
 *   can never satisfy a new one (pause, resume, pause in quick succession).
 * - State bytes and LOAD are written by one side before the seq-cst store
 *   that hands them over (ACK for saves; REQUEST = RUN for loads).
 */

// biome-ignore lint/suspicious/noConstEnum: tsc inlines the members as literals in hot paths (a plain enum is a property load at run time); tsc alone builds ferry, without isolatedModules
export const enum RequestKind {
  Run = 1,
  Pause = 2,
  Exit = 3,
}

const REQUEST = 0;
const ACK = 1;
const THROTTLE = 2;
const STATE_LEN = 3;
const LOAD = 4;
const FAILED = 5;
const INT_FIELDS = 8;

/** Float64 statistics, written by the vCPU only. */
// biome-ignore lint/suspicious/noConstEnum: as RequestKind's
export const enum Stat {
  /** Nanoseconds spent running workload steps. */
  BusyNs = 0,
  /** Nanoseconds slept because of throttling. */
  ThrottleNs = 1,
  /** Nanoseconds waited because the workload had nothing due (pacing, idle). */
  IdleNs = 2,
  /** The guest clock: advances while running (throttled or not), stops while paused. */
  GuestNs = 3,
  /** Pages written (a page written twice counts twice). */
  PagesWritten = 4,
  /** Slices run. */
  Slices = 5,
  /** Pause requests seen. */
  Pauses = 6,
  /** Longest time from a pause request being visible to the vCPU to its ack, ns. */
  MaxPauseAckNs = 7,
  /**
   * Nanoseconds of throttle sleep asked for (ThrottleNs is what was slept:
   * more on a loaded machine, where a sleep ends late).
   */
  ThrottleAskedNs = 8,
  /**
   * Pages this vCPU's marks found clean (newly dirty since the last harvest
   * of their word, like the entries a vCPU adds to a KVM dirty ring): its
   * own dirty count, from which dirty-limit measures its dirty rate. A
   * WebAssembly vCPU (plain-store mark map) does not count them.
   */
  PagesDirtied = 9,
  /** Pages read by a workload that only reads (`read`): its progress. */
  PagesRead = 10,
  /** Nanoseconds blocked waiting for missing pages (post-copy; page-waits.ts). */
  PageWaitNs = 11,
  /** Waits for a missing page (a wait interrupted by a pause and resumed counts twice). */
  PageWaits = 12,
}
const STAT_COUNT = 13;

const STATS_OFFSET = INT_FIELDS * 4;
const STATE_OFFSET = STATS_OFFSET + STAT_COUNT * 8;
/** Room for a synthetic vCPU's saved state (workload state as JSON, clock); a WebAssembly vCPU's holds its unwound stack too. */
export const MAX_VCPU_STATE_BYTES = 64 * 1024;

export function newControlBuffer(stateBytes = MAX_VCPU_STATE_BYTES): SharedArrayBuffer {
  return new SharedArrayBuffer(STATE_OFFSET + stateBytes);
}

export function requestKind(request: number): RequestKind {
  return (request & 3) as RequestKind;
}

export class VcpuControl {
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly state: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.i32 = new Int32Array(buffer, 0, INT_FIELDS);
    this.f64 = new Float64Array(buffer, STATS_OFFSET, STAT_COUNT);
    this.state = new Uint8Array(buffer, STATE_OFFSET);
  }

  // ---- main thread side ----

  /** Post a new request (fresh epoch) and wake the vCPU. Returns it. */
  post(kind: RequestKind): number {
    const prev = Atomics.load(this.i32, REQUEST);
    const epoch = ((prev >>> 2) + 1) & 0x1fffffff;
    const request = (epoch << 2) | kind;
    Atomics.store(this.i32, REQUEST, request);
    Atomics.notify(this.i32, REQUEST);
    return request;
  }

  acked(request: number): boolean {
    return Atomics.load(this.i32, ACK) === request;
  }

  /**
   * Resolve once ACK equals `request` or `deadline` (performance.now() ms)
   * passes. Does not block the event loop (Atomics.waitAsync).
   */
  async waitAck(request: number, deadline: number): Promise<boolean> {
    for (;;) {
      const ack = Atomics.load(this.i32, ACK);
      if (ack === request) return true;
      if (this.failed) return false;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const r = Atomics.waitAsync(this.i32, ACK, ack, Math.min(left, 50));
      if (r.async) await r.value;
    }
  }

  setThrottle(percent: number): void {
    Atomics.store(this.i32, THROTTLE, percent);
  }

  /** Place a state for the vCPU to load at its next RUN (vCPU paused). */
  loadState(bytes: Uint8Array): void {
    this.state.set(bytes);
    Atomics.store(this.i32, STATE_LEN, bytes.length);
    Atomics.store(this.i32, LOAD, 1);
  }

  get failed(): boolean {
    return Atomics.load(this.i32, FAILED) !== 0;
  }

  // ---- vCPU side ----

  request(): number {
    return Atomics.load(this.i32, REQUEST);
  }

  /** Acknowledge `request`; every RAM write and mark before this is visible after. */
  ack(request: number): void {
    Atomics.store(this.i32, ACK, request);
    Atomics.notify(this.i32, ACK);
  }

  /** Sleep until REQUEST changes from `request`, at most `ms` (Infinity: no limit). */
  waitChange(request: number, ms = Infinity): void {
    Atomics.wait(this.i32, REQUEST, request, ms);
  }

  throttle(): number {
    return Atomics.load(this.i32, THROTTLE);
  }

  /**
   * A throttle sleep of `ms`: slept in pieces of at most 10 ms that re-read
   * the throttle, so throttle 0 ends it within one piece, and a request
   * other than `request` ends it at once.
   */
  throttleSleep(request: number, ms: number): void {
    const until = performance.now() + ms;
    for (let t = performance.now(); t < until && this.throttle() > 0 && this.request() === request; t = performance.now()) {
      this.waitChange(request, Math.min(10, until - t));
    }
  }

  /** The state the main thread placed, if any (clears the LOAD flag). */
  takeLoad(): Uint8Array | null {
    if (Atomics.exchange(this.i32, LOAD, 0) === 0) return null;
    return this.state.slice(0, Atomics.load(this.i32, STATE_LEN));
  }

  saveState(bytes: Uint8Array): void {
    if (bytes.length > this.state.length) {
      throw new RangeError(`vCPU state of ${bytes.length} bytes exceeds its ${this.state.length}-byte room`);
    }
    this.state.set(bytes);
    Atomics.store(this.i32, STATE_LEN, bytes.length);
  }

  setFailed(): void {
    Atomics.store(this.i32, FAILED, 1);
    Atomics.notify(this.i32, ACK);
  }

  // ---- either side ----

  /** The saved state (read on main after a pause ack). */
  savedState(): Uint8Array {
    return this.state.slice(0, Atomics.load(this.i32, STATE_LEN));
  }

  stat(s: Stat): number {
    return this.f64[s];
  }

  /** vCPU side only. */
  addStat(s: Stat, v: number): void {
    this.f64[s] += v;
  }

  /** vCPU side only. */
  setStat(s: Stat, v: number): void {
    this.f64[s] = v;
  }
}
