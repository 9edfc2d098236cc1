/**
 * Guest run states, named as QEMU's RunState, and the one table of allowed
 * transitions (STYLE.md habit 5); the guest changes its run state only
 * through the machine made here.
 */
import { StateMachine } from '../state-machine.js';
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

const trace = createTracer('guest');

export function runStateMachine(initial: RunState): StateMachine<RunState> {
  return new StateMachine<RunState>('guest run state', ALLOWED, initial, trace);
}
