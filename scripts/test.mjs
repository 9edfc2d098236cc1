#!/usr/bin/env node
/**
 * `npm test`'s runner (after the build and lint of `pretest`): every test
 * file under dist/test, in two groups, one after the other.
 *
 * 1. Two files at a time (--test-concurrency=2): the files `npm run
 *    test:unit` names (in-process, no child processes, no migration whose
 *    outcome depends on a guest outpacing a link) and the WebAssembly
 *    program files (test/wasm, test/guests: their migrations throttle the
 *    source, so a slower machine changes their times, not their outcomes).
 *    CI's machine has 2 cores, and these files leave one idle alone.
 * 2. One file at a time: everything else. Their tests race a guest against
 *    a link, a timeout against another, or a remedy against convergence;
 *    beside another file some of them failed (postcopy-recovery,
 *    policy-migrate, auto-converge-migrate, documented-commands' README
 *    block 4), so a new file runs here unless it is put in group 1.
 *
 * The exit code is 1 if either group failed; both always run. Each file's
 * duration is printed at the end (the slowest first), for CI's 20 minutes.
 * `node scripts/test.mjs [OPTION...] [FILE...]` runs only those files
 * (dist/test/...), each in its group; options (--test-reporter=dot,
 * --test-name-pattern=...) go to every `node --test` run.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TESTS = join(ROOT, 'dist/test');

/** Every *.test.js under `dir`, sorted. */
function testFiles(dir) {
  return readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.test.js')).map((f) => join(dir, f)).sort();
}

/** A shell glob of test:unit's (a `*` within one path segment) as a RegExp over paths relative to ROOT. */
function globRegExp(glob) {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
}

const unitScript = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts['test:unit'];
const unitGlobs = unitScript.split(/\s+/).filter((w) => w.startsWith('dist/test/')).map(globRegExp);
const sideBySide = (file) => {
  const path = relative(ROOT, file);
  return unitGlobs.some((g) => g.test(path)) || /^dist\/test\/(wasm|guests)\//.test(path);
};

const options = process.argv.slice(2).filter((a) => a.startsWith('--'));
if (!options.some((o) => o.startsWith('--test-reporter'))) options.unshift('--test-reporter=spec');
const requested = process.argv.slice(2).filter((a) => !a.startsWith('--')).map((f) => join(ROOT, f));
const files = requested.length > 0 ? requested : testFiles(TESTS);
const durations = [];

/** `node --test` over one file; its exit status, its duration recorded. */
function runFile(file) {
  const started = performance.now();
  const args = ['--test', '--test-timeout=900000', ...options, file];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit', cwd: ROOT });
    child.once('close', (code) => {
      durations.push({ file: relative(TESTS, file), s: (performance.now() - started) / 1000 });
      resolve(code ?? 1);
    });
  });
}

/** Run `list` `width` files at a time; whether every one passed. */
async function runGroup(list, width) {
  if (list.length === 0) return true;
  console.log(`# ${list.length} test files, ${width === 1 ? 'one at a time' : `${width} at a time`}`);
  const queue = [...list];
  let ok = true;
  const lane = async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) if ((await runFile(file)) !== 0) ok = false;
  };
  await Promise.all(Array.from({ length: width }, lane));
  return ok;
}

const started = performance.now();
const first = await runGroup(files.filter(sideBySide), 2);
const second = await runGroup(files.filter((f) => !sideBySide(f)), 1);
durations.sort((a, b) => b.s - a.s);
console.log(`# ${files.length} files in ${((performance.now() - started) / 1000).toFixed(0)} s; by file, slowest first:`);
for (const d of durations) console.log(`#   ${d.s.toFixed(1).padStart(6)} s  ${d.file}`);
process.exit(first && second ? 0 : 1);
