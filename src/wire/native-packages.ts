/**
 * The native packages behind zstd and lz4, loaded lazily. They are
 * optionalDependencies: `npm ci` goes on when one fails to install (zstd-napi
 * builds from its bundled source with node-gyp; lz4-napi ships prebuilt
 * per-platform packages), so importing ferry never requires them. A method
 * whose package is missing is reported by `compressionUnavailable` in words
 * naming the package and its load error, never a crash at import.
 *
 * Why these packages (issue 15; figures in the report of the branch that
 * added them):
 * - zstd-napi: Node-API, synchronous, usable in worker threads, and its
 *   low-level binding compresses into a buffer we own (`CCtx.compress2`) and
 *   decompresses into exactly the packet's destination (`DCtx.decompress`):
 *   zstd cannot write past it, so a frame declaring any size allocates
 *   nothing. Its install tries a prebuilt download first (prebuild-install,
 *   which fails at once where only the registry is reachable), then builds
 *   zstd 1.5.7 from the source inside its npm tarball.
 *   (@mongodb-js/zstd 7 has an async API only, and its tarball carries
 *   neither binaries nor zstd's source: its fallback downloads zstd.)
 * - lz4-napi (lz4_flex, Rust): prebuilt binaries as per-platform npm
 *   packages, synchronous. Its block format prefixes the raw length (u32 LE)
 *   and allocates that much to decompress, so the prefix is checked against
 *   the packet's declared length first (lz4-codec.ts).
 */
import { createRequire } from 'node:module';

/** Loads a package by its module name (`require`), throwing when it is missing. Tests inject one. */
export type NativeLoader = (moduleName: string) => unknown;

/** The package each native method needs, the module loaded from it, and a property it must have. */
export const NATIVE_PACKAGES = {
  zstd: { pkg: 'zstd-napi', module: 'zstd-napi/binding', has: 'CCtx' },
  lz4: { pkg: 'lz4-napi', module: 'lz4-napi', has: 'uncompressSync' },
} as const;
export type NativeMethod = keyof typeof NATIVE_PACKAGES;

export type Loaded = { readonly module: unknown; readonly reason?: undefined } | { readonly module?: undefined; readonly reason: string };

const requireHere = createRequire(import.meta.url);
export const defaultLoader: NativeLoader = (name) => requireHere(name);

/** The default loader's results, failures included (a failed `require` is not cached by Node and would search the disk again). */
const loaded = new Map<NativeMethod, Loaded>();

/** The first line of an error's message: a require error appends its whole require stack. */
function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0];
}

function load(method: NativeMethod, loader: NativeLoader): Loaded {
  const { pkg, module: name, has } = NATIVE_PACKAGES[method];
  const needs = `${method} needs the optional package ${pkg}`;
  let module: unknown;
  try {
    module = loader(name);
  } catch (err) {
    return { reason: `${needs}, which did not install: ${firstLine(err)}` };
  }
  if (typeof (module as Record<string, unknown> | null)?.[has] !== 'function') {
    return { reason: `${needs}, whose module ${name} has no ${has}: an incompatible version` };
  }
  return { module };
}

/**
 * Tests only: the methods named here (comma-separated) behave as if their
 * package had not installed, for the default loader, in every thread that
 * starts after it is set (worker threads copy the environment). Read at
 * each call, so a test can set and clear it around one migration.
 */
export const SIMULATE_MISSING_ENV = 'FERRY_TEST_NATIVE_MISSING';

/** The package of `method`, or why it cannot be used here. Results of the default loader are kept. */
export function loadNative(method: NativeMethod, loader: NativeLoader = defaultLoader): Loaded {
  if (loader !== defaultLoader) return load(method, loader);
  if (process.env[SIMULATE_MISSING_ENV]?.split(',').includes(method) === true) {
    return { reason: `${method} needs the optional package ${NATIVE_PACKAGES[method].pkg}, which did not install: (simulated by ${SIMULATE_MISSING_ENV})` };
  }
  let result = loaded.get(method);
  if (result === undefined) {
    result = load(method, loader);
    loaded.set(method, result);
  }
  return result;
}
