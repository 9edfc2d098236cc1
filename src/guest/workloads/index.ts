/** The workload registry: create from a spec, restore from a saved state. */
import { InvalidArgumentError } from '../../errors.js';
import { FillWorkload } from './fill.js';
import { IdleWorkload } from './idle.js';
import { ReadWorkload } from './read.js';
import { StressWorkload } from './stress.js';
import { SweepWorkload } from './sweep.js';
import { TouchWorkload } from './touch.js';
import { WORKLOAD_KINDS, type Workload, type WorkloadSpec, type WorkloadState } from './workload.js';

export * from './workload.js';
export { FillWorkload, IdleWorkload, ReadWorkload, StressWorkload, SweepWorkload, TouchWorkload };
export { replayTouches } from './touch.js';
export type { SweepState } from './sweep.js';

function checkKind(kind: unknown): void {
  if (!(WORKLOAD_KINDS as readonly unknown[]).includes(kind)) {
    throw new InvalidArgumentError(`unknown workload ${JSON.stringify(kind)}: expected one of ${WORKLOAD_KINDS.join(', ')}`);
  }
}

/** A new workload from its spec; throws a clear error for a bad spec. */
export function createWorkload(spec: WorkloadSpec, totalPages: number): Workload {
  if (spec === null || typeof spec !== 'object') {
    throw new InvalidArgumentError(`workload spec must be an object, got ${JSON.stringify(spec)}`);
  }
  checkKind(spec.kind);
  switch (spec.kind) {
    case 'idle': return IdleWorkload.create(spec, totalPages);
    case 'stress': return StressWorkload.create(spec, totalPages);
    case 'fill': return FillWorkload.create(spec, totalPages);
    case 'sweep': return SweepWorkload.create(spec, totalPages);
    case 'read': return ReadWorkload.create(spec, totalPages);
    case 'touch': return TouchWorkload.create(spec, totalPages);
  }
}

/** A workload continuing exactly from a state saved by `save()`. */
export function restoreWorkload(state: WorkloadState, totalPages: number): Workload {
  if (state === null || typeof state !== 'object') {
    throw new InvalidArgumentError(`workload state must be an object, got ${JSON.stringify(state)}`);
  }
  checkKind(state.kind);
  switch (state.kind) {
    case 'idle': return IdleWorkload.restore(state, totalPages);
    case 'stress': return StressWorkload.restore(state, totalPages);
    case 'fill': return FillWorkload.restore(state, totalPages);
    case 'sweep': return SweepWorkload.restore(state, totalPages);
    case 'read': return ReadWorkload.restore(state, totalPages);
    case 'touch': return TouchWorkload.restore(state, totalPages);
  }
}
