export * from './compression.js';
export * from './format.js';
export * from './frame-decoder.js';
export * from './frame-writer.js';
export * from './page-checksum.js';
export * from './records.js';
