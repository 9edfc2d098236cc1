export * from './parameters.js';
export * from './capabilities.js';
export * from './status.js';
export * from './stats.js';
export * from './migration.js';
export * from './incoming.js';
