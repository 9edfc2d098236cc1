/** Option parsing shared by the `ferry` commands: numbers, workloads. */
import { InvalidArgumentError } from '../errors.js';
import type { WorkloadSpec } from '../guest/index.js';

export function parseCount(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new InvalidArgumentError(`${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

export function parseNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new InvalidArgumentError(`${flag}: expected a number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** One workload per vCPU, each on its own equal share of RAM. */
export function workloadSpecs(kind: string, vcpus: number, totalPages: number, rate: number | undefined): WorkloadSpec[] {
  const per = Math.floor(totalPages / vcpus);
  if (per < 1) throw new InvalidArgumentError(`RAM of ${totalPages} pages is too small for ${vcpus} vCPUs`);
  return Array.from({ length: vcpus }, (_, i) => {
    const firstPage = i * per;
    switch (kind) {
      case 'idle': return { kind: 'idle', heartbeatPage: firstPage };
      case 'stress': return { kind: 'stress', firstPage, pages: per, rateMiBps: rate, order: 'random' };
      case 'fill': return { kind: 'fill', firstPage, fraction: per / (totalPages - firstPage), data: 'random' };
      case 'sweep': return { kind: 'sweep', firstPage, pages: per, sweepsPerSec: rate };
      default:
        throw new InvalidArgumentError(`--workload: unknown workload ${JSON.stringify(kind)}; expected idle, stress, fill or sweep`);
    }
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
