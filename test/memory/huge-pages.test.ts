/**
 * Transparent huge pages (memory/huge-pages.ts, native/hugepages): the addon
 * advises a RAM block's 2 MiB-aligned range, and the block's pages touched
 * afterwards are held in huge pages (AnonHugePages grows by about the
 * block), where an unadvised block's are not (THP in madvise mode); where
 * huge pages are unreachable, asking for them is refused in words that say
 * why and what it would take (an injected loader and kernel file stand in).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HugePagesUnavailableError } from '../../src/errors.js';
import {
  THP_ENABLED_PATH, adviseBlocks, anonHugePagesBytes, hugePagesSupport, requireHugePages, thpMode, type ReadText,
} from '../../src/memory/huge-pages.js';
import { PAGE_SIZE } from '../../src/memory/page.js';
import { RamBlock } from '../../src/memory/ram-block.js';

const MiB = 1024 * 1024;
const HUGE = 2 * MiB;
const support = hugePagesSupport();
const unreachable = support.addon === undefined ? `huge pages are not reachable here: ${support.reason}` : false;

/** Touch every 4 KiB page of `block` once (the first touch commits it). */
function touchAll(block: RamBlock): void {
  for (let offset = 0; offset < block.byteLength; offset += PAGE_SIZE) block.bytes[offset] = 1;
}

test('an advised 64 MiB block, touched after the advice, is held in huge pages; an unadvised one is not (THP madvise mode)', { skip: unreachable }, () => {
  const advised = RamBlock.create('huge', 64 * MiB);
  const before = anonHugePagesBytes();
  assert.notEqual(before, null, 'AnonHugePages is readable');
  const bytes = adviseBlocks([advised], support.addon!);
  // The memory's start is aligned to 64 KiB at least: at most one 2 MiB page is lost at each end.
  assert.ok(bytes >= 64 * MiB - 2 * HUGE && bytes <= 64 * MiB && bytes % HUGE === 0, `advised ${bytes} bytes`);
  touchAll(advised);
  const grown = anonHugePagesBytes()! - before!;
  // The kernel may fall back to 4 KiB pages when it has no free 2 MiB page: half of what was advised is the bar.
  assert.ok(grown >= bytes / 2, `AnonHugePages grew by ${grown / MiB} MiB after touching ${bytes / MiB} MiB advised`);
  if (support.addon !== undefined && support.mode === 'madvise') {
    const plain = RamBlock.create('plain', 64 * MiB);
    const start = anonHugePagesBytes()!;
    touchAll(plain);
    assert.ok(anonHugePagesBytes()! - start < 8 * MiB, 'without advice, madvise mode gives (almost) no huge pages');
  }
});

test('the addon advises only whole 2 MiB pages inside the range it is given', { skip: unreachable }, () => {
  const block = RamBlock.create('align', 8 * MiB);
  const whole = support.addon!.adviseHuge(block.bytes);
  assert.equal(whole % HUGE, 0);
  // Where the block starts on a 2 MiB boundary (all of it advised), the arithmetic is exact.
  if (whole === 8 * MiB) {
    assert.equal(support.addon!.adviseHuge(block.bytes.subarray(1, HUGE + 1)), 0, 'no whole 2 MiB page inside');
    assert.equal(support.addon!.adviseHuge(block.bytes.subarray(1, 3 * HUGE - 1)), HUGE, 'one whole page: the second');
    assert.equal(support.addon!.adviseHuge(new Uint32Array(block.memory.buffer, HUGE, HUGE / 4)), HUGE, 'a Uint32Array: its length in bytes');
  }
  assert.throws(() => support.addon!.adviseHuge(new ArrayBuffer(8) as unknown as Uint8Array), /must be a typed array/);
});

const kernel = (enabled: string | Error): ReadText => (path) => {
  assert.equal(path, THP_ENABLED_PATH);
  if (enabled instanceof Error) throw enabled;
  return enabled;
};
const addon = () => ({ adviseHuge: () => 0 });
const missing = () => {
  throw new Error("Cannot find module 'ferry-hugepages'\nRequire stack:\n- /x/huge-pages.js");
};

test('the kernel mode is the bracketed word of THP\'s enabled file', () => {
  assert.equal(thpMode(kernel('always [madvise] never\n')), 'madvise');
  assert.equal(thpMode(kernel('[always] madvise never\n')), 'always');
  assert.equal(thpMode(kernel('always madvise [never]\n')), 'never');
  assert.deepEqual(thpMode(kernel('nonsense\n')), { error: 'unrecognised contents "nonsense"' });
});

test('unreachable huge pages are refused, saying why and what it would take', () => {
  const cases: [string, () => unknown, ReadText, RegExp][] = [
    ['the addon missing', missing, kernel('always [madvise] never\n'),
      /^--huge-pages: huge pages need the optional package ferry-hugepages \(native\/hugepages, built by node-gyp on npm ci: it needs a C compiler and make\), which did not install: Cannot find module 'ferry-hugepages'$/],
    ['an incompatible addon', () => ({}), kernel('always [madvise] never\n'), /whose module has no adviseHuge: an incompatible version$/],
    ['THP never', addon, kernel('always madvise [never]\n'), /says never \(as root: echo madvise > \/sys\/kernel\/mm\/transparent_hugepage\/enabled\)$/],
    ['no THP in the kernel', addon, kernel(new Error('ENOENT: no such file or directory')),
      /need the kernel's transparent huge pages \(CONFIG_TRANSPARENT_HUGEPAGE\), and \/sys\/kernel\/mm\/transparent_hugepage\/enabled cannot be read: ENOENT/],
  ];
  for (const [what, loader, read, message] of cases) {
    const s = hugePagesSupport(loader, read);
    assert.equal(s.addon, undefined, what);
    assert.throws(() => requireHugePages('--huge-pages', loader, read), (err: unknown) => {
      assert.ok(err instanceof HugePagesUnavailableError, what);
      assert.equal(err.code, 'ERR_FERRY_HUGE_PAGES_UNAVAILABLE');
      assert.match(err.message, message, what);
      return true;
    });
  }
  const ok = hugePagesSupport(addon, kernel('[always] madvise never\n'));
  assert.equal(ok.addon?.adviseHuge(new Uint8Array(1)), 0);
  assert.equal(ok.addon !== undefined && ok.mode, 'always');
});

test('AnonHugePages is read from smaps_rollup in bytes, null where it cannot be', () => {
  assert.equal(anonHugePagesBytes(() => 'Rss:  100 kB\nAnonHugePages:    4096 kB\nShmemHugePages: 0 kB\n'), 4 * MiB);
  assert.equal(anonHugePagesBytes(() => 'Rss: 100 kB\n'), null);
  assert.equal(anonHugePagesBytes(() => { throw new Error('EACCES'); }), null);
});
