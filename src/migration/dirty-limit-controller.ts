/**
 * dirty-limit's control loop, on the source's main thread (the migration's
 * owner, which owns the guest): once the policy has engaged dirty-limit
 * (dirty-limit.ts rule 1), every x-vcpu-dirty-limit-period ms it reads each
 * vCPU's own dirty count (Stat.PagesDirtied) and run/sleep accounting,
 * and sets each vCPU's throttle by rule 2 (QEMU's dirtylimit throttle
 * thread, system/dirtylimit.c). It stops when the migration ends, whatever
 * the outcome, and gives every vCPU back the throttle it had before (QEMU:
 * cancel-vcpu-dirty-limit at the end of the migration). A throttle of the
 * user's own (Guest.throttle) is kept under dirty-limit's: a vCPU runs at
 * the larger of the two.
 *
 * Its figures, for query-migrate (QEMU 8.1's names, ferry's honest
 * equivalents, both in microseconds, over the last period):
 *
 *   - dirty-limit-throttle-time-per-round: QEMU's is the longest sleep a
 *     vCPU takes each time its KVM dirty ring fills. A ferry vCPU sleeps
 *     after each slice of its time (at most 1 ms of work and idle wait,
 *     vcpu-loop.ts): ferry's figure is the longest average throttle sleep
 *     per slice among the vCPUs, as slept (Stat.ThrottleNs / Stat.Slices).
 *   - dirty-limit-ring-full-time: QEMU's is the time a vCPU runs between two
 *     such sleeps, estimated as the ring's size over the vCPUs' average
 *     dirty rate (0: the guest dirties nothing). ferry has no ring, and runs
 *     a slice between sleeps whatever it dirties: ferry's figure is the
 *     average length of a slice (work and idle wait) of the vCPUs that
 *     dirtied in the period, measured, and 0 when none dirtied. The dirty
 *     rates themselves are in x-ferry-vcpu-dirty-limit (per vCPU).
 */
import { InvalidArgumentError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import { createTracer } from '../trace.js';
import { capabilityConflict } from './capabilities.js';
import { dirtyLimitThrottle, pagesPerSecToMB } from './dirty-limit.js';
import { monoMs } from './waiter.js';

const trace = createTracer('dirty-limit');

/** One vCPU under dirty-limit (QEMU's DirtyLimitInfo, plus the throttle it was given). */
export interface VcpuDirtyLimit {
  readonly 'cpu-index': number;
  /** The quota, MB/s. */
  readonly 'limit-rate': number;
  /** Its dirty rate over the last period, MB/s. */
  readonly 'current-rate': number;
  /** The throttle in force, percent. */
  readonly 'throttle-percentage': number;
}

export interface DirtyLimitFigures {
  readonly throttleTimePerRoundUs: number;
  readonly ringFullTimeUs: number;
  readonly vcpus: readonly VcpuDirtyLimit[];
}

/** What the controller reads of one vCPU at each period's end. */
interface Sample {
  readonly atMs: number;
  readonly dirtied: number;
  readonly throttleNs: number;
  readonly runNs: number;
  readonly slices: number;
}

/**
 * dirty-limit's refusals at `migrate`: with auto-converge (QEMU's words),
 * and for a WebAssembly program, whose one vCPU marks through a plain-store
 * byte map (no old value tells a newly dirty page) and so has no rate of
 * its own to limit by (ferry's choice: refuse rather than take the log's
 * count for the vCPU's; auto-converge serves that guest).
 */
export function refuseDirtyLimit(guest: Guest, autoConverge: boolean): void {
  const conflict = capabilityConflict({ 'dirty-limit': true, 'auto-converge': autoConverge });
  if (conflict !== null) throw new InvalidArgumentError(conflict);
  if (guest.program !== null) {
    throw new InvalidArgumentError("dirty-limit measures each vCPU's dirty rate from its own marks, and a WebAssembly program's vCPU marks"
      + ' through a byte map that cannot count them: use auto-converge for this guest');
  }
}

export class DirtyLimitController {
  private quotaMBPerSec = 0;
  /** Each vCPU's throttle before dirty-limit engaged (the user's own): given back at stop(). */
  private userThrottles: number[] = [];
  private samples: Sample[] = [];
  private figuresValue: DirtyLimitFigures | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  /** `periodMs`: the live x-vcpu-dirty-limit-period (read at every period). */
  constructor(private readonly guest: Guest, private readonly periodMs: () => number) {}

  /** Engaged and not stopped. */
  get active(): boolean {
    return this.quotaMBPerSec > 0 && !this.stopped;
  }

  /** The last period's figures (zeros before the first period ended); null unless engaged and not stopped. */
  get figures(): DirtyLimitFigures | null {
    return this.active ? this.figuresValue : null;
  }

  /** Limit every vCPU to `quotaMBPerSec` from now on (again: a new quota). */
  engage(quotaMBPerSec: number): void {
    if (this.stopped) return;
    if (this.quotaMBPerSec === 0) {
      this.userThrottles = this.guest.vcpuThrottles;
      this.samples = this.sample();
      this.arm();
    }
    this.quotaMBPerSec = quotaMBPerSec;
    this.figuresValue ??= {
      throttleTimePerRoundUs: 0, ringFullTimeUs: 0,
      vcpus: this.userThrottles.map((p, i) => ({ 'cpu-index': i, 'limit-rate': quotaMBPerSec, 'current-rate': 0, 'throttle-percentage': p })),
    };
  }

  /** End the loop and give every vCPU back its own throttle. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.quotaMBPerSec === 0) return;
    this.userThrottles.forEach((p, i) => {
      this.guest.throttleVcpu(i, p);
    });
  }

  private arm(): void {
    this.timer = setTimeout(() => this.tick(), this.periodMs());
    this.timer.unref();
  }

  /** One period's end: measure each vCPU, throttle each by its own rate, report. */
  private tick(): void {
    if (this.stopped) return;
    const now = this.sample();
    const inForce = this.guest.vcpuThrottles;
    const vcpus: VcpuDirtyLimit[] = [];
    let longestSleepUs = 0;
    let sliceUsSum = 0;
    let dirtying = 0;
    now.forEach((s, i) => {
      const was = this.samples[i];
      const seconds = (s.atMs - was.atMs) / 1000;
      const rate = seconds > 0 ? (s.dirtied - was.dirtied) / seconds : 0;
      const slices = s.slices - was.slices;
      if (slices > 0) longestSleepUs = Math.max(longestSleepUs, (s.throttleNs - was.throttleNs) / slices / 1000);
      if (slices > 0 && rate > 0) {
        sliceUsSum += (s.runNs - was.runNs) / slices / 1000;
        dirtying++;
      }
      const own = dirtyLimitThrottle({ dirtyPagesPerSec: rate, throttlePercent: inForce[i] }, this.quotaMBPerSec);
      const percent = Math.max(own, this.userThrottles[i] ?? 0);
      if (percent !== inForce[i]) trace('vCPU %d: %d pages/s at %d %% -> %d %%', i, Math.round(rate), inForce[i], percent);
      this.guest.throttleVcpu(i, percent);
      vcpus.push({ 'cpu-index': i, 'limit-rate': this.quotaMBPerSec, 'current-rate': pagesPerSecToMB(rate), 'throttle-percentage': percent });
    });
    this.samples = now;
    this.figuresValue = {
      throttleTimePerRoundUs: Math.round(longestSleepUs),
      ringFullTimeUs: dirtying === 0 ? 0 : Math.round(sliceUsSum / dirtying),
      vcpus,
    };
    this.arm();
  }

  private sample(): Sample[] {
    const atMs = monoMs();
    return this.guest.vcpuStats().map((v) => ({
      atMs, dirtied: v.pagesDirtied, throttleNs: v.throttleNs, runNs: v.busyNs + v.idleNs, slices: v.slices,
    }));
  }
}
