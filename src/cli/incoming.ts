/**
 * `ferry incoming`: wait for one incoming migration, let the migrated guest
 * run on (until Ctrl-C or SIGTERM, or for --seconds), then pause it and
 * check what can be checked (the sweep checker on every `sweep` vCPU).
 * After a migration the arrived guest is the one copy that runs, so by
 * default nothing but the user stops it.
 */
import { checkSweep, type Guest, type SweepState } from '../guest/index.js';
import { GuestController } from '../control/controller.js';
import { QmpServer } from '../control/qmp-server.js';
import { IncomingMigration, type IncomingOptions } from '../migration/incoming.js';
import type { PreallocFigures } from '../migration/preallocation.js';
import { requireHugePages, type HugePagesFigures } from '../memory/huge-pages.js';
import { TLS_OPTIONS, TLS_USAGE, checkedTls, parseCommandLine } from './options.js';
import { COMMAND_FLAGS, parseNumberFlag } from './number-flags.js';
import { parameterFlags } from './parameter-flags.js';
import { parseControlUri, parseUri } from '../transport/uri.js';
import { nextInterrupt, sleepUnlessInterrupted } from '../client/interrupts.js';
import { WASM_OPTIONS, loadGuestProgram, programEnd } from './wasm-program.js';

/** The destination's limits (--max-ram, --max-frame, --idle-timeout). */
const PARAMETER_FLAGS = parameterFlags('destination');

export const INCOMING_USAGE = `usage: ferry incoming --listen URI [options]
       ferry incoming --qmp CONTROL [--listen URI]

Wait for a guest to migrate in and run it until Ctrl-C (SIGINT) or SIGTERM,
or for --seconds; then pause it, check it and exit (0: the check passed).
With --qmp, serve QMP instead and run until 'quit'; without --listen, wait
for 'migrate-incoming' (QEMU's -incoming defer).

  --listen URI        tcp:HOST:PORT (port 0 picks a free port), unix:PATH or file:PATH
  --qmp CONTROL       serve QMP on unix:PATH or tcp:127.0.0.1:PORT
${PARAMETER_FLAGS.usage(22)}
  --prealloc          touch the pages the source will send (its ever-written map) while they come, on
                      --prealloc-threads threads, within free memory (QEMU's -mem-prealloc; not with
                      post-copy nor file:); its time is reported apart
  --huge-pages        advise the guest's RAM for transparent huge pages (2 MiB) before any page
                      arrives: fewer page faults while loading. Refused, saying why, without the
                      optional package ferry-hugepages or with THP set to never (README: Huge pages)
  --ram SIZE          accept only a guest of exactly this RAM; a number alone is MiB (default: any)
  --vcpus N           accept only a guest with this many vCPUs (default: any)
  --seconds S         stop the migrated guest and check it after S seconds
                      (default: it runs until Ctrl-C or SIGTERM)
  --insecure          allow listening on a non-loopback address without TLS
${TLS_USAGE}
  --wasm PROGRAM      the WebAssembly program the source runs (the same file: its identity
                      is checked before any page); runs until it exits, and exits with its status
  --wasm-max-memory SIZE  as given to the source's ferry run (part of the program's identity)
  --wasm-unwind-buffer SIZE  as given to the source's ferry run (part of the program's identity)
  --json              print JSON lines: {"event":"listening",...}, {"event":"running","atMs":...}
                      when the guest starts running here, then {"event":"result",...}
  -h, --help          this text`;

/** `ferry incoming`'s command line, and the destination's limits on it (checked; errors name the flag). */
export function parseIncomingArgs(argv: string[]) {
  const { values } = parseCommandLine(argv, {
    listen: { type: 'string' },
    ...PARAMETER_FLAGS.options,
    ram: { type: 'string' },
    qmp: { type: 'string' },
    insecure: { type: 'boolean', default: false },
    prealloc: { type: 'boolean', default: false },
    'huge-pages': { type: 'boolean', default: false },
    ...TLS_OPTIONS,
    vcpus: { type: 'string' },
    seconds: { type: 'string' },
    json: { type: 'boolean', default: false },
    wasm: WASM_OPTIONS.wasm,
    'wasm-max-memory': WASM_OPTIONS['wasm-max-memory'],
    'wasm-unwind-buffer': WASM_OPTIONS['wasm-unwind-buffer'],
    help: { type: 'boolean', short: 'h', default: false },
  });
  return { values, parameters: values.help ? {} : PARAMETER_FLAGS.parse(values) };
}

export async function incomingCommand(argv: string[]): Promise<number> {
  const { values, parameters } = parseIncomingArgs(argv);
  if (values.help) {
    console.log(INCOMING_USAGE);
    return 0;
  }
  const expect = {
    ramBytes: values.ram === undefined ? undefined : parseNumberFlag(COMMAND_FLAGS.ram, values.ram),
    vcpus: values.vcpus === undefined ? undefined : parseNumberFlag(COMMAND_FLAGS.expectVcpus, values.vcpus),
  };
  // Every option is checked before anything starts listening: addresses, TLS files and their combination.
  const seconds = values.seconds === undefined ? undefined : parseNumberFlag(COMMAND_FLAGS.incomingSeconds, values.seconds);
  if (values.qmp !== undefined) parseControlUri(values.qmp);
  const tls = checkedTls(values, 'destination', values.listen === undefined ? undefined : parseUri(values.listen));
  if (values['huge-pages']) requireHugePages('--huge-pages');
  const program = values.wasm === undefined ? undefined : (await loadGuestProgram(values, [])).program;
  const options: IncomingOptions = {
    ...parameters, prealloc: values.prealloc ? 1 : 0, hugePages: values['huge-pages'], expect, tls, allowInsecure: values.insecure, wasm: program,
  };
  if (values.qmp !== undefined) return serveIncoming(values.qmp, values.listen, options);
  if (values.listen === undefined) {
    console.error(`ferry incoming: --listen URI is required\n\n${INCOMING_USAGE}`);
    return 2;
  }
  const say = (event: string, data: Record<string, unknown>, text: string) => {
    // A program owns standard output: ferry's own lines then go to standard error.
    (program === undefined ? console.log : console.error)(values.json ? JSON.stringify({ event, ...data }) : text);
  };
  // The moment the guest starts running here, on the epoch clock (ms, microsecond resolution), so that
  // a watcher can check that two copies never run at once (DESIGN.md invariant 6).
  const onGuest = (g: Guest) => g.on('runstate', (to) => {
    if (to === 'running') say('running', { atMs: performance.timeOrigin + performance.now() }, 'guest running');
  });
  const incoming = await IncomingMigration.listen(values.listen, { ...options, onGuest });
  incoming.on('rejected', (reason) => console.error(`ferry incoming: refused a source: ${reason}`));
  say('listening', { uri: incoming.uri }, `listening on ${incoming.uri}`);
  const result = await incoming.done();
  const prealloc = incoming.preallocation;
  if (prealloc !== null) say('prealloc', { prealloc }, preallocLine(prealloc));
  const hugePages = result.stats?.hugePages ?? null;
  if (hugePages !== null) say('huge-pages', { hugePages }, hugePagesLine(hugePages));
  if (result.status !== 'resumed' || result.guest === null) {
    say('result', { status: result.status, error: result.error, stats: result.stats, check: null },
      `incoming migration ${result.status}: ${result.error ?? ''}`);
    // Exiting at once would reset the connection before the source read why (REFUSED or ERROR).
    await incoming.released();
    return 1;
  }
  const guest = result.guest;
  if (program !== undefined) return runProgramHere(guest, values.json);
  const interrupt = nextInterrupt();
  try {
    if (!values.json) console.log(`guest resumed here; running it ${seconds === undefined ? 'until Ctrl-C (SIGINT) or SIGTERM' : `for ${seconds} s`}`);
    const signal = seconds === undefined ? await interrupt.signal : await sleepUnlessInterrupted(seconds * 1000, interrupt.signal);
    if (signal !== null && !values.json) console.log(`${signal}: stopping the guest and checking it`);
    await guest.pause();
    const checks = guest.vcpuStates()
      .flatMap((s) => (s.workload.kind === 'sweep' ? [checkSweep(guest.memory, s.workload as SweepState)] : []));
    const ok = checks.every((c) => c.ok);
    say('result', { status: result.status, error: null, stats: result.stats, check: checks.length === 0 ? null : ok, pagesWritten: guest.pagesWritten },
      checks.length === 0 ? 'no sweep vCPU to check' : `sweep check after running on: ${ok ? 'passed' : `FAILED: ${checks.flatMap((c) => c.errors).join('; ')}`}`);
    return ok ? 0 : 1;
  } finally {
    interrupt.dispose();
    await guest.destroy();
  }
}

/** Preallocation's outcome in one line, its time apart from the migration's. */
export function preallocLine(f: PreallocFigures): string {
  const mib = (pages: number) => `${(pages * 4096 / 2 ** 20).toFixed(1)} MiB`;
  const why: Record<PreallocFigures['status'], string> = {
    'waiting-for-map': 'the source sent no map', touching: 'still touching', completed: 'every page of the map',
    capped: `stopped at the free-memory cap of ${mib(f.capPages)}`, stopped: 'the last page arrived first', failed: f.error ?? 'a thread failed',
  };
  return `preallocation ${f.status}: ${mib(f.touchedPages)} of the source's ${mib(f.mapPages)} touched in ${f.ms} ms on ${f.threads} threads (${why[f.status]})`;
}

/** Huge pages' outcome in one line: what was advised, and what the process holds in huge pages after loading. */
export function hugePagesLine(f: HugePagesFigures): string {
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const held = f.anonHugeBytes === null ? 'AnonHugePages unreadable' : `the process holds ${mib(f.anonHugeBytes)} in huge pages (AnonHugePages)`;
  return `huge pages: ${mib(f.advisedBytes)} of RAM advised; after loading ${held}`;
}

/** A program that arrived runs here until it exits; this process exits with its status (ferry's lines go to standard error). */
async function runProgramHere(guest: Guest, json: boolean): Promise<number> {
  try {
    const code = await programEnd(guest);
    if (!json) console.error(`ferry incoming: the program exited with status ${code}`);
    return code;
  } finally {
    await guest.destroy();
  }
}

/** A destination behind a QMP socket: `migrate-incoming` (or --listen) starts it; `quit` ends it. */
async function serveIncoming(control: string, listen: string | undefined, incoming: IncomingOptions): Promise<number> {
  const ctl = new GuestController(null, { incoming });
  const server = await QmpServer.listen(control, ctl);
  console.log(`QMP control socket on ${server.uri}; waiting for ${listen === undefined ? "'migrate-incoming'" : listen}`);
  if (listen !== undefined) await ctl.migrateIncoming(listen);
  await new Promise<void>((resolve) => ctl.once('quit', resolve));
  server.close();
  await ctl.guest?.destroy();
  return 0;
}
