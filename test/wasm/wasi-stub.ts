/**
 * Just enough of WASI preview 1 to run the test program of
 * test/fixtures/wasm/hello.c, uninstrumented or instrumented: standard
 * output collected, no files, exit by a thrown ProcExit. (The real WASI
 * layer is src/wasm/wasi/, not this.)
 */

export class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
  }
}

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;
const ERRNO_SPIPE = 70;
const FILETYPE_CHARACTER_DEVICE = 2;

export interface WasiStub {
  readonly imports: Record<string, (...args: number[]) => number | bigint | undefined>;
  /** What the program wrote to fd 1 and 2. */
  output(): string;
}

export interface StubHooks {
  /** Called with each piece of output. */
  readonly onOutput?: (text: string) => void;
  /** Called after the stub writes [address, address + length) of guest memory (ferry's WASI layer marks it). */
  readonly onHostWrite?: (address: number, length: number) => void;
}

/** A stub over the memory `memory()` returns (the program's own, or ferry's). */
export function wasiStub(memory: () => WebAssembly.Memory, hooks: StubHooks = {}): WasiStub {
  const chunks: string[] = [];
  const view = () => new DataView(memory().buffer);
  return {
    output: () => chunks.join(''),
    imports: {
      fd_write: (fd: number, iovs: number, count: number, written: number) => {
        if (fd !== 1 && fd !== 2) return ERRNO_BADF;
        const v = view();
        let total = 0;
        for (let i = 0; i < count; i++) {
          const base = v.getUint32(iovs + 8 * i, true);
          const length = v.getUint32(iovs + 8 * i + 4, true);
          const text = Buffer.from(new Uint8Array(memory().buffer, base, length)).toString('utf8');
          chunks.push(text);
          hooks.onOutput?.(text);
          total += length;
        }
        v.setUint32(written, total, true);
        hooks.onHostWrite?.(written, 4);
        return ERRNO_SUCCESS;
      },
      fd_fdstat_get: (fd: number, stat: number) => {
        if (fd > 2) return ERRNO_BADF;
        const v = view();
        for (let i = 0; i < 24; i += 4) v.setUint32(stat + i, 0, true);
        v.setUint8(stat, FILETYPE_CHARACTER_DEVICE);
        hooks.onHostWrite?.(stat, 24);
        return ERRNO_SUCCESS;
      },
      fd_seek: () => ERRNO_SPIPE,
      fd_close: () => ERRNO_SUCCESS,
      proc_exit: (code: number) => {
        throw new ProcExit(code);
      },
    },
  };
}

/** Run `start`, returning the exit code (0 when it returns). */
export function exitCodeOf(start: () => void): number {
  try {
    start();
    return 0;
  } catch (err) {
    if (err instanceof ProcExit) return err.code;
    throw err;
  }
}
