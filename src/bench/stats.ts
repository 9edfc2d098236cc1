/** Small helpers for benchmarks: repeat, median and range, formatting. */
export interface Sample {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function summarize(values: number[]): Sample {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2, min: s[0], max: s[s.length - 1] };
}

/** Run `fn` `runs` times after one warm-up; each call returns its own figure. */
export function repeat(runs: number, fn: () => number): Sample {
  fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(fn());
  return summarize(out);
}

export function fmt(s: Sample, digits = 2): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
}

export function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}
