/**
 * A benchmark's line on the destination's preallocation (`ferry incoming
 * --prealloc`): its time apart from the migration's, and how much of the
 * source's map it touched, over a scenario's runs.
 */
import type { RunResult } from './scenario.js';
import { summarize } from './stats.js';

/** The line, or null when no run preallocated. */
export function preallocNote(runs: readonly RunResult[]): string | null {
  const figures = runs.flatMap((r) => (r.prealloc == null ? [] : [r.prealloc]));
  if (figures.length === 0) return null;
  const ms = summarize(figures.map((f) => f.ms));
  const mib = (pages: number) => (pages * 4096 / 2 ** 20).toFixed(0);
  const statuses = [...new Set(figures.map((f) => f.status))].join(', ');
  const touched = figures.map((f) => `${mib(f.touchedPages)} of ${mib(f.mapPages)} MiB`).join('; ');
  return `destination preallocation ${statuses} in ${ms.median.toFixed(0)} ms (${ms.min.toFixed(0)}-${ms.max.toFixed(0)}) on ${figures[0].threads} threads, ` +
    `apart from the migration's total; touched ${touched} per run`;
}
