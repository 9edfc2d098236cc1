/**
 * Guest run states, named as QEMU's RunState, and the one table of allowed
 * transitions (STYLE.md habit 5). `RunStateMachine.transition` is the only
 * place a run state changes; it traces `A -> B` and emits 'runstate'.
 */
import { EventEmitter } from 'node:events';
import { InvalidStateError } from '../errors.js';
import { createTracer } from '../trace.js';

export type RunState =
  | 'prelaunch'      // created, vCPUs started and waiting, never run
  | 'inmigrate'      // destination: waiting for an incoming migration
  | 'running'
  | 'paused'         // stopped by the user (QMP `stop`)
  | 'finish-migrate' // source: paused for switchover
  | 'postmigrate'    // source: migration committed; never resumes by itself
  | 'internal-error' // a vCPU failed
  | 'shutdown';      // vCPUs exited

const ALLOWED: Readonly<Record<RunState, readonly RunState[]>> = {
  prelaunch: ['running', 'paused', 'inmigrate', 'finish-migrate', 'shutdown', 'internal-error'],
  inmigrate: ['running', 'paused', 'prelaunch', 'shutdown', 'internal-error'],
  running: ['paused', 'finish-migrate', 'shutdown', 'internal-error'],
  paused: ['running', 'finish-migrate', 'postmigrate', 'shutdown', 'internal-error'],
  'finish-migrate': ['running', 'paused', 'prelaunch', 'postmigrate', 'shutdown', 'internal-error'],
  postmigrate: ['running', 'paused', 'prelaunch', 'shutdown', 'internal-error'],
  'internal-error': ['paused', 'shutdown'],
  shutdown: [],
};

/** States in which vCPUs write guest RAM. */
export function isRunning(state: RunState): boolean {
  return state === 'running';
}

const trace = createTracer('guest');

export class RunStateMachine extends EventEmitter<{ runstate: [to: RunState, from: RunState] }> {
  private current: RunState;

  constructor(initial: RunState) {
    super();
    this.current = initial;
  }

  get state(): RunState {
    return this.current;
  }

  canTransition(to: RunState): boolean {
    return ALLOWED[this.current].includes(to);
  }

  /** Move to `to`, if the table allows it from the current state. */
  transition(to: RunState): void {
    const from = this.current;
    if (from === to) return;
    if (!ALLOWED[from].includes(to)) {
      throw new InvalidStateError(`guest: cannot go from run state '${from}' to '${to}'`);
    }
    this.current = to;
    trace('run state %s -> %s', from, to);
    this.emit('runstate', to, from);
  }
}
