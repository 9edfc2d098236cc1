/**
 * Migration capabilities (QMP migrate-set-capabilities and
 * query-migrate-capabilities), each declared once: one row per capability
 * in CAPABILITY_TABLE, keyed by its QMP name (capabilities have no other),
 * with its default, where the default comes from, and its help. The
 * `MigrationCapabilities` type, the defaults and the QMP handling
 * (control/qmp-commands.ts) are derived from the table, so adding a
 * capability is adding a row (and reading it where it takes effect).
 * Capabilities are fixed while a migration runs, as in QEMU.
 */

export interface CapabilityRow {
  readonly default: boolean;
  /** Where the default comes from: QEMU's source, or ferry's choice. */
  readonly origin: string;
  readonly help: string;
}

export const CAPABILITY_TABLE = {
  'auto-converge': {
    default: false, origin: "QEMU's default (migration/options.c)",
    help: 'throttle the vCPUs while the guest dirties memory faster than the migration sends it (throttle-trigger-threshold, cpu-throttle-*, max-cpu-throttle)',
  },
  'dirty-limit': {
    default: false, origin: "QEMU 8.1's default (migration/options.c)",
    help: "limit each vCPU's dirty rate to vcpu-dirty-limit while the guest dirties memory faster than the migration sends it (not with auto-converge)",
  },
  'postcopy-ram': {
    default: false, origin: "QEMU's default (migration/options.c): opt-in, as in libvirt and KubeVirt, because the guest is lost if either side dies during post-copy",
    help: 'allow migrate-start-postcopy: the guest then runs at the destination before all its pages have arrived, which asks for the missing ones',
  },
  'postcopy-blocktime': {
    default: false, origin: "QEMU's default (migration/options.c)",
    help: "on the destination: report in query-migrate how long vCPUs waited for post-copy pages (postcopy-blocktime, postcopy-vcpu-blocktime)",
  },
  multifd: {
    default: false, origin: "QEMU's default (migration/options.c)",
    help: "send the pages on multifd-channels connections, each with its own thread that scans and sends its share of RAM (not with postcopy-ram or x-ferry-mainloop)",
  },
  xbzrle: {
    default: false, origin: "QEMU's default (migration/options.c)",
    help: 'after the first pass, send a page sent before as its XBZRLE delta against a cache of what was sent (xbzrle-cache-size); with multifd, each channel keeps its share of the cache',
  },
  events: {
    default: false, origin: "QEMU's default (migration/options.c)",
    help: 'send MIGRATION and MIGRATION_PASS events to QMP clients',
  },
  'x-ferry-verify': {
    default: false, origin: "ferry's choice: hashing every page sent and loaded costs CPU on both sides (the page hash runs at about 7 GB/s here: bench/page-hash.ts)",
    help: 'digest the pages sent and the pages loaded as they pass; the destination resumes only if the digests match',
  },
  'x-ferry-mainloop': {
    default: false, origin: "ferry's choice: the 2010 design stalls the guest's control loop by construction",
    help: "migrate from the main event loop, one step per 100 ms tick, as QEMU did in 2010 (the benchmark's reproduction of the thread's experiment)",
  },
} as const satisfies Record<string, CapabilityRow>;

export type CapabilityName = keyof typeof CAPABILITY_TABLE;
/** Each capability's state, by QMP name. */
export type MigrationCapabilities = { [K in CapabilityName]: boolean };

export function isCapability(name: string): name is CapabilityName {
  return Object.hasOwn(CAPABILITY_TABLE, name);
}

/** A fresh set of capabilities at their defaults, in table order (query-migrate-capabilities keeps it). */
export function defaultCapabilities(): MigrationCapabilities {
  return Object.fromEntries(Object.entries(CAPABILITY_TABLE).map(([name, row]) => [name, row.default])) as MigrationCapabilities;
}

/**
 * QEMU's refusal of capabilities set together (migration/options.c
 * migrate_caps_check), in its words, or null when they go together.
 * Deviation: QEMU also refuses dirty-limit without KVM's dirty ring
 * ("dirty-limit requires KVM with accelerator property 'dirty-ring-size'
 * set"); ferry's vCPUs count their own newly dirty pages, so it needs none.
 */
export function capabilityConflict(c: Partial<Record<CapabilityName, boolean>>): string | null {
  if (c['dirty-limit'] === true && c['auto-converge'] === true) return 'dirty-limit conflicts with auto-converge either of then available currently';
  if (c['postcopy-ram'] === true && c.multifd === true) return MULTIFD_POSTCOPY;
  if (c['postcopy-ram'] === true) return postcopyConflict(c['x-ferry-verify'] === true, c['x-ferry-mainloop'] === true);
  if (c.multifd === true && c['x-ferry-mainloop'] === true) return MULTIFD_MAINLOOP;
  return null;
}

/** QEMU's words (migration/options.c, 9.1): post-copy runs on the main connection only. */
export const MULTIFD_POSTCOPY = 'Postcopy is not yet compatible with multifd';
/** ferry's own: the 2010 reproduction sends from the main event loop. */
export const MULTIFD_MAINLOOP = 'multifd is not compatible with x-ferry-mainloop: the 2010 main-loop mode sends from the main event loop, on one connection';

/**
 * ferry's own refusals of postcopy-ram with its extras (QEMU has neither):
 * verify compares digests before GO, when post-copy's pages have not been
 * sent; the 2010 main-loop mode reproduces pre-copy only.
 */
export function postcopyConflict(verify: boolean, mainloop: boolean): string | null {
  if (verify) return 'Postcopy is not compatible with x-ferry-verify: its digests are compared before GO, and in post-copy most pages are sent after it';
  if (mainloop) return 'Postcopy is not compatible with x-ferry-mainloop: the 2010 main-loop mode reproduces pre-copy only';
  return null;
}
