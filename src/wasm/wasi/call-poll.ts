/**
 * poll_oneoff: the only call that blocks, and so the only one a pause can
 * interrupt.
 *
 * Descriptor subscriptions (stdin, stdout, stderr, files) are ready at
 * once: nothing here ever waits for bytes. Clock subscriptions get a
 * deadline on the guest clock: relative timeouts from now, absolute
 * MONOTONIC ones as they are, absolute REALTIME ones as the wall-clock time
 * left, from now. If anything is ready, or a deadline has passed, the call
 * returns at once; else it sleeps with `host.sleepUntil` until the earliest
 * deadline, and reports the clock subscriptions whose deadline that is (the
 * ones it waited for: which events a call reports does not depend on how
 * late the thread woke up).
 *
 * Interrupted by a pause ('paused'), it keeps the deadline as the device's
 * pending sleep, starts Asyncify's unwind and returns 0 without writing
 * anything: the program's stack unwinds, migrates, and is rewound, which
 * calls poll_oneoff again with the same arguments. That call (rewinding)
 * stops the rewind and waits for the saved deadline, not for a new relative
 * timeout (that would sleep the whole time again). The guest clock stops
 * while the guest is paused, so the sleep left at the destination is
 * exactly the sleep left at the pause.
 */
import type { CallContext, WasiCall } from './call-context.js';
import { clockNow } from './calls-process.js';
import { Clock, Errno, EVENT_BYTES, EventType, SUBCLOCK_ABSTIME, SUBSCRIPTION_BYTES } from './wasi-abi.js';
import { fail } from './wasi-errno.js';
import type { PendingSleep } from './wasi-state.js';

/**
 * Subscriptions one call may pass (INVAL beyond, as poll(2) past its limit
 * of descriptors): a pending sleep lists its due subscriptions in the
 * device state, which must stay small.
 */
export const MAX_SUBSCRIPTIONS = 4096;

const U64_MAX = (1n << 64n) - 1n;
/** A deadline past 2^64 - 1 ns (585 years) is never reached: it is that. */
const capped = (ns: bigint): bigint => (ns > U64_MAX ? U64_MAX : ns);

interface Subscription {
  readonly userdata: bigint;
  readonly type: number;
  /** A clock's deadline on the guest clock; null for a descriptor. */
  readonly deadlineNs: bigint | null;
  /** A descriptor's number; the error of an fd_read/fd_write event on it (BADF if it is not open). */
  readonly fd: number;
}

function readSubscription(ctx: CallContext, at: number, now: bigint): Subscription {
  const { mem } = ctx;
  const userdata = mem.u64(at);
  const type = mem.u8(at + 8);
  if (type === EventType.FD_READ || type === EventType.FD_WRITE) return { userdata, type, deadlineNs: null, fd: mem.u32(at + 16) };
  if (type !== EventType.CLOCK) fail(Errno.INVAL);
  const id = mem.u32(at + 16);
  const timeout = mem.u64(at + 24);
  const absolute = (mem.u16(at + 40) & SUBCLOCK_ABSTIME) !== 0;
  const clockTime = clockNow(ctx, id); // INVAL for an unknown clock
  if (!absolute) return { userdata, type, deadlineNs: capped(now + timeout), fd: 0 };
  const left = timeout - clockTime;
  if (id === Clock.REALTIME) return { userdata, type, deadlineNs: capped(now + (left > 0n ? left : 0n)), fd: 0 };
  return { userdata, type, deadlineNs: timeout, fd: 0 };
}

/** What the call waits for: nothing (null) if a descriptor is ready or a deadline passed, else the earliest deadline and its subscriptions. */
function plan(subs: readonly Subscription[], now: bigint): PendingSleep | null {
  const clocks = subs.filter((s) => s.deadlineNs !== null);
  if (clocks.length < subs.length || clocks.length === 0) return null;
  let deadlineNs = clocks[0].deadlineNs!;
  for (const s of clocks) if (s.deadlineNs! < deadlineNs) deadlineNs = s.deadlineNs!;
  if (deadlineNs <= now) return null;
  return { deadlineNs, due: subs.flatMap((s, i) => (s.deadlineNs === deadlineNs ? [i] : [])) };
}

/** The events of the subscriptions `ready`. */
function events(ctx: CallContext, subs: readonly Subscription[], ready: readonly number[]): Uint8Array {
  const out = new Uint8Array(ready.length * EVENT_BYTES);
  const view = new DataView(out.buffer);
  ready.forEach((i, k) => {
    const s = subs[i];
    const at = k * EVENT_BYTES;
    view.setBigUint64(at, s.userdata, true);
    view.setUint8(at + 10, s.type);
    if (s.deadlineNs !== null) return;
    const entry = ctx.state.fds.entries.get(s.fd);
    if (entry === undefined) view.setUint16(at + 8, Errno.BADF, true);
    else if (s.type === EventType.FD_READ) view.setBigUint64(at + 16, BigInt(readable(ctx, s.fd)), true);
  });
  return out;
}

/** Bytes fd_read would return now (stdin's rest, a file's rest); 0 for what has no such count. */
function readable(ctx: CallContext, fd: number): number {
  const entry = ctx.state.fds.get(fd);
  if (entry.kind === 'stdin') return Math.max(0, ctx.state.stdin.length - entry.offset);
  if (entry.kind === 'file') return Math.max(0, ctx.state.fs.file(entry.ino).size - entry.offset);
  return 0;
}

function pollOneoff(ctx: CallContext, inPtr: number, outPtr: number, count: number, countPtr: number): number {
  const { host, mem, state } = ctx;
  if (count === 0 || count > MAX_SUBSCRIPTIONS) fail(Errno.INVAL);
  mem.check(inPtr, count * SUBSCRIPTION_BYTES);
  mem.check(outPtr, count * EVENT_BYTES);
  mem.check(countPtr, 4);
  const rewinding = host.rewinding();
  if (rewinding) host.stopRewind();
  const now = host.guestNowNs();
  const subs = Array.from({ length: count }, (_, i) => readSubscription(ctx, inPtr + i * SUBSCRIPTION_BYTES, now));
  const sleep = rewinding ? resumed(state.pendingSleep, count) : plan(subs, now);
  state.pendingSleep = null;
  if (sleep !== null && host.sleepUntil(sleep.deadlineNs) === 'paused') {
    state.pendingSleep = sleep;
    host.startUnwind();
    return Errno.SUCCESS;
  }
  const ready = sleep?.due ?? subs.flatMap((s, i) => (s.deadlineNs === null || s.deadlineNs <= now ? [i] : []));
  mem.store(outPtr, events(ctx, subs, ready));
  mem.storeU32(countPtr, ready.length);
  return Errno.SUCCESS;
}

/** The saved sleep a rewound call continues; a rewind with none, or for other subscriptions, is the runner's mistake. */
function resumed(pending: PendingSleep | null, count: number): PendingSleep {
  if (pending === null || pending.due.some((i) => i >= count)) {
    throw new Error(`poll_oneoff re-run by a rewind, but the device holds ${pending === null ? 'no pending sleep' : 'a sleep for other subscriptions'}`);
  }
  return pending;
}

export const pollCalls: Record<string, WasiCall> = {
  poll_oneoff: (ctx, inPtr: number, outPtr: number, count: number, countPtr: number) => pollOneoff(ctx, inPtr, outPtr, count, countPtr),
};
