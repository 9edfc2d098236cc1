/**
 * SIGINT (Ctrl-C) and SIGTERM for the commands that start something
 * (STYLE.md habit 18: Ctrl-C undoes what the command started). While a
 * handler is installed, a signal calls it instead of ending the process,
 * so that the command can undo what it started (cancel its migration, stop
 * its child processes) or refuse to end (a source that may hold the only
 * copy of a guest), and then return an exit code of its own.
 */

export type InterruptSignal = 'SIGINT' | 'SIGTERM';

/** The exit code of a process ended by `signal`, as a shell reports it (128 + the signal's number). */
export const SIGNAL_EXIT_CODE: Readonly<Record<InterruptSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Call `handler` on every SIGINT and SIGTERM until the returned function is called. */
export function onInterrupt(handler: (signal: InterruptSignal) => void): () => void {
  const onInt = () => handler('SIGINT');
  const onTerm = () => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}

/** The first SIGINT or SIGTERM from now on, as a promise; `dispose` restores the default (the signal ends the process). */
export function nextInterrupt(): { readonly signal: Promise<InterruptSignal>; dispose(): void } {
  let dispose = () => {};
  const signal = new Promise<InterruptSignal>((resolve) => {
    dispose = onInterrupt(resolve);
  });
  return { signal, dispose: () => dispose() };
}

/** Resolves with null after `ms`, or with the signal if one comes first (its timer then stops: nothing keeps the process alive). */
export function sleepUnlessInterrupted(ms: number, interrupt: Promise<InterruptSignal>): Promise<InterruptSignal | null> {
  let timer: NodeJS.Timeout | undefined;
  const slept = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), ms); });
  return Promise.race([slept, interrupt]).finally(() => clearTimeout(timer));
}
