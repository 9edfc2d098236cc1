/**
 * The progress lines of dirty-limit: one when it engages (its quota and
 * the vCPUs' throttles), and one each time a vCPU's throttle has moved by
 * NOTE_STEP_PERCENT or more since the last line (the throttles follow the
 * rates every period, and a line a second would bury the passes).
 */
import type { VcpuDirtyLimit } from '../migration/dirty-limit-controller.js';

/** Least change of a vCPU's throttle, percent, worth a new line. */
export const NOTE_STEP_PERCENT = 10;

export class DirtyLimitNotes {
  private shown: readonly number[] | null = null;

  /** The line for query-migrate's x-ferry-vcpu-dirty-limit (undefined: not engaged), or null when nothing is worth saying. */
  note(vcpus: readonly VcpuDirtyLimit[] | undefined): string | null {
    if (vcpus === undefined || vcpus.length === 0) return null;
    const throttles = vcpus.map((v) => v['throttle-percentage']);
    const first = this.shown === null;
    if (!first && !throttles.some((p, i) => Math.abs(p - (this.shown![i] ?? 0)) >= NOTE_STEP_PERCENT)) return null;
    this.shown = throttles;
    const each = vcpus.map((v) => `vCPU ${v['cpu-index']} ${v['throttle-percentage']} % (${v['current-rate']} MB/s)`).join(', ');
    return first
      ? `dirty-limit: engaged, each vCPU limited to ${vcpus[0]['limit-rate']} MB/s (the guest dirties faster than the migration sends): ${each}`
      : `dirty-limit: throttles ${each}`;
  }
}
