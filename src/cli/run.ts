/**
 * `ferry run`: start a guest, run its workload for a while, printing what
 * it does; at the end pause it and check what can be checked (the sweep
 * checker for a `sweep` workload).
 */
import { InvalidArgumentError } from '../errors.js';
import { checkSweep, type SweepState } from '../guest/index.js';
import { prepareMigrationThread } from '../migration/migration.js';
import { migrateGuest, serveQmp } from './run-source.js';
import { TLS_OPTIONS, TLS_USAGE, checkedTls, parseCommandLine, workloadSpecs } from './options.js';
import { COMMAND_FLAGS, parseNumberFlag } from './number-flags.js';
import { parsePolicy, policyUsage } from './policy-flag.js';
import { COMMAND_LINE_DEFAULTS, parameterFlags } from './parameter-flags.js';
import { checkRamSize, createGuest, overcommitUsage } from './ram-limit.js';
import { runWasmCommand } from './run-wasm.js';
import { WASM_OPTIONS, WASM_USAGE, splitProgramArgs } from './wasm-program.js';
import { formatBytes } from '../client/size.js';
import { requireHugePages } from '../memory/huge-pages.js';
import { sleep } from '../migration/waiter.js';
import { SIGNAL_EXIT_CODE, type InterruptSignal } from '../client/interrupts.js';
import { parseControlUri, parseUri } from '../transport/uri.js';

/** The source's migration parameters (--downtime-limit, ...; --timeout 300 unless given). */
const PARAMETER_FLAGS = parameterFlags('source', undefined, COMMAND_LINE_DEFAULTS);

export const RUN_USAGE = `usage: ferry run [options]
       ferry run --wasm PROGRAM [options] [-- ARGS...]

Start a guest and run a workload on its vCPUs, or a WebAssembly program.

  --ram SIZE          guest RAM, e.g. 256M, 4G; a number alone is MiB, as QEMU's -m
                      (default 256M; blocks of at most 4 GiB)
${overcommitUsage(22)}
  --vcpus N           number of vCPUs (default 1); each runs the workload on its own range
  --workload KIND     idle | stress | fill | sweep | read (default sweep)
  --rate N            stress, read: MiB/s; sweep: sweeps per second (default: full speed)
  --fill-data KIND    fill: random | text | zero (default random)
  --sweep-data KIND   sweep: zero | random, what the rest of each page holds (default zero)
  --then-zero         fill: zero the same pages again afterwards
  --throttle PCT      each vCPU sleeps PCT % of every slice (default 0)
  --seconds S         how long to run before migrating or stopping (default 3)
${WASM_USAGE}
  --migrate-to URI    then migrate the guest to tcp:HOST:PORT, unix:PATH or file:PATH
  --qmp CONTROL       serve QMP on unix:PATH or tcp:127.0.0.1:PORT and run until 'quit'
                      (then 'ferry migrate --qmp CONTROL --to URI' migrates it)
${PARAMETER_FLAGS.usage(24)}
${policyUsage(24)}
${TLS_USAGE}
  --verify            digest the pages sent and loaded; the destination resumes only if equal
  --auto-converge     throttle the vCPUs while the guest dirties faster than the migration sends
  --multifd          send the pages on --multifd-channels connections, each with its own thread
  --xbzrle            send pages sent before as deltas against a cache of --xbzrle-cache-size (QEMU's xbzrle)
  --dirty-limit       throttle only the vCPUs that dirty faster than --vcpu-dirty-limit (not with --auto-converge)
  --postcopy          allow post-copy (QEMU's postcopy-ram), started by --policy postcopy=on or postcopy-after=S
  --force             let Ctrl-C/SIGTERM end this source even past GO, when it may
                      hold the only copy of the guest (refused without it)
  --huge-pages        advise the guest's RAM for transparent huge pages (2 MiB) before it runs;
                      refused, saying why, where they are not reachable (README: Huge pages)
  --json              print the final figures as JSON
  -h, --help          this text

Ctrl-C (SIGINT) or SIGTERM during a migration cancels it before GO (the guest
runs on here, is checked, and the process exits 130 or 143); past GO it is
refused with a message until the migration ends.

exit codes: 0 completed (or the check passed), 1 failed or the check failed,
  2 bad usage, 130/143 ended by SIGINT/SIGTERM`;

/** `ferry run`'s command line, and the migration parameters on it (checked; errors name the flag). */
export function parseRunArgs(argv: string[]) {
  const split = splitProgramArgs(argv);
  const { values } = parseCommandLine(split.ferry, {
    ram: { type: 'string', default: '256M' },
    overcommit: { type: 'boolean', default: false },
    vcpus: { type: 'string', default: '1' },
    workload: { type: 'string', default: 'sweep' },
    rate: { type: 'string' },
    'fill-data': { type: 'string', default: 'random' },
    'sweep-data': { type: 'string', default: 'zero' },
    'then-zero': { type: 'boolean', default: false },
    throttle: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '3' },
    'migrate-to': { type: 'string' },
    qmp: { type: 'string' },
    ...PARAMETER_FLAGS.options,
    policy: { type: 'string' },
    ...TLS_OPTIONS,
    verify: { type: 'boolean', default: false },
    'auto-converge': { type: 'boolean', default: false },
    multifd: { type: 'boolean', default: false },
    xbzrle: { type: 'boolean', default: false },
    'dirty-limit': { type: 'boolean', default: false },
    postcopy: { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'huge-pages': { type: 'boolean', default: false },
    ...WASM_OPTIONS,
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.wasm === undefined && split.program.length > 0) {
    throw new InvalidArgumentError(`arguments after -- are a program's: give the program with --wasm (got ${split.program.join(' ')})`);
  }
  return { values, parameters: values.help ? {} : { ...PARAMETER_FLAGS.parse(values), ...parsePolicy(values.policy) }, programArgs: split.program };
}

export async function runCommand(argv: string[]): Promise<number> {
  const { values, parameters, programArgs } = parseRunArgs(argv);
  if (values.help) {
    console.log(RUN_USAGE);
    return 0;
  }
  if (values.wasm !== undefined) return runWasmCommand(values, parameters, programArgs);
  const ram = parseNumberFlag(COMMAND_FLAGS.ram, values.ram);
  checkRamSize(values.ram, ram, values.overcommit);
  const vcpus = parseNumberFlag(COMMAND_FLAGS.vcpus, values.vcpus);
  const seconds = parseNumberFlag(COMMAND_FLAGS.seconds, values.seconds);
  const throttle = parseNumberFlag(COMMAND_FLAGS.throttle, values.throttle);
  const rate = values.rate === undefined ? undefined : parseNumberFlag(COMMAND_FLAGS.rate, values.rate);
  const totalPages = ram / 4096;
  const fillData = values['fill-data'];
  if (fillData !== 'random' && fillData !== 'text' && fillData !== 'zero') {
    throw new InvalidArgumentError(`--fill-data: expected random, text or zero, got ${JSON.stringify(fillData)}`);
  }
  const sweepData = values['sweep-data'];
  if (sweepData !== 'zero' && sweepData !== 'random') throw new InvalidArgumentError(`--sweep-data: expected zero or random, got ${JSON.stringify(sweepData)}`);
  const specs = workloadSpecs(values.workload, vcpus, totalPages, rate, { data: fillData, thenZero: values['then-zero'], sweepData });
  // Addresses and TLS are checked before the guest starts, not when it is time to migrate.
  if (values.qmp !== undefined) parseControlUri(values.qmp);
  const tls = checkedTls(values, 'source', values['migrate-to'] === undefined ? undefined : parseUri(values['migrate-to']));

  const log = values.json ? () => {} : (s: string) => console.log(s);
  if (values['migrate-to'] !== undefined) prepareMigrationThread();
  if (values['huge-pages']) requireHugePages('--huge-pages');
  const guest = await createGuest(values.ram, { ram, vcpus: specs, hugePages: values['huge-pages'] });
  try {
    log(`guest: ${formatBytes(ram)} in ${guest.blocks.length} block(s), ${vcpus} vCPU(s) running ${values.workload}` +
      (guest.hugePagesAdvised === null ? '' : `; ${formatBytes(guest.hugePagesAdvised)} advised for huge pages`));
    guest.throttle(throttle);
    await guest.cont();
    if (values.qmp !== undefined) return await serveQmp(guest, values.qmp, tls, values.force, log);
    const started = performance.now();
    let last = { t: started, pages: 0 };
    while (performance.now() - started < seconds * 1000) {
      await sleep(Math.min(1000, seconds * 1000 - (performance.now() - started)));
      const now = { t: performance.now(), pages: guest.pagesWritten };
      const pagesPerSec = (now.pages - last.pages) / ((now.t - last.t) / 1000);
      log(`  ${((now.t - started) / 1000).toFixed(1)} s: ${now.pages} page writes, ${(pagesPerSec / 1e6).toFixed(2)} M pages/s`);
      last = now;
    }
    let interrupted: InterruptSignal | null = null;
    if (values['migrate-to'] !== undefined) {
      const m = await migrateGuest(guest, values['migrate-to'], parameters, { verify: values.verify, autoConverge: values['auto-converge'], dirtyLimit: values['dirty-limit'], multifd: values.multifd, xbzrle: values.xbzrle, postcopy: values.postcopy, tls, force: values.force, json: values.json, log });
      if (m.interrupted === null) return m.code;
      interrupted = m.interrupted;
      // Cancelled by Ctrl-C or SIGTERM before GO: the guest runs on here; check it, then exit as a signal would.
      log(`${interrupted}: the guest runs on here; checking it`);
    }
    const t0 = performance.now();
    await guest.pause();
    const pauseMs = performance.now() - t0;
    for (const b of guest.blocks) b.log.sync();
    const everWritten = guest.blocks.reduce((n, b) => n + b.log.everWrittenCount, 0);
    const states = guest.vcpuStates();
    const checks = states.flatMap((s) => (s.workload.kind === 'sweep' ? [checkSweep(guest.memory, s.workload as SweepState)] : []));
    const ok = checks.every((c) => c.ok);
    const result = {
      ramBytes: ram,
      vcpus,
      workload: values.workload,
      seconds,
      pagesWritten: guest.pagesWritten,
      everWrittenPages: everWritten,
      pauseAckMs: Number(pauseMs.toFixed(3)),
      vcpuStats: guest.vcpuStats(),
      sweepCheck: checks.length === 0 ? null : ok,
      ...(interrupted === null ? {} : { interrupted, migration: 'cancelled' }),
    };
    if (values.json) {
      console.log(JSON.stringify(result, null, 2));
    } else {
      log(`paused in ${pauseMs.toFixed(2)} ms; ${everWritten} of ${totalPages} pages ever written`);
      if (checks.length > 0) log(`sweep check: ${ok ? 'passed' : `FAILED: ${checks.flatMap((c) => c.errors).join('; ')}`}`);
    }
    return interrupted !== null ? SIGNAL_EXIT_CODE[interrupted] : ok ? 0 : 1;
  } finally {
    await guest.destroy();
  }
}
