#!/usr/bin/env node
/**
 * One QEMU migration, measured: starts a source and a destination QEMU
 * (`-incoming defer`, QMP on unix sockets), waits for the guest's `ready`,
 * sets capabilities and parameters, migrates, polls query-migrate every
 * 100 ms, and prints one JSON line of figures. Every wait is bounded and
 * both QEMUs are killed at the end, whatever happened. See README.md.
 *
 *   node bench/qemu/run.mjs --guest sweep,512,3 [--link veth|loopback]
 *     [--caps auto-converge,xbzrle,...] [--param downtime-limit=30 ...]
 *     [--postcopy-after MS] [--cancel-after S] [--dst-prealloc] [--label TEXT]
 *     [--out results.jsonl]
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linkUp, linkDown, NS } from './netns.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const KERNEL = process.env.QEMU_KERNEL ?? '/boot/vmlinuz-6.1.0-56-amd64';
const INITRD = join(HERE, 'out', 'initramfs.cpio.gz');
const ACCEL = process.env.QEMU_ACCEL ?? 'tcg';
const GUEST_EXTRA_MIB = 288; // the kernel and its initramfs beside the workload's range
const TICK_MS = 1000 / 100; // /proc/PID/stat counts in USER_HZ = 100

function args(argv) {
  const o = { guest: 'sweep,512,3', link: 'loopback', caps: [], params: {}, postcopyAfter: null, cancelAfter: 300, dstPrealloc: false, label: '', out: null };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--guest') o.guest = v();
    else if (a === '--link') o.link = v();
    else if (a === '--caps') o.caps = v().split(',').filter(Boolean);
    else if (a === '--param') {
      const [k, val] = v().split('=');
      o.params[k] = /^\d+$/.test(val) ? Number(val) : val;
    } else if (a === '--postcopy-after') o.postcopyAfter = Number(v());
    else if (a === '--cancel-after') o.cancelAfter = Number(v());
    else if (a === '--dst-prealloc') o.dstPrealloc = true;
    else if (a === '--label') o.label = v();
    else if (a === '--out') o.out = v();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!['veth', 'loopback'].includes(o.link)) throw new Error(`--link: veth or loopback, not ${o.link}`);
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function bounded(what, ms, cond) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A QMP connection: `cmd(name, args)` resolves with `return` or rejects with the error's desc. */
async function qmp(path) {
  const sock = await bounded(`QMP socket ${path}`, 120_000, () => new Promise((res) => {
    const s = createConnection(path);
    s.once('connect', () => res(s));
    s.once('error', () => res(null));
  }));
  let buf = '';
  const waiting = [];
  sock.on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if ('return' in msg || 'error' in msg) waiting.shift()?.(msg);
    }
  });
  const cmd = (execute, a) => new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`QMP ${execute}: no answer in 30 s`)), 30_000);
    waiting.push((m) => {
      clearTimeout(t);
      if (m.error) rej(new Error(`QMP ${execute}: ${m.error.desc}`));
      else res(m.return);
    });
    sock.write(`${JSON.stringify(a === undefined ? { execute } : { execute, arguments: a })}\n`);
  });
  await cmd('qmp_capabilities'); // the greeting carries no `return`: skipped by the reader
  return { cmd, close: () => sock.destroy() };
}

/** CPU ms (user + system) of a process so far. */
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS;
  } catch {
    return null;
  }
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** Starts one QEMU; its console lines are timestamped into `lines`. */
function startQemu(o, role, dir, lines) {
  const mem = Number(o.guest.split(',')[1]) + GUEST_EXTRA_MIB;
  const q = ['qemu-system-x86_64', '-accel', ACCEL, '-cpu', 'qemu64', '-smp', '1', '-m', String(mem),
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio',
    '-qmp', `unix:${join(dir, `${role}.qmp`)},server=on,wait=off`,
    '-kernel', KERNEL, '-initrd', INITRD, '-append', `console=ttyS0 quiet guest=${o.guest}`];
  if (role === 'dst') q.push('-incoming', 'defer');
  if (role === 'dst' && o.dstPrealloc) q.push('-mem-prealloc');
  const cmd = o.link === 'veth' ? ['ip', 'netns', 'exec', role === 'src' ? NS.a : NS.b, ...q] : q;
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let part = '';
  child.stdout.on('data', (d) => {
    part += d.toString();
    let nl;
    while ((nl = part.indexOf('\n')) >= 0) {
      lines.push({ at: Date.now(), role, text: part.slice(0, nl).trim() });
      part = part.slice(nl + 1);
    }
  });
  let err = '';
  child.stderr.on('data', (d) => { err += d.toString(); });
  child.on('exit', (code, sig) => { child.exited = `${role} QEMU exited (${code ?? sig}): ${err.trim().split('\n').slice(-3).join(' | ')}`; });
  return child;
}

/** The guest's page rate (pages/s) between two host times, from its `P guest-ms pages` lines. */
function pageRate(lines, from, to) {
  const ps = lines.filter((l) => l.text.startsWith('P ')).map((l) => ({ at: l.at, pages: Number(l.text.split(' ')[2]) }));
  const a = ps.filter((p) => p.at <= from).at(-1) ?? ps.find((p) => p.at >= from);
  const b = ps.filter((p) => p.at <= to).at(-1);
  if (!a || !b || b.at <= a.at) return null;
  return ((b.pages - a.pages) * 1000) / (b.at - a.at);
}

/** Sets capabilities and parameters on both sides (the destination also gets postcopy-blocktime). */
async function configure(o, src, dst) {
  const caps = (names) => ({ capabilities: names.map((capability) => ({ capability, state: true })) });
  if (o.caps.length > 0) await src.cmd('migrate-set-capabilities', caps(o.caps));
  const dstCaps = o.caps.includes('postcopy-ram') ? [...o.caps, 'postcopy-blocktime'] : o.caps;
  if (dstCaps.length > 0) await dst.cmd('migrate-set-capabilities', caps(dstCaps));
  // QEMU's default max-bandwidth is 32 MiB/s; libvirt lifts it, and so do these runs.
  await src.cmd('migrate-set-parameters', { 'max-bandwidth': 1e12, ...o.params });
  const both = Object.fromEntries(Object.entries(o.params).filter(([k]) => k.startsWith('multifd')));
  if (Object.keys(both).length > 0) await dst.cmd('migrate-set-parameters', both);
}

/** Polls the source until the migration ends; starts post-copy or cancels when due. */
async function follow(o, src, t0, procs) {
  let maxThrottle = 0;
  let postcopyAt = null;
  let cancelledAt = null;
  let mbAtPostcopy = null;
  const steps = []; // the throttle's steps: when, to what, at which pass
  let cpuAtCancel = null;
  let lastRam = null; // a cancelled migration's query-migrate has no `ram`: its figures are the last ones
  for (;;) {
    // A destination ends itself when the source cancels: that exit is expected.
    for (const p of cancelledAt === null ? procs : procs.slice(0, 1)) if (p.exited) throw new Error(p.exited);
    const q = await src.cmd('query-migrate');
    if (q.ram) lastRam = q.ram;
    else q.ram = lastRam ?? undefined;
    maxThrottle = Math.max(maxThrottle, q['cpu-throttle-percentage'] ?? 0);
    const el = Date.now() - t0;
    if ((q['cpu-throttle-percentage'] ?? 0) !== (steps.at(-1)?.pct ?? 0)) {
      steps.push({ at: el, pct: q['cpu-throttle-percentage'] ?? 0, pass: q.ram?.['dirty-sync-count'], remainingMb: Math.round((q.ram?.remaining ?? 0) / 1e6) });
    }
    if (['completed', 'failed', 'cancelled'].includes(q.status)) return { q, maxThrottle, postcopyAt, cancelledAt, mbAtPostcopy, steps, cpuAtCancel, end: Date.now() };
    if (o.postcopyAfter !== null && postcopyAt === null && el >= o.postcopyAfter && q.status === 'active') {
      mbAtPostcopy = (q.ram?.transferred ?? 0) / 1e6; // sent before the switch (100 ms old at most)
      await src.cmd('migrate-start-postcopy');
      postcopyAt = el;
    }
    if (cancelledAt === null && el >= o.cancelAfter * 1000 && q.status !== 'postcopy-active') {
      cpuAtCancel = { src: cpuMs(procs[0].pid), dst: cpuMs(procs[1].pid) }; // the destination exits after
      await src.cmd('migrate_cancel');
      cancelledAt = el;
    }
    if (el > o.cancelAfter * 1000 + 120_000) throw new Error(`still ${q.status} ${el} ms after migrate`);
    await sleep(100);
  }
}

function figures(o, f, dstQ, t0, lines, cpu, load, prealloc) {
  const q = f.q;
  const ram = q.ram ?? {};
  const before = pageRate(lines, t0 - 2500, t0);
  const during = pageRate(lines, t0, f.end);
  return {
    label: o.label, guest: o.guest, link: o.link, caps: o.caps, params: o.params, postcopyAfter: o.postcopyAfter, dstPrealloc: o.dstPrealloc,
    status: q.status, wallMs: f.end - t0, totalMs: q['total-time'] ?? null, downtimeMs: q.downtime ?? null, setupMs: q['setup-time'] ?? null,
    mbSent: ram.transferred === undefined ? null : ram.transferred / 1e6, multifdMb: ram['multifd-bytes'] === undefined ? null : ram['multifd-bytes'] / 1e6,
    passes: ram['dirty-sync-count'] ?? null, mbpsQemu: ram.mbps ?? null, maxThrottle: f.maxThrottle, throttleSteps: f.steps, postcopyAt: f.postcopyAt, cancelledAt: f.cancelledAt, mbAtPostcopy: f.mbAtPostcopy,
    postcopyRequests: ram['postcopy-requests'] ?? null, blocktimeMs: dstQ?.['postcopy-blocktime'] ?? null, vcpuBlocktimeMs: dstQ?.['postcopy-vcpu-blocktime'] ?? null,
    xbzrle: q['xbzrle-cache'] ?? null, compression: q.compression ?? null,
    cpuMs: { src: cpu.src, dst: cpu.dst }, dstStartMs: prealloc,
    guestPagesPerSec: { before, during, share: before && during !== null ? during / before : null },
    load: { start: load, end: loadavg() }, error: q['error-desc'] ?? null,
  };
}

async function main() {
  const o = args(process.argv);
  const dir = mkdtempSync(join(tmpdir(), 'qemu-mig-'));
  const lines = [];
  const procs = [];
  const conns = [];
  try {
    if (o.link === 'veth') linkUp();
    const load = loadavg();
    const started = Date.now();
    procs.push(startQemu(o, 'src', dir, lines), startQemu(o, 'dst', dir, lines));
    const [src, dst] = await Promise.all(['src', 'dst'].map((r) => qmp(join(dir, `${r}.qmp`))));
    conns.push(src, dst);
    const dstStartMs = Date.now() - started; // with -mem-prealloc: the preallocation, before QMP answers
    await bounded('the guest to write its memory ("ready")', 600_000, () => {
      for (const p of procs) if (p.exited) throw new Error(p.exited);
      return lines.some((l) => l.role === 'src' && l.text === 'ready');
    });
    await sleep(o.guest.startsWith('sweep') ? 3000 : 500); // the rate before, over 2.5 s
    await configure(o, src, dst);
    const host = o.link === 'veth' ? NS.destinationAddress : '127.0.0.1';
    const uri = `tcp:${host}:${4400 + (process.pid % 500)}`;
    await dst.cmd('migrate-incoming', { uri });
    const cpu0 = { src: cpuMs(procs[0].pid), dst: cpuMs(procs[1].pid) };
    const t0 = Date.now();
    await src.cmd('migrate', { uri });
    const f = await follow(o, src, t0, procs);
    const cpu1 = f.cpuAtCancel ?? { src: cpuMs(procs[0].pid), dst: cpuMs(procs[1].pid) };
    const cpu = { src: cpu1.src - cpu0.src, dst: cpu1.dst - cpu0.dst };
    let dstQ = null;
    if (f.q.status === 'completed') {
      dstQ = await bounded('the destination to complete', 60_000, async () => {
        const q = await dst.cmd('query-migrate');
        return q.status === 'completed' ? q : null;
      });
      await sleep(1000); // a last guest line from the destination
    }
    const r = figures(o, f, dstQ, t0, lines, cpu, load, dstStartMs);
    const text = JSON.stringify(r);
    console.log(text);
    if (o.out) appendFileSync(o.out, `${text}\n`);
  } finally {
    for (const c of conns) c.close();
    for (const p of procs) if (!p.exited) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => { p.once('exit', r); setTimeout(r, 10_000); }))));
    if (o.link === 'veth') linkDown();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`run.mjs: ${err.message}`);
  process.exitCode = 1;
});
