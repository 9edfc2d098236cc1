/**
 * Transparent huge pages for guest RAM: the one module that calls the
 * optional addon ferry-hugepages (native/hugepages).
 *
 * A RAM block is a shared WebAssembly.Memory whose pages the kernel commits
 * on first touch, 4 KiB at a time. With THP in `madvise` mode (the usual
 * default) a mapping gets 2 MiB pages only after madvise(MADV_HUGEPAGE),
 * which Node cannot call: the addon does, over a typed array's range aligned
 * inward to 2 MiB. Advice given before first touch makes the faults that
 * commit the memory 512 times fewer (issue 15: a destination writing 2 GiB
 * into fresh memory pays for its page faults).
 *
 * Huge pages are reachable when the addon loaded and the kernel's mode
 * (/sys/kernel/mm/transparent_hugepage/enabled) is `madvise` or `always`.
 * Otherwise `hugePagesSupport` says why, in words naming what it would take,
 * and `requireHugePages` throws that as a HugePagesUnavailableError: asking
 * for huge pages where they cannot be had is refused, never ignored.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { HugePagesUnavailableError } from '../errors.js';
import type { RamBlock } from './ram-block.js';

/** The addon's one function: advise the 2 MiB pages inside `view`'s bytes; returns the bytes advised. */
export interface HugePagesAddon {
  adviseHuge(view: ArrayBufferView): number;
}

/** Loads the addon's package, throwing when it is missing. Tests inject one. */
export type HugePagesLoader = () => unknown;

/** Reads a file as text (tests inject one for the kernel's files). */
export type ReadText = (path: string) => string;

export type ThpMode = 'always' | 'madvise' | 'never';

export type HugePagesSupport =
  | { readonly addon: HugePagesAddon; readonly mode: ThpMode; readonly reason?: undefined }
  | { readonly addon?: undefined; readonly reason: string };

/** What a destination (or a source) reports of its huge pages. */
export interface HugePagesFigures {
  /** Bytes of guest RAM advised (each block's 2 MiB pages). */
  readonly advisedBytes: number;
  /** The process's AnonHugePages (/proc/self/smaps_rollup) when read, bytes; null where it cannot be read. */
  readonly anonHugeBytes: number | null;
}

export const HUGE_PAGES_PACKAGE = 'ferry-hugepages';
export const THP_ENABLED_PATH = '/sys/kernel/mm/transparent_hugepage/enabled';
const SMAPS_ROLLUP_PATH = '/proc/self/smaps_rollup';

const requireHere = createRequire(import.meta.url);
export const defaultHugePagesLoader: HugePagesLoader = () => requireHere(HUGE_PAGES_PACKAGE);
const readText: ReadText = (path) => readFileSync(path, 'utf8');

/** The default loader's result, failure included (a failed `require` is not cached by Node). */
let loaded: HugePagesSupport | undefined;

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0];
}

/** The kernel's THP mode (the bracketed word of `enabled`), or why it cannot be read. */
export function thpMode(read: ReadText = readText): ThpMode | { readonly error: string } {
  let text: string;
  try {
    text = read(THP_ENABLED_PATH);
  } catch (err) {
    return { error: firstLine(err) };
  }
  const mode = /\[(always|madvise|never)\]/.exec(text)?.[1];
  return mode === undefined ? { error: `unrecognised contents ${JSON.stringify(text.trim())}` } : mode as ThpMode;
}

function check(loader: HugePagesLoader, read: ReadText): HugePagesSupport {
  const mode = thpMode(read);
  if (typeof mode !== 'string') {
    return { reason: `huge pages need the kernel's transparent huge pages (CONFIG_TRANSPARENT_HUGEPAGE), and ${THP_ENABLED_PATH} cannot be read: ${mode.error}` };
  }
  if (mode === 'never') {
    return { reason: `huge pages need transparent huge pages in madvise or always mode, and ${THP_ENABLED_PATH} says never (as root: echo madvise > ${THP_ENABLED_PATH})` };
  }
  const needs = `huge pages need the optional package ${HUGE_PAGES_PACKAGE} (native/hugepages, built by node-gyp on npm ci: it needs a C compiler and make)`;
  let addon: unknown;
  try {
    addon = loader();
  } catch (err) {
    return { reason: `${needs}, which did not install: ${firstLine(err)}` };
  }
  if (typeof (addon as Record<string, unknown> | null)?.adviseHuge !== 'function') {
    return { reason: `${needs}, whose module has no adviseHuge: an incompatible version` };
  }
  return { addon: addon as HugePagesAddon, mode };
}

/** Whether huge pages are reachable here: the addon and the mode, or why not. The default loader's result is kept. */
export function hugePagesSupport(loader: HugePagesLoader = defaultHugePagesLoader, read: ReadText = readText): HugePagesSupport {
  if (loader !== defaultHugePagesLoader || read !== readText) return check(loader, read);
  loaded ??= check(loader, read);
  return loaded;
}

/** The addon, or a HugePagesUnavailableError saying why huge pages cannot be had here (`what` names who asked, e.g. "--huge-pages"). */
export function requireHugePages(what: string, loader?: HugePagesLoader, read?: ReadText): HugePagesAddon {
  const support = hugePagesSupport(loader, read);
  if (support.addon === undefined) throw new HugePagesUnavailableError(`${what}: ${support.reason}`);
  return support.addon;
}

/**
 * Advise every block's pages for huge pages (before first touch: pages
 * committed before the advice stay 4 KiB until khugepaged merges them).
 * Returns the bytes advised, each block's range aligned inward to 2 MiB.
 */
export function adviseBlocks(blocks: readonly RamBlock[], addon: HugePagesAddon): number {
  let bytes = 0;
  for (const block of blocks) bytes += addon.adviseHuge(block.bytes);
  return bytes;
}

/** The process's AnonHugePages in bytes (anonymous memory held in huge pages), or null where it cannot be read. */
export function anonHugePagesBytes(read: ReadText = readText): number | null {
  try {
    const kib = /^AnonHugePages:\s+(\d+) kB$/m.exec(read(SMAPS_ROLLUP_PATH))?.[1];
    return kib === undefined ? null : Number(kib) * 1024;
  } catch {
    return null;
  }
}

/** The figures after loading: what was advised, and what the process holds in huge pages now. */
export function hugePagesFigures(advisedBytes: number): HugePagesFigures {
  return { advisedBytes, anonHugeBytes: anonHugePagesBytes() };
}
