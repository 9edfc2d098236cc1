/** Helpers for migration tests: a destination, a migration, and the checks of invariants 2 and 3. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Guest, type GuestOptions } from '../../src/guest/guest.js';
import { checkSweep } from '../../src/guest/sweep-checker.js';
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
export function assertSweeps(g: Guest, what: string): void {
  for (const [i, s] of g.vcpuStates().entries()) {
    if (s.workload.kind !== 'sweep') continue;
    const check = checkSweep(g.memory, s.workload as SweepState);
    assert.ok(check.ok, `${what}, vCPU ${i}: ${check.errors.join('; ')}`);
  }
}

export function sameRam(a: Guest, b: Guest): boolean {
  return a.blocks.length === b.blocks.length && a.blocks.every((blk, i) => Buffer.compare(blk.bytes, b.blocks[i].bytes) === 0);
}
