/**
 * How long pre-copy will take to converge, predicted from the last pass's
 * figures: a pure function, reported after every pass (migration-policy.ts
 * puts it beside the convergence observation).
 *
 * The model is the seed thread's arithmetic (1 Gbit/s x 30 ms = 100 MB/s x
 * 30 ms = 3 MB: what may remain at the switchover) carried pass by pass:
 *
 *   - what may remain at the switchover is what the link sends in the
 *     downtime limit less the fixed switchover cost: T = (limit - fixed) x B;
 *   - a pass sends what remains, R, in R / B seconds, while the guest
 *     dirties D bytes a second: the next pass has R x D / B to send;
 *   - so with r = D / B < 1 the remainders fall geometrically, R_k = R x r^k,
 *     and the rule switches over after the first n passes with R_n <= T:
 *     n = ceil(log(T / R) / log r), taking R / B x (1 - r^n) / (1 - r),
 *     plus the downtime itself (the fixed cost and R_n / B: within the limit);
 *   - with r >= 1 (the guest dirties at least as fast as the link sends)
 *     the remainder never shrinks: pre-copy alone never converges.
 *
 * It ignores what the guest dirties being bounded by its working set (a
 * pass cannot find more dirty than the guest has pages: the remainder then
 * stays flat instead of growing, which changes nothing here), and changes
 * of either rate after the pass it was given: it is a forecast from one
 * pass, said as such ("at the last pass's rates").
 */

export interface PredictionInputs {
  /** Bytes left after the last pass. */
  readonly remainingBytes: number;
  /** What the guest dirtied during the last pass, bytes/s. */
  readonly dirtyBytesPerSec: number;
  /** The bandwidth the switchover rule used, bytes/s (0: none measured yet). */
  readonly bandwidthBytesPerSec: number;
  readonly downtimeLimitMs: number;
  /** The switchover's fixed cost, ms (switchover-rule.ts). */
  readonly fixedCostMs: number;
}

export type Prediction =
  | { readonly kind: 'converges'; readonly passes: number; readonly ms: number; readonly words: string }
  | { readonly kind: 'never'; readonly words: string }
  | { readonly kind: 'unknown'; readonly words: string };

/** Passes beyond which a prediction says "never" rather than a number (r just under 1). */
export const MAX_PREDICTED_PASSES = 1000;

export function predictConvergence(i: PredictionInputs): Prediction {
  const b = i.bandwidthBytesPerSec;
  if (!(b > 0)) return { kind: 'unknown', words: 'no prediction yet: no bandwidth measured' };
  const target = ((i.downtimeLimitMs - i.fixedCostMs) / 1000) * b;
  if (target <= 0) {
    return { kind: 'never', words: `never: the downtime limit (${i.downtimeLimitMs} ms) is not above the switchover's fixed cost (${i.fixedCostMs} ms)` };
  }
  const r = i.dirtyBytesPerSec / b;
  /** The downtime of sending `left` bytes at the switchover. */
  const downtime = (left: number) => i.fixedCostMs + (left / b) * 1000;
  if (i.remainingBytes <= target) return converges(0, downtime(i.remainingBytes));
  if (r >= 1) {
    return { kind: 'never', words: `never by pre-copy alone at the last pass's rates: the guest dirties ${mibps(i.dirtyBytesPerSec)} against ${mibps(b)}` };
  }
  const passes = r === 0 ? 1 : Math.ceil(Math.log(target / i.remainingBytes) / Math.log(r));
  if (passes > MAX_PREDICTED_PASSES) {
    return { kind: 'never', words: `never in practice: more than ${MAX_PREDICTED_PASSES} passes at the last pass's rates (the guest dirties ${mibps(i.dirtyBytesPerSec)} against ${mibps(b)})` };
  }
  const sendMs = ((i.remainingBytes / b) * (1 - r ** passes)) / (1 - r) * 1000;
  return converges(passes, sendMs + downtime(i.remainingBytes * r ** passes));
}

function converges(passes: number, ms: number): Prediction {
  const when = passes === 0 ? 'at the next decision' : `in ${passes} more pass${passes === 1 ? '' : 'es'}`;
  return { kind: 'converges', passes, ms, words: `converges ${when}, about ${secondsText(ms)} s at the last pass's rates` };
}

const mibps = (bytesPerSec: number) => `${(bytesPerSec / 2 ** 20).toFixed(1)} MiB/s`;
const secondsText = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 0);
