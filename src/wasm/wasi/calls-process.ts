/**
 * The calls about the process: arguments, environment, clocks, random,
 * exit, signals, yielding, and the socket calls (refused: see the table in
 * wasi-device.ts).
 *
 * Clocks: MONOTONIC and the two CPU-time clocks read the guest clock, which
 * stops while the guest is paused and continues at the destination, so a
 * program measuring an interval never sees the migration's downtime;
 * REALTIME is the host's wall clock, which does not stop (it is the time of
 * day, on whichever machine runs the program).
 */
import { type CallContext, type WasiCall, u64 } from './call-context.js';
import { stringsBytes } from './memory-access.js';
import { Clock, Errno } from './wasi-abi.js';
import { fail } from './wasi-errno.js';

/** What clock_res_get reports for every clock: 1 µs (the guest clock and the wall clock are both finer than that). */
export const CLOCK_RESOLUTION_NS = 1000n;

/** Thrown by proc_exit after it set the device's exit code: the program's run ends here. */
export class WasiExit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`the program exited with code ${code}`);
    this.name = 'WasiExit';
    this.code = code;
  }
}

/** The time of clock `id`, ns. */
export function clockNow(ctx: CallContext, id: number): bigint {
  switch (id) {
    case Clock.REALTIME: return ctx.wallNowNs();
    case Clock.MONOTONIC:
    case Clock.PROCESS_CPUTIME:
    case Clock.THREAD_CPUTIME: return ctx.host.guestNowNs();
    default: return fail(Errno.INVAL);
  }
}

const sizes = (ctx: CallContext, list: readonly string[], countPtr: number, sizePtr: number): number => {
  ctx.mem.check(countPtr, 4);
  ctx.mem.check(sizePtr, 4);
  ctx.mem.storeU32(countPtr, list.length);
  ctx.mem.storeU32(sizePtr, stringsBytes(list));
  return Errno.SUCCESS;
};

const strings = (ctx: CallContext, list: readonly string[], ptrs: number, buf: number): number => {
  ctx.mem.storeStrings(ptrs, buf, list);
  return Errno.SUCCESS;
};

const notSocket = (ctx: CallContext, fd: number): number => {
  ctx.state.fds.get(fd); // BADF if it is not open
  return Errno.NOTSOCK;
};

export const processCalls: Record<string, WasiCall> = {
  args_sizes_get: (ctx, count: number, size: number) => sizes(ctx, ctx.state.args, count, size),
  args_get: (ctx, ptrs: number, buf: number) => strings(ctx, ctx.state.args, ptrs, buf),
  environ_sizes_get: (ctx, count: number, size: number) => sizes(ctx, ctx.state.env, count, size),
  environ_get: (ctx, ptrs: number, buf: number) => strings(ctx, ctx.state.env, ptrs, buf),

  clock_res_get: (ctx, id: number, out: number) => {
    clockNow(ctx, id); // INVAL for an unknown clock
    ctx.mem.storeU64(out, CLOCK_RESOLUTION_NS);
    return Errno.SUCCESS;
  },
  clock_time_get: (ctx, id: number, _precision: bigint, out: number) => {
    ctx.mem.check(out, 8);
    ctx.mem.storeU64(out, u64(clockNow(ctx, id)));
    return Errno.SUCCESS;
  },

  random_get: (ctx, buf: number, length: number) => {
    ctx.mem.check(buf, length);
    ctx.mem.store(buf, ctx.state.random.bytes(length));
    return Errno.SUCCESS;
  },

  proc_exit: (ctx, code: number) => {
    ctx.state.exitCode = code;
    throw new WasiExit(code);
  },
  /** Signals are not delivered: a program cannot raise one (preview 1 dropped the call later). */
  proc_raise: () => Errno.NOSYS,
  /** One vCPU per program: nothing to yield to. */
  sched_yield: () => Errno.SUCCESS,

  sock_accept: (ctx, fd: number) => notSocket(ctx, fd),
  sock_recv: (ctx, fd: number) => notSocket(ctx, fd),
  sock_send: (ctx, fd: number) => notSocket(ctx, fd),
  sock_shutdown: (ctx, fd: number) => notSocket(ctx, fd),
};
