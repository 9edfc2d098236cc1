export * from './page.js';
export * from './bits.js';
export * from './zero-scan.js';
export * from './dirty-log.js';
export * from './ram-block.js';
export * from './guest-memory.js';
export * from './block-tail.js';
export * from './mark-map.js';
