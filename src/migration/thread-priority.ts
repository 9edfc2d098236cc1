/**
 * The channels' threads yield to the control loop (DESIGN.md invariant 5).
 *
 * With several channels a migration has more busy threads than this
 * machine has cores: on each side a thread per channel (the source's
 * senders, the destination's loaders), beside the migration thread, the
 * destination's socket thread and the guest's vCPUs. The kernel then
 * shares the cores among them all, and the process's main thread, which
 * answers QMP and the user, waits its turn behind them: the control
 * loop's p99 rose to 5.5-7.8 ms on 2 channels here (BENCHMARKS "Several
 * channels"). A channel thread therefore asks for a lower share at its
 * start: nice CHANNEL_NICE on its own thread only. With a core to spare
 * nothing changes (nice is a share, not a cap); when the cores are
 * contended, the main thread and the vCPUs run first.
 *
 * Only on Linux, where getpriority/setpriority with pid 0 name the calling
 * thread (a thread is a task of its own); elsewhere the same call would
 * renice the whole process, so nothing is done. A refusal (a sandbox that
 * forbids it) is ignored: the priority is a preference, not a rule.
 */
import os from 'node:os';

/** The nice value of a channel's thread: a weight of about a tenth of a normal thread's (Linux's CFS: 1024 at 0, 110 at 10). */
export const CHANNEL_NICE = 10;

/** Lower the calling thread's priority to `nice` (see top); whether it was done. */
export function lowerThisThread(nice = CHANNEL_NICE): boolean {
  if (process.platform !== 'linux') return false;
  try {
    if (os.getPriority() >= nice) return true;
    os.setPriority(nice);
    return true;
  } catch {
    return false;
  }
}
