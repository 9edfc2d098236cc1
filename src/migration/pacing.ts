/**
 * How the source paces its send steps: the strategy behind the `mode`
 * option, chosen once per migration.
 *
 * - thread (ferry's way): the session runs on its own thread; a step runs
 *   at most STEP_NS, hands what it encoded to the channel and yields to
 *   the thread's event loop (socket I/O, messages), sleeping as long as
 *   the CPU-share cap asks. A step stopped by a full writer waits for room
 *   (the sender was held back: a link-limited window for the bandwidth
 *   estimate).
 * - mainloop (the benchmark's reproduction of the 2010 thread): the session
 *   runs on the main event loop, one step per tick of QEMU 2010's 100 ms
 *   migration timer, each step capped by the `mainloopStepCapMs` parameter,
 *   and zero pages charged `zeroPageBudgetBytes` each as 2010 did (both
 *   read live: set-parameters during a migration takes effect at the next
 *   step).
 */
import { SLOT_BYTES } from '../wire/frame-writer.js';
import type { MigrationParameters } from './parameters.js';
import type { StepOutcome } from './ram-sender.js';
import { monoMs, nowNs, yieldToLoop } from './waiter.js';

/** thread: longest stretch of sending before the thread yields to its event loop (socket I/O, messages). */
export const STEP_NS = 5_000_000;
/** mainloop: the period of QEMU 2010's migration timer. */
export const MAINLOOP_TICK_MS = 100;

/** Shortest time between the starts of two passes, ms (see restOfPass). */
export const MIN_PASS_MS = 10;

/**
 * Between two passes, in either mode: a pass shorter than MIN_PASS_MS is
 * followed by a wait for the rest (started at `startedMs`, monoMs): passes
 * over a nearly clean guest would otherwise spin the thread (and flood the
 * main thread with statistics) while nothing changes.
 */
export async function restOfPass(startedMs: number, sleep: (ms: number) => Promise<void>): Promise<void> {
  const left = MIN_PASS_MS - (monoMs() - startedMs);
  if (left > 0) await sleep(left);
}

/** What a pacer may use of the session. */
export interface PacerHost {
  /** The live parameters (set-parameters changes them during the migration). */
  parameters(): MigrationParameters;
  /** The thread's own accounting: time in send steps (read), asleep under the CPU cap (added to). */
  readonly figures: { readonly busyNs: number; capSleepNs: number };
  /** Hand what is encoded to the channel. */
  flush(): void;
  /** The sender was held back by the link (for the bandwidth estimate). */
  heldBack(): void;
  /** Wait until the writer can take `bytes` more. */
  waitRoom(bytes: number): Promise<void>;
  /** Sleep `ms`; ends early, rejecting, if the migration stops. */
  sleep(ms: number): Promise<void>;
}

export interface Pacer {
  /** Budget bytes charged per zero page, sent one per record; 0: ferry's zero runs (see RamSender). */
  zeroPageBudgetBytes(): number;
  /** Setup is done: the CPU share is counted from now. */
  start(): void;
  /** How long the next step may run, ns. */
  stepNs(): number;
  /** Between two steps of a pass, the last of which stopped for `outcome`; `unlimited`: the switchover pass (the guest is paused). */
  between(outcome: Exclude<StepOutcome, 'pass-done'>, unlimited: boolean): Promise<void>;
}

export function createPacer(mode: 'thread' | 'mainloop', host: PacerHost): Pacer {
  return mode === 'thread' ? new ThreadPacer(host) : new MainloopPacer(host);
}

class ThreadPacer implements Pacer {
  private startNs = 0;

  constructor(private readonly host: PacerHost) {}

  zeroPageBudgetBytes(): number {
    return 0;
  }

  start(): void {
    this.startNs = nowNs();
  }

  stepNs(): number {
    return STEP_NS;
  }

  async between(outcome: Exclude<StepOutcome, 'pass-done'>, unlimited: boolean): Promise<void> {
    if (outcome === 'blocked') {
      this.host.heldBack();
      this.host.flush();
      await this.host.waitRoom(SLOT_BYTES);
      return;
    }
    // Hand over what the step encoded (a slot may take seconds to fill with
    // zero runs), so the destination loads alongside, not all at the end.
    this.host.flush();
    if (unlimited) await yieldToLoop(); // the switchover pass: the guest is paused, no cap
    else await this.capCpu();
  }

  /**
   * The CPU budget: sleep so that the time this thread spends sending stays
   * within cpuSharePercent of the time since setup (waits for the network
   * count as idle). Independent of the byte budget.
   */
  private async capCpu(): Promise<void> {
    const share = this.host.parameters().cpuSharePercent;
    const owedNs = share >= 100 ? 0 : (this.host.figures.busyNs * 100) / share - (nowNs() - this.startNs);
    if (owedNs <= 0) {
      await yieldToLoop();
      return;
    }
    const t = nowNs();
    await this.host.sleep(owedNs / 1e6);
    this.host.figures.capSleepNs += nowNs() - t;
  }
}

class MainloopPacer implements Pacer {
  constructor(private readonly host: PacerHost) {}

  zeroPageBudgetBytes(): number {
    return this.host.parameters().zeroPageBudgetBytes;
  }

  start(): void {}

  stepNs(): number {
    const capMs = this.host.parameters().mainloopStepCapMs;
    return capMs > 0 ? capMs * 1e6 : Infinity;
  }

  /** One step per tick of the main loop's 100 ms timer, whatever stopped it. */
  async between(outcome: Exclude<StepOutcome, 'pass-done'>): Promise<void> {
    if (outcome === 'blocked') this.host.flush();
    await this.host.sleep(MAINLOOP_TICK_MS);
  }
}
