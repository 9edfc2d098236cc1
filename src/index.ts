/** ferry's public API (re-exports only). */
export * from './errors.js';
export * from './memory/index.js';
export * from './guest/index.js';
export * from './wire/index.js';
export * from './transport/uri.js';
export * from './migration/index.js';
export * from './control/controller.js';
export { QmpServer, QMP_VERSION } from './control/qmp-server.js';
export { QmpClient } from './control/qmp-client.js';
export { QmpError } from './control/qmp-commands.js';
export * from './client/stall-probe.js';
