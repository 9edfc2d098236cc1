/**
 * Bounded, named waits for tests (STYLE.md habit 16): a test waits for a
 * state or an event, never for a duration, and every wait has a bound whose
 * failure names what was awaited. Each test file also gets a time limit of
 * its own (`fileLimit`), and a file whose process stays alive after its
 * last test fails, naming what keeps it alive, instead of hanging the run.
 */
import { after } from 'node:test';

/** The waits now pending in this process, by name, so a stalled file can say which. */
const pending = new Map<number, string>();
let nextId = 1;

export class WaitTimeout extends Error {
  readonly code = 'ERR_TEST_WAIT_TIMEOUT';
}

/** `promise`, or a WaitTimeout naming `what` after `ms`. */
export async function bounded<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  const id = nextId++;
  pending.set(id, what);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeout(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
    pending.delete(id);
  }
}

/**
 * Poll `check` every `everyMs` until it returns a value other than
 * undefined/false, and return that value; a WaitTimeout naming `what` after `ms`.
 */
export async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms: number, everyMs = 10): Promise<T> {
  const poll = async (): Promise<T> => {
    const deadline = performance.now() + ms + everyMs; // the race below fails first
    while (performance.now() < deadline) {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      await new Promise((r) => setTimeout(r, everyMs));
    }
    throw new WaitTimeout(`timed out after ${ms} ms waiting for ${what}`);
  };
  return bounded(what, poll(), ms);
}

/** The first `event` from `emitter` (its arguments), bounded. */
export function nextEvent<A extends unknown[]>(what: string, emitter: { once(event: string, fn: (...args: A) => void): unknown }, event: string, ms: number): Promise<A> {
  return bounded(what, new Promise<A>((resolve) => emitter.once(event, (...args: A) => resolve(args))), ms);
}

/** What keeps this process alive, and the waits still pending. */
function aliveReport(): string {
  const waits = [...pending.values()];
  return `pending waits: ${waits.length === 0 ? 'none' : waits.join('; ')}; alive: ${process.getActiveResourcesInfo().join(', ')}`;
}

/**
 * Give the calling test file a time limit: when `ms` pass, it prints which
 * waits were pending and what kept the process alive, and exits 1 (the
 * runner reports the file as failed). Also, a file whose tests are done but
 * whose process is still alive `exitGraceMs` later fails the same way: a
 * leaked guest, worker or socket must not hang the run.
 */
export function fileLimit(file: string, ms: number, exitGraceMs = 10_000): void {
  const name = file.replace(/^.*\/dist\//, '');
  const fail = (why: string) => {
    process.stderr.write(`\n# ${name}: ${why}; ${aliveReport()}\n`);
    process.exit(1);
  };
  setTimeout(() => fail(`the file's limit of ${ms} ms ran out`), ms).unref();
  after(() => {
    setTimeout(() => fail(`the process was still alive ${exitGraceMs} ms after its last test`), exitGraceMs).unref();
  });
}
