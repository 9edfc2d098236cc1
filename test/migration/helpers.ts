/** Helpers for migration tests: a destination, a migration, and the checks of invariants 2 and 3. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guest, type GuestOptions } from '../../src/guest/guest.js';
import { checkSweep } from '../../src/guest/sweep-checker.js';
import { VcpuControl } from '../../src/guest/vcpu-control.js';
import type { SweepState } from '../../src/guest/workloads/sweep.js';
import { IncomingMigration, type IncomingOptions } from '../../src/migration/incoming.js';

export const MiB = 1024 * 1024;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const live: Guest[] = [];
export async function guest(options: GuestOptions): Promise<Guest> {
  const g = await Guest.create(options);
  live.push(g);
  return g;
}
export function adopt(g: Guest | null): Guest | null {
  if (g !== null) live.push(g);
  return g;
}
export async function destroyAll(): Promise<void> {
  await Promise.all(live.splice(0).map((g) => g.destroy()));
}

let socketDir: string | null = null;
export function address(kind: 'tcp' | 'unix', name = 'mig'): string {
  if (kind === 'tcp') return 'tcp:127.0.0.1:0';
  socketDir ??= mkdtempSync(join(tmpdir(), 'ferry-test-'));
  return `unix:${join(socketDir, `${name}-${Math.random().toString(36).slice(2)}.sock`)}`;
}

export async function listen(kind: 'tcp' | 'unix', options: IncomingOptions = {}): Promise<IncomingMigration> {
  return IncomingMigration.listen(address(kind), options);
}

/** Every sweep vCPU of a paused guest passes the checker. */
/**
 * A guest that outpaces loopback: 32 MiB swept 40 times a second (1.25
 * GiB/s of pages dirtied), running. Against a 10 ms downtime limit most of
 * RAM is dirty again after every pass and never fits; at a 50 % throttle its
 * pacing makes up the sleep (a 1 ms sleep after each 1 ms slice is within
 * its 1 ms catch-up credit), so it is barely slowed; at 99 % it runs 1 % of
 * the time and dirties a few % of what it did.
 */
export async function busyGuest(): Promise<Guest> {
  const g = await guest({ ram: 32 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 40 }] });
  await g.cont();
  return g;
}

/** The highest throttle any of `g`'s vCPUs is at, percent. */
export const throttleOf = (g: Guest) => Math.max(...g.vcpuControlBuffers().map((b) => new VcpuControl(b).throttle()));

export function assertSweeps(g: Guest, what: string): void {
  for (const [i, s] of g.vcpuStates().entries()) {
    if (s.workload.kind !== 'sweep') continue;
    const check = checkSweep(g.memory, s.workload as SweepState);
    assert.ok(check.ok, `${what}, vCPU ${i}: ${check.errors.join('; ')}`);
  }
}

/**
 * A migration that has ended left no trace in the source's dirty logs: its
 * client is unregistered and no lock is held (a migration thread ended inside
 * a lock would hang every later sync of that block).
 */
export function assertDirtyLogsReleased(g: Guest, what: string): void {
  for (const b of g.blocks) {
    assert.equal(b.log.clientCount, 0, `${what}: block ${b.name} still has a dirty-log client`);
    assert.equal(b.log.locked, false, `${what}: block ${b.name}'s dirty log is still locked`);
  }
}

export function sameRam(a: Guest, b: Guest): boolean {
  return a.blocks.length === b.blocks.length && a.blocks.every((blk, i) => Buffer.compare(blk.bytes, b.blocks[i].bytes) === 0);
}

/**
 * DESIGN.md invariant 6 (one copy running), watched: every interval in
 * which a watched guest was running, on one clock. Two copies ran at once
 * if intervals of different copies overlap.
 */
interface Run { readonly copy: string; readonly from: number; readonly to: number }

/** The epoch clock in ms with microsecond resolution, comparable across processes on one host. */
export const epochMs = () => performance.timeOrigin + performance.now();

export class RunLedger {
  private readonly runs: Run[] = [];
  /** Per copy: its interval running now, if any. */
  private readonly current = new Map<string, () => Run | null>();

  /** Watch a guest in this process. */
  watch(copy: string, g: Guest): void {
    let since = g.runState === 'running' ? epochMs() : -1;
    g.on('runstate', (to) => {
      if (to === 'running' && since < 0) since = epochMs();
      else if (to !== 'running' && since >= 0) {
        this.runs.push({ copy, from: since, to: epochMs() });
        since = -1;
      }
    });
    this.current.set(copy, () => (since >= 0 ? { copy, from: since, to: Infinity } : null));
  }

  /** A copy in another process ran from `from` to `to` (epoch ms). */
  add(copy: string, from: number, to: number): void {
    this.runs.push({ copy, from, to });
  }

  /** Pairs of intervals of different copies that overlapped (must be 0). */
  overlaps(): number {
    const all = [...this.runs, ...[...this.current.values()].flatMap((f) => f() ?? [])];
    let n = 0;
    for (const a of all) for (const b of all) if (a.copy < b.copy && a.from < b.to && b.from < a.to) n++;
    return n;
  }

  ran(copy: string): boolean {
    return this.runs.some((r) => r.copy === copy) || this.current.get(copy)?.() != null;
  }
}

/**
 * A TCP proxy between a source and a destination that can break the link
 * the ways networks do: a reset, the return path closed, the forward
 * direction gone silent.
 */
export class FaultyLink {
  private server!: net.Server;
  private pair: { up: net.Socket; down: net.Socket } | null = null;
  /** Every connection so far, in the order they came (several channels: the main one, then the channels'). */
  readonly pairs: { up: net.Socket; down: net.Socket }[] = [];
  uri = '';
  /** Stop forwarding source -> destination (the source's bytes are dropped). */
  silent = false;

  static async open(target: string): Promise<FaultyLink> {
    const link = new FaultyLink();
    const port = Number(target.split(':').pop());
    link.server = net.createServer((up) => {
      const down = net.connect(port, '127.0.0.1');
      link.pair = { up, down };
      link.pairs.push(link.pair);
      up.on('data', (d) => { if (!link.silent) down.write(d); });
      down.on('data', (d) => up.write(d));
      up.on('end', () => down.end());
      down.on('end', () => up.end());
      up.on('error', () => down.destroy());
      down.on('error', () => up.destroy());
      // A side that ended cleanly was ended on the other side too (above): destroying it now could drop
      // bytes still queued for it, such as a destination's ERROR record on its way to the source.
      up.on('close', () => { if (!down.writableEnded) down.destroy(); });
      down.on('close', () => { if (!up.writableEnded) up.destroy(); });
    });
    await new Promise<void>((r) => link.server.listen(0, '127.0.0.1', r));
    link.uri = `tcp:127.0.0.1:${(link.server.address() as net.AddressInfo).port}`;
    return link;
  }

  /** Both sides see a connection reset (RST). */
  reset(): void {
    this.pair?.up.resetAndDestroy();
    this.pair?.down.resetAndDestroy();
  }

  /** Connection `i` (in arrival order) alone sees a reset. */
  resetConnection(i: number): void {
    this.pairs[i]?.up.resetAndDestroy();
    this.pairs[i]?.down.resetAndDestroy();
  }

  /** The destination -> source direction ends (FIN to the source); the forward direction stays open. */
  closeReturnPath(): void {
    const p = this.pair;
    if (p === null) return;
    p.down.removeAllListeners('data');
    p.down.removeAllListeners('end');
    p.up.end();
  }

  close(): void {
    this.server.close();
    for (const p of this.pairs) {
      p.up.destroy();
      p.down.destroy();
    }
  }
}
