/** Small async helpers for the migration threads: abortable waits with timeouts. */
import { MigrationError } from '../errors.js';

/** Absolute monotonic milliseconds, comparable across threads of one process. */
export function monoMs(): number {
  return performance.timeOrigin + performance.now();
}

export function nowNs(): number {
  return performance.now() * 1e6;
}

/** A one-shot signal that can be resolved or rejected from outside. */
export class Signal<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (err: Error) => void;
  settled = false;

  constructor() {
    this.promise = new Promise<T>((res, rej) => {
      this.resolve = (v) => {
        this.settled = true;
        res(v);
      };
      this.reject = (e) => {
        this.settled = true;
        rej(e);
      };
    });
    this.promise.catch(() => {});
  }
}

/** Wait for `promise`, failing with `what` after `timeoutMs` or when `abort` rejects. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string, abort?: Promise<never>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MigrationError(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race(abort === undefined ? [promise, timeout] : [promise, timeout, abort]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Why a run must stop: the first reason sticks (a later failure is most
 * often a consequence of the first), and every wait raced against
 * `promise` ends with it.
 */
export class StopSignal {
  private readonly signal = new Signal<never>();
  private reason: Error | null = null;

  get promise(): Promise<never> {
    return this.signal.promise;
  }

  /** Stop for `reason`; false if stopped already (the first reason stays). */
  stop(reason: Error): boolean {
    if (this.reason !== null) return false;
    this.reason = reason;
    this.signal.reject(reason);
    return true;
  }

  /** Throw the reason, if stopped. */
  check(): void {
    if (this.reason !== null) throw this.reason;
  }

  /** Sleep `ms`; rejects with the reason if stopped meanwhile. */
  async sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); }), this.signal.promise]);
    } finally {
      clearTimeout(timer); // a stopped thread must not stay alive for the rest of a long sleep (a rate limit's debt)
    }
  }
}

/**
 * A watch on a peer that may go quiet: every quarter of the limit (10 ms to
 * 1 s) `check` gets the time since the last `touch` and the limit, and
 * decides. The timer keeps nothing alive.
 */
export class IdleWatch {
  private lastMs = monoMs();
  private readonly timer: NodeJS.Timeout;

  constructor(limitMs: () => number, check: (idleMs: number, limitMs: number) => void) {
    this.timer = setInterval(() => check(monoMs() - this.lastMs, limitMs()), Math.min(1000, Math.max(10, limitMs() / 4)));
    this.timer.unref();
  }

  /** The peer did something (at `nowMs`). */
  touch(nowMs = monoMs()): void {
    this.lastMs = nowMs;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
