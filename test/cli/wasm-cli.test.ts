/**
 * `ferry run --wasm` as a user meets it: the program's output alone on
 * standard output, the process's status the program's, a trap or bad input
 * said on standard error with a status that is not 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import binaryen from 'binaryen';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 180_000);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-wasm-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, FERRY_CACHE_DIR: join(dir, 'cache') };

function ferry(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(root, 'dist/src/cli/main.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  child.stderr.on('data', (d: Buffer) => { stderr += d; });
  const closed = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  return bounded(`ferry ${args.join(' ')}`, closed, 120_000).finally(() => child.kill('SIGKILL'));
}

/** A WASI command written in WebAssembly text, as a file. */
function program(name: string, body: string): string {
  const m = binaryen.parseText(`(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start") ${body}))`);
  const path = join(dir, `${name}.wasm`);
  writeFileSync(path, m.emitBinary());
  m.dispose();
  return path;
}

test('the program\'s output alone is on standard output; ferry says what it runs on standard error', async () => {
  const r = await ferry(['run', '--wasm', join(root, 'guests/moments.wasm'), '--seed', '5', '--', 'output', '3']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 4, r.stdout);
  assert.match(lines[3], /^checksum [0-9a-f]{16}$/);
  assert.match(r.stderr, /^ferry: running .*moments\.wasm \(module [0-9a-f]{12}, seed 5\)$/m);
});

test('the process exits with the program\'s status', async () => {
  const r = await ferry(['run', '--wasm', program('three', '(call $exit (i32.const 3))')]);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, '');
});

test('a program that traps fails the process, saying so', async () => {
  const r = await ferry(['run', '--wasm', program('trap', '(unreachable)')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ferry: the program failed: .*trapped/);
  assert.equal(r.stdout, '');
});

test('bad input is refused before anything runs, naming what was wrong', async () => {
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'not a module');
  for (const [args, message] of [
    [['run', '--wasm', text], /not WebAssembly|magic/i],
    [['run', '--wasm', join(dir, 'missing.wasm')], /--wasm .*missing\.wasm: cannot read it \(ENOENT\)/],
    [['run', '--wasm', program('ok', '(nop)'), '--wasm-max-memory', '100000B'], /--wasm-max-memory: 100000 bytes is not a whole number of 64 KiB/],
    [['run', '--wasm', program('ok2', '(nop)'), '--seed', 'x'], /--seed: expected a whole number/],
    [['run', '--', 'a'], /arguments after -- are a program's: give the program with --wasm/],
  ] as const) {
    const r = await ferry(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test('the migration flags reach a program\'s migration: --postcopy is refused for a program guest, saying why', async () => {
  const r = await ferry(['run', '--wasm', join(root, 'guests/moments.wasm'), '--seconds', '0.01', '--postcopy', '--migrate-to', 'tcp:127.0.0.1:1', '--', 'loop', '128']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /ferry: post-copy is not supported for WebAssembly program guests/);
});
