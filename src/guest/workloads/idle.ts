/** `idle`: touches only a heartbeat page, now and then. */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { checkInt, checkRate, type IdleSpec, type Workload, type WorkloadState } from './workload.js';

interface IdleState extends WorkloadState {
  kind: 'idle';
  heartbeatPage: number;
  intervalNs: number;
  beats: number;
  nextNs: number;
}

export class IdleWorkload implements Workload {
  readonly kind = 'idle';
  pagesDone = 0;
  private constructor(private readonly s: IdleState) {}

  static create(spec: IdleSpec, totalPages: number): IdleWorkload {
    return new IdleWorkload({
      kind: 'idle',
      heartbeatPage: checkInt('idle: heartbeatPage', spec.heartbeatPage ?? 0, 0, totalPages - 1),
      intervalNs: Math.round(checkRate('idle: intervalMs', spec.intervalMs ?? 100, 3_600_000) * 1e6),
      beats: 0,
      nextNs: 0,
    });
  }

  static restore(state: WorkloadState, totalPages: number): IdleWorkload {
    const s = state as IdleState;
    checkInt('idle: heartbeatPage', s.heartbeatPage, 0, totalPages - 1);
    return new IdleWorkload({ ...s });
  }

  step(mem: GuestMemory, nowNs: number): number {
    if (nowNs < this.s.nextNs) return 0;
    const beats = (this.s.beats + 1) >>> 0;
    mem.storeU32(this.s.heartbeatPage, 0, beats); // the beat counts once stored (restartable)
    this.s.beats = beats;
    this.pagesDone++;
    this.s.nextNs = Math.max(this.s.nextNs + this.s.intervalNs, nowNs);
    return 1;
  }

  save(): WorkloadState {
    return { ...this.s };
  }
}
