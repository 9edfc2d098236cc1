/**
 * When a live pass ends before it has walked all of RAM: QEMU's early
 * sync, kept to the migrations whose passes are a throttle's periods.
 *
 * QEMU (7.2, ram_state_pending and migration_iteration_run) does not wait
 * for a round over RAM to end before it syncs the dirty bitmap: once the
 * dirty pages it has not sent yet fit bandwidth x downtime-limit, it syncs
 * at once and asks its completion rule again. Auto-converge and dirty-limit
 * measure a period from sync to sync, so that early sync shortens each
 * period by the time the rest would have taken: at QEMU's 300 ms limit on
 * the 1 Gbit/s link, (537 - 35) MB / 119 MB/s = 4.2 s instead of 4.5 for a
 * 512 MiB guest, and the throttle reaches 99 % in 18 such periods.
 *
 * The rule: end the pass now when the switchover rule (switchover-rule.ts),
 * asked of the dirty pages not sent yet *without* a sync, would switch over.
 * The count without a sync is a lower bound (pages dirtied behind the
 * cursor are not in it yet); the session then syncs and asks the rule for
 * real, which iterates if the lower bound was too low. Nothing is lost: the
 * pages the pass did not reach stay dirty, and the next pass (which starts
 * again at the first page, as every ferry pass does) or the final one
 * sends them.
 *
 * Only while a throttle remedy is on (the capability auto-converge or
 * dirty-limit, or the policy's ladder engaged one): there a shorter period
 * is what makes the throttle, and so the migration, finish sooner, and the
 * throttled guest pays for every second. Without one, ferry finishes the
 * pass: the rest goes while the guest runs, which costs at most the
 * downtime limit in total time and leaves the pause only what was dirtied
 * meanwhile (QEMU would pause for up to the whole limit). A deviation from
 * QEMU, listed in README's QMP section.
 *
 * On several channels (multifd) a pass still walks all of RAM: each
 * channel walks its stripe on its own thread, and ending them early would
 * need a word to every channel mid-pass; the auto-converge rows do not use
 * channels.
 *
 * What it ignores: the pass's own dirtying ahead of the cursor (found when
 * the pass reaches it, so the pages not sent are undercounted by it), as
 * the lower bound above says.
 */
import { decideSwitchover, type SwitchoverInputs } from './switchover-rule.js';

export interface EarlyEndInputs extends SwitchoverInputs {
  /** A throttle remedy is on: auto-converge or dirty-limit (the capability, or engaged by the policy). */
  readonly throttling: boolean;
  /** The pass is the final one (the guest paused): it always ends at the end of RAM. */
  readonly final: boolean;
}

/** Whether the live pass under way should end now (see the top); `remainingPages` is the count without a sync. */
export function passEndsEarly(i: EarlyEndInputs): boolean {
  // With nothing unsent the walk has only clean ranges left: it ends soon anyway.
  if (!i.throttling || i.final || i.toFile || i.remainingPages === 0) return false;
  return decideSwitchover(i).switchover;
}
