/**
 * Real C programs built for WASI (test/fixtures/wasi/, built by its
 * build.sh) under the WASI device on a plain instance and a fake host:
 * output byte for byte as node:wasi gives it, files, seeded random, a move
 * to a restored copy of the device in the middle of a run, and every write
 * the layer makes into guest memory reported.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WasiDevice } from '../../src/wasm/wasi/wasi-device.js';
import { fileLimit } from '../waits.js';
import { fixture, runProgram, runReference } from './wasi-harness.js';

fileLimit(import.meta.url, 60_000);

const ENV = { HOME: '/home/guest', LANG: 'C', EMPTY: '' };
const envList = Object.entries(ENV).map(([k, v]) => `${k}=${v}`);
const text = (s: string) => new TextEncoder().encode(s);
const INPUT = new Map([['input.txt', text('given to the program\n')]]);

function device(args: string[], options: { seed?: bigint; stdin?: Uint8Array } = {}): WasiDevice {
  return WasiDevice.fresh({ args, env: envList, seed: options.seed ?? 7n, stdin: options.stdin, preopens: [{ guestPath: '/data', files: INPUT }] });
}

test('printf, puts, stderr, args, environ, stdin and the exit code are what node:wasi gives, byte for byte', () => {
  const hello = fixture('hello.wasm');
  const stdin = text('line one\nline two\n\nlast, no newline');
  for (const args of [['hello'], ['hello', 'stdin', 'exit=3', 'two words', 'ünïcödé']]) {
    const ours = runProgram(hello, device(args, { stdin }));
    const ref = runReference(hello, args, ENV, stdin);
    assert.ok(ours.stdout.length > 10_000, 'the program printed its lines');
    assert.deepEqual(ours.stdout, ref.stdout, `stdout of ${args.join(' ')}`);
    assert.deepEqual(ours.stderr, ref.stderr, `stderr of ${args.join(' ')}`);
    assert.equal(ours.exitCode, ref.exitCode);
    assert.equal(ours.device.exitCode, args.includes('exit=3') ? 3 : null, 'proc_exit is called for a non-zero code only');
  }
  const out = runProgram(hello, device(['hello', 'stdin', 'x y'], { stdin })).stdout.toString();
  assert.match(out, /argv\[2\]="x y"\n/);
  assert.match(out, /env\[2\]=EMPTY=\nHOME is \/home\/guest\n/);
  assert.match(out, /stdin: 35 bytes, .*\n {2}<last, no newline>\n {2}<line two>\n {2}<line one>\n/);
});

test('a program writing, appending, seeking, renaming, linking and listing files in a preopen sees what it sees under node:wasi', () => {
  const files = fixture('files.wasm');
  const ours = runProgram(files, device(['files']));
  const ref = runReference(files, ['files'], ENV, undefined, INPUT);
  assert.match(ours.stdout.toString(), /\/data\/many: 150 entries, 8250 name bytes/, 'readdir went through several buffers');
  assert.deepEqual(ours.stdout.toString(), ref.stdout.toString());
  assert.deepEqual(ours.stderr, ref.stderr);
  const [data] = ours.device.preopenFiles();
  assert.equal(data.guestPath, '/data');
  assert.deepEqual([...data.files.keys()].sort(), [...ref.files.keys()].sort(), 'the same files are left');
  for (const [path, bytes] of ref.files) assert.deepEqual(Buffer.from(data.files.get(path)!), bytes, path);
});

test('files written before a save are there after a restore: a program moved mid-run to a restored device reads them back', () => {
  const files = fixture('files.wasm');
  const straight = runProgram(files, device(['files']));
  const moved = runProgram(files, device(['files']), { moveAfterPoll: [1] });
  assert.notEqual(moved.device, straight.device);
  assert.deepEqual(moved.stdout.toString(), straight.stdout.toString());
  assert.match(moved.stdout.toString(), /\/data\/out\/b.txt \(20 bytes\): \[fiRSt PWne\nappended\n\]\n\/data\/out\/b-link.txt/,
    'after the move, the program reads the file and its link it wrote before');
  const again = WasiDevice.restore(moved.device.save());
  const [left] = again.preopenFiles();
  assert.equal(Buffer.from(left.files.get('out/new.txt')!).toString(), 'made after the sleep');
  assert.equal(Buffer.from(left.files.get('out/b.txt')!).toString(), 'fiRS');
  assert.equal(left.files.size, 153, 'input.txt, 150 in many/, out/b.txt and out/new.txt');
});

test('random_get draws the same sequence across a save and restore in the middle, and another with another seed', () => {
  const random = fixture('random.wasm');
  const straight = runProgram(random, device(['random'])).stdout.toString();
  const moved = runProgram(random, device(['random']), { moveAfterPoll: [1] }).stdout.toString();
  const other = runProgram(random, device(['random'], { seed: 8n })).stdout.toString();
  assert.match(straight, /^round 1, {2}1 bytes: [0-9a-f]{2}\n/);
  assert.equal(straight.split('\n').length, 13);
  assert.equal(moved, straight);
  const round2 = (s: string) => s.split('\n').filter((l) => l.startsWith('round 2'));
  assert.notDeepEqual(round2(other), round2(straight));
  assert.notEqual(other.split('\n')[0], straight.split('\n')[0]);
});

test('every byte a WASI call changes in guest memory lies in a span the call reported to written()', () => {
  for (const [name, args] of [['hello.wasm', ['hello', 'stdin', 'exit=0']], ['files.wasm', ['files']], ['random.wasm', ['random']]] as const) {
    let checked = 0;
    let changed = 0;
    const run = runProgram(fixture(name), device([...args], { stdin: text('some input\n') }), {
      around: (call, invoke, memory) => {
        const from = memory.spans.length;
        const before = memory.bytes.slice();
        const result = invoke();
        const after = memory.bytes;
        const reported = memory.spans.slice(from);
        for (let i = 0; i < before.length; i++) {
          if (before[i] === after[i]) continue;
          changed++;
          assert.ok(reported.some(([a, l]) => i >= a && i < a + l), `${name}: ${call} changed byte ${i} without reporting it`);
        }
        checked++;
        return result;
      },
    });
    assert.ok(checked > 10 && changed > 50, `${name}: ${checked} calls checked, ${changed} bytes changed`);
    assert.equal(run.exitCode, 0);
  }
});
