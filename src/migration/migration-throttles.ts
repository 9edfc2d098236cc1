/**
 * The throttles a migration puts on its source guest, held on the main
 * thread (which owns the guest): auto-converge's CPU throttle, set on every
 * vCPU when the migration thread posts a step, and dirty-limit's control
 * loop, started when the policy engages it (dirty-limit-controller.ts).
 * Both end when the migration ends, whatever the outcome (QEMU:
 * cpu_throttle_stop, cancel-vcpu-dirty-limit); a throttle the user had set
 * (Guest.throttle, ferry run --throttle) is kept under auto-converge's and
 * given back.
 */
import type { Guest } from '../guest/guest.js';
import { DirtyLimitController, type DirtyLimitFigures } from './dirty-limit-controller.js';

export class MigrationThrottles {
  private percent = 0;
  /** The throttle the guest had before auto-converge first stepped (null: it never did). */
  private userThrottle: number | null = null;
  /** dirty-limit's control loop, once the policy engaged it (null: it never did). */
  private dirtyLimit: DirtyLimitController | null = null;
  private ended = false;

  /** `autoConverge`: the capability (the throttle is then reported from 0); `periodMs`: the live x-vcpu-dirty-limit-period. */
  constructor(private readonly guest: Guest, private readonly autoConverge: boolean, private readonly periodMs: () => number) {}

  /** auto-converge's step (the capability's, or the policy's): every vCPU at least `percent`. */
  throttle(percent: number): void {
    if (this.ended) return;
    this.userThrottle ??= this.guest.throttlePercent;
    this.guest.throttle(Math.max(percent, this.userThrottle));
    this.percent = percent;
  }

  /** dirty-limit engaged, or its quota changed. */
  limitDirtyRate(quotaMBPerSec: number): void {
    if (this.ended) return;
    this.dirtyLimit ??= new DirtyLimitController(this.guest, this.periodMs);
    this.dirtyLimit.engage(quotaMBPerSec);
  }

  /** auto-converge's throttle (cpu-throttle-percentage); null when it is off (the capability off, and never engaged by the policy) or ended. */
  get cpuThrottlePercentage(): number | null {
    return !this.ended && (this.autoConverge || this.userThrottle !== null) ? this.percent : null;
  }

  /** dirty-limit's figures of the last period; null unless it is engaged and not ended. */
  get dirtyLimitFigures(): DirtyLimitFigures | null {
    return this.ended ? null : this.dirtyLimit?.figures ?? null;
  }

  /** The migration ended: every throttle ends, the user's own given back. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.userThrottle !== null) this.guest.throttle(this.userThrottle);
    this.dirtyLimit?.stop();
    this.percent = 0;
  }
}
