/**
 * Watch the RAM sender's steps in this process. In `mainloop` mode the
 * source session runs on the main thread, so its steps can be seen from a
 * test: how long each step was allowed to run (the step cap) and what each
 * zero page was charged (the zero-page budget), as the session passed them
 * on when the step started.
 */
import { RamSender } from '../../src/migration/ram-sender.js';
import { until } from '../waits.js';

export interface StepSeen {
  /** The step's deadline less the time it started, ns (Infinity: no cap). */
  readonly allowedNs: number;
  readonly zeroPageBudgetBytes: number;
}

export interface StepSpy {
  readonly steps: StepSeen[];
  /**
   * Wait for a step that satisfies `ok`, among at most `maxSteps` steps from
   * now (a state, not a duration; mainloop mode takes one step per 100 ms
   * tick). Rejects naming `what` when the steps run out, or after 30 s.
   */
  waitFor(ok: (s: StepSeen) => boolean, what: string, maxSteps?: number): Promise<StepSeen>;
  restore(): void;
}

export function spySteps(): StepSpy {
  const original = RamSender.prototype.step;
  const steps: StepSeen[] = [];
  RamSender.prototype.step = function (this: RamSender, deadlineNs, byteBudget, nowNs) {
    const budget = (this as unknown as { zeroPageBudgetBytes: number }).zeroPageBudgetBytes;
    steps.push({ allowedNs: deadlineNs - nowNs(), zeroPageBudgetBytes: budget });
    return original.call(this, deadlineNs, byteBudget, nowNs);
  };
  return {
    steps,
    waitFor(ok, what, maxSteps = 30) {
      const from = steps.length;
      return until(`a step ${what} (within ${maxSteps} steps)`, () => {
        const seen = steps.slice(from);
        const hit = seen.find(ok);
        if (hit !== undefined) return hit;
        if (seen.length < maxSteps) return undefined;
        const last = seen[seen.length - 1];
        throw new Error(`no step ${what} among ${seen.length} steps (the last allowed ${last.allowedNs} ns, charged ${last.zeroPageBudgetBytes} per zero page)`);
      }, 30_000);
    },
    restore() {
      RamSender.prototype.step = original;
    },
  };
}
