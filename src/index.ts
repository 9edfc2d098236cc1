/** ferry's public API (re-exports only). */
export * from './errors.js';
export * from './memory/index.js';
export * from './guest/index.js';
export * from './wire/index.js';
export * from './transport/uri.js';
export * from './migration/index.js';
