export * from './run-state.js';
export * from './device-state.js';
export * from './guest-ram.js';
export * from './guest-pages.js';
export * from './guest.js';
export * from './sweep-checker.js';
export { Stat, MAX_VCPU_STATE_BYTES } from './vcpu-control.js';
export type { VcpuState } from './vcpu-messages.js';
export * from './workloads/index.js';
