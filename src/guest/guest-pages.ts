/**
 * A guest's pages in post-copy (DESIGN.md section 7, invariant 7): the
 * destination marks pages missing before its vCPUs first run, installs
 * them as they arrive (from any thread: `installerShared`), and reads the
 * vCPUs' requests and the figures. The mechanism is memory's
 * (presence-map.ts, page-waits.ts, page-installer.ts); this is the guest's
 * face of it, and its refusals:
 *
 * - WebAssembly program guests: refused. Their loads and stores are not
 *   checked: a presence check in the rewritten code would cost the source
 *   too (the code is the same on both sides); the kernel's userfaultfd is
 *   a later option.
 * - Library-API reads and writes (GuestRam) of a missing page: refused,
 *   never waited for: they run on the main thread, which must never block
 *   (control, and the migration itself, run there).
 */
import { InvalidStateError, PostcopyUnsupportedError } from '../errors.js';
import { PageInstaller, type InstallResult, type PageInstallerShared } from '../memory/page-installer.js';
import { PageRequests } from '../memory/page-requests.js';
import { PageWaits, type PageWaitsShared } from '../memory/page-waits.js';
import { PresenceMap, type PresenceMapShared } from '../memory/presence-map.js';
import type { RamBlock } from '../memory/ram-block.js';
import type { RunState } from './run-state.js';

/** The post-copy figures of a guest. */
export interface PageFigures {
  /** Pages not arrived yet. */
  readonly missingPages: number;
  /** vCPUs waiting for a page now. */
  readonly blockedVcpus: number;
  /** Time during which every vCPU waited for a page at once, ns (QEMU's postcopy-blocktime counts only this). */
  readonly allBlockedNs: number;
  /** Per vCPU: time waited for pages, ns, and the number of waits (exact once paused). */
  readonly vcpus: readonly { readonly pageWaitNs: number; readonly pageWaits: number }[];
}

/** What the guest tells its pages about itself. */
export interface GuestPagesHost {
  readonly runState: () => RunState;
  /** Set for a WebAssembly program guest: why it cannot wait for pages. */
  readonly program: boolean;
  readonly vcpuWaits: () => readonly { readonly pageWaitNs: number; readonly pageWaits: number }[];
}

/** What a vCPU thread gets (vcpu-messages.ts). */
export interface VcpuPagesShared {
  readonly presence: PresenceMapShared;
  readonly waits: PageWaitsShared;
}

export class GuestPages {
  readonly presence: PresenceMap;
  readonly waits: PageWaits;
  private readonly installer: PageInstaller;
  private stream: PageRequests | null = null;

  constructor(private readonly blocks: readonly RamBlock[], vcpus: number, private readonly host: GuestPagesHost, safetyMs?: number) {
    this.presence = PresenceMap.create(blocks.reduce((n, b) => n + b.pages, 0));
    this.waits = PageWaits.create(vcpus, safetyMs);
    this.installer = new PageInstaller(blocks, this.presence, this.waits);
  }

  /** For the vCPU threads. */
  vcpuShared(): VcpuPagesShared {
    return { presence: this.presence.toShared(), waits: this.waits.toShared() };
  }

  /** For an installer in another thread (a loader): `PageInstaller.attach(shared)`. */
  installerShared(): PageInstallerShared {
    return { ram: this.blocks.map((b) => b.toShared()), presence: this.presence.toShared(), waits: this.waits.toShared() };
  }

  /**
   * Mark global pages missing: a destination, before its vCPUs first run
   * (run state 'inmigrate' or 'prelaunch'). Returns how many were present.
   */
  markMissing(pages: Iterable<number>): number {
    this.checkMayMark();
    return this.presence.markMissing(pages);
  }

  /** Mark `count` pages from global page `first` missing (see markMissing). */
  markRangeMissing(first: number, count: number): number {
    this.checkMayMark();
    return this.presence.markRangeMissing(first, count);
  }

  /**
   * Install an arrived page (4096 bytes) and wake the vCPUs waiting for it.
   * A page already present is refused ('present'), never overwritten.
   */
  install(page: number, bytes: Uint8Array): InstallResult {
    return this.installer.install(page, bytes);
  }

  get missingPages(): number {
    return this.presence.missingPages;
  }

  isPresent(page: number): boolean {
    return this.presence.isPresent(page);
  }

  /** The stream of the vCPUs' requests and their latencies: one consumer, so always the same object. */
  requests(): PageRequests {
    this.stream ??= new PageRequests(this.waits);
    return this.stream;
  }

  figures(): PageFigures {
    return {
      missingPages: this.presence.missingPages,
      blockedVcpus: this.waits.blocked,
      allBlockedNs: this.waits.allBlockedNs(),
      vcpus: this.host.vcpuWaits().map((v) => ({ pageWaitNs: v.pageWaitNs, pageWaits: v.pageWaits })),
    };
  }

  /** Wake every waiting vCPU (after posting it a request: pause, exit). */
  kickAll(): void {
    for (let i = 0; i < this.waits.vcpus; i++) this.waits.kick(i);
  }

  /** Refuse a library-API access to [addr, addr+length) if it covers a missing page (guest-ram.ts). */
  checkLibraryAccess(what: string, addr: number, length: number): void {
    if (length === 0 || this.presence.missingPages === 0) return;
    const first = Math.floor(addr / 4096);
    const missing = this.presence.nextMissing(first);
    if (missing < 0 || missing > Math.floor((addr + length - 1) / 4096)) return;
    throw new PostcopyUnsupportedError(`guest RAM: post-copy is not supported for library-API ${what}: page ${missing} of ` +
      `the span ${addr}+${length} has not arrived, and the main thread must never block waiting for it`);
  }

  private checkMayMark(): void {
    if (this.host.program) {
      throw new PostcopyUnsupportedError('post-copy is not supported for WebAssembly program guests: their loads and stores ' +
        'are not checked (a check would cost the source too, as the code is the same on both sides; userfaultfd is a later option)');
    }
    const s = this.host.runState();
    if (s !== 'inmigrate' && s !== 'prelaunch') {
      throw new InvalidStateError(`guest: pages can be marked missing only before the guest first runs (inmigrate or prelaunch), not while ${s}`);
    }
  }
}
