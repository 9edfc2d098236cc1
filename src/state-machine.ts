/**
 * A state machine as STYLE.md habit 5 asks: one table of allowed
 * transitions, one guarded `transition` that traces `A -> B` and emits
 * 'change'. The guest's run state and the migration status are two
 * instances, each with its own table.
 */
import { EventEmitter } from 'node:events';
import { InvalidStateError } from './errors.js';
import type { Tracer } from './trace.js';

export class StateMachine<S extends string> extends EventEmitter<{ change: [to: S, from: S] }> {
  private current: S;

  constructor(
    private readonly what: string,
    private readonly allowed: Readonly<Record<S, readonly S[]>>,
    initial: S,
    private readonly trace: Tracer,
  ) {
    super();
    this.current = initial;
  }

  get state(): S {
    return this.current;
  }

  can(to: S): boolean {
    return this.allowed[this.current].includes(to);
  }

  /** Move to `to` if the table allows it from the current state; the same state is a no-op. */
  transition(to: S): void {
    const from = this.current;
    if (from === to) return;
    if (!this.allowed[from].includes(to)) throw new InvalidStateError(`${this.what}: cannot go from '${from}' to '${to}'`);
    this.current = to;
    this.trace('%s %s -> %s', this.what, from, to);
    this.emit('change', to, from);
  }
}
