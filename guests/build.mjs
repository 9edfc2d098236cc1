#!/usr/bin/env node
/**
 * Builds the WebAssembly (WASI preview 1) programs under guests/ from their
 * C sources, reproducibly, and writes guests/SHA256SUMS.
 *
 *   node guests/build.mjs              build every program, write NAME.wasm and SHA256SUMS
 *   node guests/build.mjs --check      build every program in a temporary directory and
 *                                      compare with the committed files (exit 1 if any differs)
 *
 * Needs (Debian 12 packages): clang-19, lld-19 (wasm-ld-19), wasi-libc (the
 * sysroot in /usr: /usr/include/wasm32-wasi, /usr/lib/wasm32-wasi),
 * libclang-rt-19-dev-wasm32 (compiler builtins); tar; and npm, which fetches
 * the third-party sources from the npm registry (`npm pack`, pinned
 * versions, the tarball's SHA-512 checked against the integrity pinned
 * below). Nothing third-party is committed: only our drivers.
 *
 * Reproducible: the same inputs give the same bytes (checked with --check).
 * No debug information (no -g; --strip-all drops the name, producers and
 * target_features sections), and -ffile-prefix-map removes the temporary
 * directory's path from anything __FILE__ puts in the binary.
 *
 * Target features, pinned: -mcpu=mvp plus mutable-globals, sign-ext,
 * bulk-memory (memcpy/memset become memory.copy/memory.fill) and
 * nontrapping-fptoint; explicitly no atomics (no threads), no exception
 * handling, no tail calls, no SIMD, no multivalue, no reference types.
 * Node 20's V8 runs all of these, and Binaryen's Asyncify handles them.
 *
 * Memory: every program starts at 128 KiB (--initial-memory=131072: 64 KiB
 * of stack first, then data, then the heap, which grows by memory.grow as
 * the program runs). No --max-memory: the runner sets the maximum.
 *
 * Time: about a minute on this machine (SQLite's amalgamation alone takes
 * 20-45 s). Run times and memory of the programs: guests/README.md; for
 * instance `sqlite-load 200000 1` runs 4-5 s under node:wasi (8 s while
 * the machine is loaded) and grows to 22 MiB.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GUESTS = dirname(fileURLToPath(import.meta.url));

/** Third-party sources: npm packages, pinned by version and by the tarball's integrity. */
const PACKAGES = {
  'better-sqlite3': {
    version: '12.11.1', // SQLite 3.53.2 (package/deps/sqlite3/sqlite3.c)
    integrity: 'sha512-dq9AtApgg5PGFtBzPFSBl3HZQjHok5gaQCM6zh2Yk0aSmDCs1CbnVI8/HgASQkNKsWFpseIO9beg5xxpYhbIfA==',
  },
  'zstd-napi': {
    version: '0.0.13', // zstd 1.5.7 (package/deps/zstd/lib/)
    integrity: 'sha512-ErGF+Ko1PsbooU6oC/sc/diiWKwVa0kd/5AkFSs7kg5kwcEuOtSzOy3xUOadXQlAVNab9TxsxaUk3hOq3cj/lA==',
  },
};

const CC = 'clang-19';
const TARGET = ['--target=wasm32-wasi', '--sysroot=/usr'];
const FEATURES = [
  '-mcpu=mvp', '-mmutable-globals', '-msign-ext', '-mbulk-memory', '-mnontrapping-fptoint',
  '-mno-atomics', '-mno-exception-handling', '-mno-tail-call', '-mno-simd128', '-mno-multivalue', '-mno-reference-types',
];
const INITIAL_MEMORY = 128 * 1024;
const LINK = [
  '-Wl,--strip-all', '-Wl,--stack-first', '-Wl,-z,stack-size=65536', `-Wl,--initial-memory=${INITIAL_MEMORY}`,
];
const DRIVER_FLAGS = ['-O2', '-Wall', '-Wextra', `-I${GUESTS}`];

/** What SQLite needs for WASI (sqlite3.c sets SQLITE_WASI itself on __wasi__). */
const SQLITE_FLAGS = [
  '-Os', // 30 % smaller than -O2 (Asyncify's time grows with the module) and as fast here
  '-DSQLITE_THREADSAFE=0', // no threads in WASI preview 1
  '-DSQLITE_OMIT_LOAD_EXTENSION', // no dlopen
  '-DSQLITE_OMIT_WAL', // WAL needs shared memory (mmap) between connections
  '-DSQLITE_MAX_MMAP_SIZE=0', // no mmap in wasi-libc
  '-DSQLITE_TEMP_STORE=3', // temporary tables and indices in memory, never in files
  '-DSQLITE_DEFAULT_UNIX_VFS="unix-none"', // no file locking: WASI has none, and one process uses the file
  '-DSQLITE_DEFAULT_MEMSTATUS=0', // no memory statistics (faster malloc)
  '-DSQLITE_DQS=0', // no double-quoted string literals (SQLite's recommended option)
];

/** What zstd needs: no assembly, no threads, no trace hooks, no legacy formats. */
const ZSTD_FLAGS = ['-O2', '-DZSTD_DISABLE_ASM', '-DZSTD_TRACE=0', '-DZSTD_LEGACY_SUPPORT=0']; // and no ZSTD_MULTITHREAD

const zstdSources = (pkg) => ['common', 'compress', 'decompress'].flatMap((dir) =>
  readdirSync(join(pkg, 'deps/zstd/lib', dir)).filter((f) => f.endsWith('.c')).sort().map((f) => join(pkg, 'deps/zstd/lib', dir, f)));

/** The programs: a driver of ours, and the library it links, if any. */
const PROGRAMS = [
  { name: 'sqlite-load', package: 'better-sqlite3', flags: SQLITE_FLAGS,
    sources: (pkg) => [join(pkg, 'deps/sqlite3/sqlite3.c')], include: (pkg) => join(pkg, 'deps/sqlite3') },
  { name: 'zstd-roundtrip', package: 'zstd-napi', flags: ZSTD_FLAGS,
    sources: zstdSources, include: (pkg) => join(pkg, 'deps/zstd/lib') },
  { name: 'store-dense' },
  { name: 'call-dense' },
  { name: 'moments' },
];

function run(command, args, what) {
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`${what}: cannot run ${command}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: ${command} exited ${r.status}\n${r.stderr}`);
  return r.stdout;
}

function checkTools() {
  const needed = [
    ['/usr/lib/wasm32-wasi/libc.a', 'wasi-libc'],
    ['/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a', 'libclang-rt-19-dev-wasm32'],
    ['/usr/bin/wasm-ld-19', 'lld-19'],
  ];
  for (const [file, pkg] of needed) {
    if (!existsSync(file)) throw new Error(`${file} is missing: install the Debian package ${pkg}`);
  }
  run(CC, ['--version'], 'clang-19 (Debian package clang-19)');
}

/** `npm pack` a pinned package into `dir`, check its integrity, unpack it; its package/ folder. */
function fetchPackage(name, dir) {
  const { version, integrity } = PACKAGES[name];
  const out = run('npm', ['pack', `${name}@${version}`, '--pack-destination', dir, '--silent'], `npm pack ${name}@${version}`);
  const tgz = join(dir, out.trim().split('\n').pop());
  const actual = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  if (actual !== integrity) {
    throw new Error(`${name}@${version}: the tarball's integrity is ${actual}, expected ${integrity}`);
  }
  const into = join(dir, `${name}-${version}`);
  mkdirSync(into, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', into], `unpack ${name}@${version}`);
  return join(into, 'package');
}

/** Compile the program's sources and link it into `outDir`/NAME.wasm. */
function buildProgram(program, pkgDir, workDir, outDir) {
  const prefixMaps = [`-ffile-prefix-map=${workDir}=/build`, `-ffile-prefix-map=${GUESTS}=/guests`];
  const objects = [];
  const include = program.include ? [`-I${program.include(pkgDir)}`] : [];
  for (const [i, source] of (program.sources ? program.sources(pkgDir) : []).entries()) {
    const object = join(workDir, `${program.name}-${i}.o`);
    run(CC, [...TARGET, ...FEATURES, ...program.flags, ...prefixMaps, ...include, '-c', source, '-o', object],
      `compile ${source.replace(workDir, '')}`);
    objects.push(object);
  }
  const driver = join(GUESTS, `${program.name}.c`);
  const wasm = join(outDir, `${program.name}.wasm`);
  run(CC, [...TARGET, ...FEATURES, ...DRIVER_FLAGS, ...prefixMaps, ...include, driver, ...objects, ...LINK, '-o', wasm],
    `compile and link ${program.name}`);
  return wasm;
}

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

function buildAll(outDir, workDir) {
  const pkgDirs = {};
  const lines = [];
  for (const program of PROGRAMS) {
    if (program.package && !pkgDirs[program.package]) pkgDirs[program.package] = fetchPackage(program.package, workDir);
    const started = Date.now();
    const wasm = buildProgram(program, pkgDirs[program.package], workDir, outDir);
    lines.push(`${sha256(wasm)}  ${program.name}.wasm`);
    process.stdout.write(`built ${program.name}.wasm (${readFileSync(wasm).length} bytes, ${Date.now() - started} ms)\n`);
  }
  return `${lines.join('\n')}\n`;
}

/** Compare a fresh build with the committed files; the names of those that differ. */
function differences(freshDir, sums) {
  const committed = existsSync(join(GUESTS, 'SHA256SUMS')) ? readFileSync(join(GUESTS, 'SHA256SUMS'), 'utf8') : '';
  const differ = [];
  if (committed !== sums) differ.push('SHA256SUMS');
  for (const { name } of PROGRAMS) {
    const file = `${name}.wasm`;
    const old = existsSync(join(GUESTS, file)) ? readFileSync(join(GUESTS, file)) : null;
    if (!old || !old.equals(readFileSync(join(freshDir, file)))) differ.push(file);
  }
  return differ;
}

function main() {
  const check = process.argv.includes('--check');
  checkTools();
  const workDir = mkdtempSync(join(tmpdir(), 'ferry-guests-'));
  try {
    const outDir = check ? join(workDir, 'out') : GUESTS;
    if (check) mkdirSync(outDir);
    const sums = buildAll(outDir, workDir);
    if (!check) {
      writeFileSync(join(GUESTS, 'SHA256SUMS'), sums);
      process.stdout.write('wrote guests/SHA256SUMS\n');
      return;
    }
    const differ = differences(outDir, sums);
    if (differ.length > 0) {
      process.stderr.write(`the build differs from the committed files: ${differ.join(', ')}\n`);
      process.exitCode = 1;
    } else {
      process.stdout.write('the build equals the committed files, byte for byte\n');
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

try {
  main();
} catch (error) {
  process.stderr.write(`guests/build.mjs: ${error.message}\n`);
  process.exitCode = 1;
}
