/**
 * `--policy KEY=VALUE,...` on `ferry run` and `ferry migrate`: the policy's
 * remedy ladder (migration/remedies.ts) in one flag, as a management
 * tool's migration policy (KubeVirt's MigrationPolicy) is one object. Each
 * key sets one migration parameter row (migration/parameters.ts), checked
 * against it; keys not given keep the guest's settings.
 *
 *   progress-timeout=30s      no new low of what remains for this long (0: never)
 *   budget-per-gib=150s       time allowed per GiB of RAM (0: none)
 *   throttle=on|off           the first remedy: throttle the vCPUs
 *   postcopy=on|off           then switch to post-copy (with --postcopy)
 *   postcopy-after=S          switch to post-copy this long after migrate (with --postcopy)
 *   pause-and-finish=on|off   then pause the guest and send the rest
 *
 * Durations read "30s", "500ms", "2m", or a bare number of seconds.
 */
import { InvalidArgumentError } from '../errors.js';
import { PARAMETER_TABLE, checkParameter, type ParameterKey, type ParameterRow } from '../migration/parameters.js';

/** The keys, the row each sets, and how its value reads. */
const KEYS = {
  'progress-timeout': { key: 'progressTimeoutMs', reads: 'duration' },
  'budget-per-gib': { key: 'completionBudgetPerGiBMs', reads: 'duration' },
  throttle: { key: 'policyThrottle', reads: 'switch' },
  postcopy: { key: 'policyPostcopy', reads: 'switch' },
  'postcopy-after': { key: 'postcopyAfterMs', reads: 'duration' },
  'pause-and-finish': { key: 'pauseAndFinish', reads: 'switch' },
} as const satisfies Record<string, { key: ParameterKey; reads: 'duration' | 'switch' }>;

export type PolicyKey = (typeof KEYS)[keyof typeof KEYS]['key'];

const SWITCH: Readonly<Record<string, number>> = { on: 1, off: 0, true: 1, false: 0, yes: 1, no: 0 };
const PER_UNIT: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The usage lines, each key's text starting at `column`, defaults from the table. */
export function policyUsage(column: number): string {
  const pad = (s: string) => `  ${s}`.padEnd(column);
  const lines = [`${pad('--policy LIST')}what to do about a migration that does not converge, comma-separated:`];
  for (const [name, { key, reads }] of Object.entries(KEYS)) {
    const row = PARAMETER_TABLE[key];
    const value = reads === 'switch' ? `${name}=on|off` : `${name}=S`;
    const means: ParameterRow = row;
    const dflt = reads === 'switch' ? (row.default === 1 ? 'on' : 'off') : `${row.default / 1000}s${means.defaultMeans === undefined ? '' : `: ${means.defaultMeans}`}`;
    lines.push(`${' '.repeat(column)}${value.padEnd(25)}${row.sides.source} (default ${dflt})`);
  }
  lines.push(`${' '.repeat(column)}with no remedy left, the migration is cancelled, saying why`);
  return lines.join('\n');
}

/** The parameters `--policy` sets; an empty object when absent. Errors name the flag and the key. */
export function parsePolicy(text: string | undefined): Partial<Record<PolicyKey, number>> {
  const out: Partial<Record<PolicyKey, number>> = {};
  if (text === undefined) return out;
  for (const item of text.split(',')) {
    const at = item.indexOf('=');
    const name = (at < 0 ? item : item.slice(0, at)).trim();
    const value = at < 0 ? '' : item.slice(at + 1).trim();
    const spec = Object.hasOwn(KEYS, name) ? KEYS[name as keyof typeof KEYS] : undefined;
    if (spec === undefined) {
      throw new InvalidArgumentError(`--policy: unknown key ${JSON.stringify(name)}; known: ${Object.keys(KEYS).join(', ')}`);
    }
    if (at < 0 || value === '') throw new InvalidArgumentError(`--policy: ${name} needs a value (${name}=...)`);
    const n = spec.reads === 'switch' ? (Object.hasOwn(SWITCH, value.toLowerCase()) ? SWITCH[value.toLowerCase()] : undefined) : duration(value);
    if (n === undefined || Number.isNaN(n)) {
      const wanted = spec.reads === 'switch' ? 'on or off' : 'a duration such as 30s, 500ms or 2m';
      throw new InvalidArgumentError(`--policy: ${name} must be ${wanted}, got ${JSON.stringify(value)}`);
    }
    out[spec.key] = checkParameter(spec.key, n, spec.reads === 'switch' ? `--policy ${name}` : `--policy ${name} (in ms)`);
  }
  return out;
}

/** A duration in ms ("30s", "500ms", "2m", "1.5h", a bare number of seconds), or NaN. */
function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text);
  if (m === null) return Number.NaN;
  return Math.round(Number(m[1]) * PER_UNIT[m[2] ?? 's']);
}
