/**
 * Migration parameters: each declared once, with its unit in its name, its
 * default and where the default comes from (STYLE.md habit 8), and one
 * validator whose messages name the parameter and what was wrong.
 */
import { InvalidArgumentError } from '../errors.js';

export interface MigrationParameters {
  /**
   * Longest acceptable pause of the guest, ms. Default 300: QEMU's
   * `downtime-limit` default (migration/options.c, DEFAULT_MIGRATE_SET_DOWNTIME).
   */
  readonly downtimeLimitMs: number;
  /**
   * Bytes per second the stream may use, enforced per 100 ms window; 0 is
   * unlimited. ferry's default is unlimited; QEMU 7.2's `max-bandwidth`
   * default is 128 MiB/s (MAX_THROTTLE), a limit from when migration shared
   * a 1 Gbit/s link with the guest's traffic.
   */
  readonly maxBandwidthBytesPerSec: number;
  /**
   * Bandwidth to assume for the switchover decision instead of the
   * estimate, bytes/s; 0 uses the estimate. As QEMU's
   * `avail-switchover-bandwidth` (8.2+).
   */
  readonly availSwitchoverBandwidthBytesPerSec: number;
  /**
   * Share of one core the migration thread may use, percent; 100 is no cap
   * (default). On 2 cores the migration thread competes with the vCPUs.
   */
  readonly cpuSharePercent: number;
  /** Limit for the vCPUs to acknowledge the switchover pause, ms (default 1000). */
  readonly pauseTimeoutMs: number;
  /** Limit to connect, and to wait for each answer at switchover (LOADED, RESUMED), ms (default 10000). */
  readonly switchoverTimeoutMs: number;
  /**
   * Longest time the destination may acknowledge nothing while bytes are in
   * flight, ms (default 30000): a destination that stops reading holds the
   * source's send slots, never its memory, and this ends the wait. QEMU has
   * no such limit and relies on TCP; a hung peer then stalls migration for
   * the kernel's retransmission timeout (~15 min).
   */
  readonly idleTimeoutMs: number;
  /** `mainloop` mode only (the 2010 experiment): longest step per 100 ms tick, ms; 0 is no cap. */
  readonly mainloopStepCapMs: number;
  /** `mainloop` mode only: zero pages sent one per record, each charged this many budget bytes (QEMU 2010: 9); 0 is off. */
  readonly zeroPageBudgetBytes: number;
}

export const DEFAULT_PARAMETERS: MigrationParameters = Object.freeze({
  downtimeLimitMs: 300,
  maxBandwidthBytesPerSec: 0,
  availSwitchoverBandwidthBytesPerSec: 0,
  cpuSharePercent: 100,
  pauseTimeoutMs: 1000,
  switchoverTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  mainloopStepCapMs: 0,
  zeroPageBudgetBytes: 0,
});

const RANGES: Record<keyof MigrationParameters, [min: number, max: number]> = {
  downtimeLimitMs: [1, 2_000_000], // QEMU caps downtime-limit at 2000 s
  maxBandwidthBytesPerSec: [0, Number.MAX_SAFE_INTEGER],
  availSwitchoverBandwidthBytesPerSec: [0, Number.MAX_SAFE_INTEGER],
  cpuSharePercent: [1, 100],
  pauseTimeoutMs: [1, 600_000],
  switchoverTimeoutMs: [1, 3_600_000],
  idleTimeoutMs: [1, 3_600_000],
  mainloopStepCapMs: [0, 60_000],
  zeroPageBudgetBytes: [0, 4096],
};

/** Merge `changes` over `base`, checking each value; unknown names are errors. */
export function withParameters(base: MigrationParameters, changes: Partial<Record<string, unknown>>): MigrationParameters {
  const out: Record<string, number> = { ...base };
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    const range = RANGES[name as keyof MigrationParameters];
    if (range === undefined) {
      throw new InvalidArgumentError(`unknown migration parameter ${JSON.stringify(name)}; known: ${Object.keys(RANGES).join(', ')}`);
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || !Number.isInteger(value) || value < range[0] || value > range[1]) {
      throw new InvalidArgumentError(`migration parameter ${name} must be an integer in [${range[0]}, ${range[1]}], got ${JSON.stringify(value)}`);
    }
    out[name] = value;
  }
  return Object.freeze(out as unknown as MigrationParameters);
}
