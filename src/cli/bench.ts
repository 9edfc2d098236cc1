/** `ferry bench`'s command line; the suite itself is bench/suite.ts. */
import { runBench, scenarios } from '../bench/suite.js';
import { stopAllFerries } from '../client/children.js';
import { SIGNAL_EXIT_CODE, onInterrupt } from '../client/interrupts.js';
import { InvalidArgumentError } from '../errors.js';
import { parseCommandLine } from './options.js';
import { COMMAND_FLAGS, parseNumberFlag } from './number-flags.js';

export const BENCH_USAGE = `usage: ferry bench [--quick | --smoke] [--runs N] [--out FILE] [--report FILE] [--only NAME,...] [--rows TEXT]

Run the benchmark suite: this machine's limits, then each scenario between
two ferry processes, with medians and ranges, targets met or not.

  --quick        small guests, one run each (under 2 minutes)
  --smoke        the first scenario of each group of --quick only: checks that every group runs (under 1 minute)
  --runs N       runs per scenario (default 3; --quick: 1)
  --out FILE     write all figures as JSON (default: bench-results.json)
  --report FILE  write the convergence map as an HTML page with a chart (default: bench-map.html)
  --only NAMES   run only these scenario groups (idle, zeroed, random, multifd (the random guest on 1, 2 and 4
                 channels), prealloc (the destination preallocated), hugepages (the destination with
                 --huge-pages, where reachable), compression (auto; over the veth as root),
                 sweep, converge, postcopy, thread, netns, converge-link (as root: issue 14's remedies
                 over the 1 Gbit/s veth), xbzrle-link (as root: xbzrle on the same guest and link), map)
  --rows TEXT    within those groups, only the scenarios whose name contains TEXT (case-insensitive),
                 e.g. --only converge-link --rows "downtime-limit 300"
  -h, --help     this text`;

/**
 * The scenario groups --only names (the usage above lists them): every
 * group of the full suite's list (with a link named, so that the veth
 * groups are in it), and netns, the veth's own limits.
 */
const BENCH_GROUPS = [...new Set([...scenarios(false, 1, { source: '', destination: '', listenHost: '' }).map((s) => s.group), 'netns'])];

export async function benchCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    runs: { type: 'string' },
    out: { type: 'string', default: 'bench-results.json' },
    report: { type: 'string', default: 'bench-map.html' },
    only: { type: 'string' },
    rows: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    console.log(BENCH_USAGE);
    return 0;
  }
  const quick = values.quick || values.smoke;
  const only = values.only === undefined ? null : new Set(values.only.split(','));
  const unknown = [...(only ?? [])].filter((g) => !BENCH_GROUPS.includes(g));
  if (unknown.length > 0) throw new InvalidArgumentError(`--only: unknown scenario group ${unknown.join(', ')}; expected some of ${BENCH_GROUPS.join(', ')}`);
  const rows = values.rows ?? null;
  const named = scenarios(quick, 1, { source: '', destination: '', listenHost: '' }).filter((s) => (only === null || only.has(s.group)) && s.spec.name.toLowerCase().includes(rows?.toLowerCase() ?? ''));
  if (named.length === 0) throw new InvalidArgumentError(`--rows: no scenario${only === null ? '' : ` of ${[...only].join(', ')}`} has "${rows}" in its name`);
  const runs = values.runs === undefined ? (quick ? 1 : 3) : parseNumberFlag(COMMAND_FLAGS.runs, values.runs);
  // Interrupted (Ctrl-C, SIGTERM: also a test's time limit): stop the guest processes of the scenario under way
  // (also one still starting), then exit as the signal would; left running, a sweeping guest would spin on.
  let interrupted = false;
  const unguard = onInterrupt((signal) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`ferry bench: ${signal}: stopping the scenario's guest processes`);
    void stopAllFerries().finally(() => process.exit(SIGNAL_EXIT_CODE[signal]));
  });
  try {
    await runBench({ quick, smoke: values.smoke, runs, out: values.out, report: values.report, only, rows, command: `ferry bench ${argv.join(' ')}`.trim() });
  } finally {
    unguard();
  }
  return 0;
}
