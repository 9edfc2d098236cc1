/**
 * Installs arrived pages into a guest's RAM while its vCPUs run (post-copy):
 * claim the page (presence-map.ts), store its bytes, mark it in the dirty
 * log (it was written: ever-written and any client see it, as the loader's
 * pages are), publish it present, then wake the vCPUs waiting for it
 * (page-waits.ts). Any thread may install: a loader worker attaches with
 * the shared descriptors. A page already present is refused, never
 * overwritten: the guest may have written it since it arrived.
 */
import { InvalidArgumentError } from '../errors.js';
import { RamBlock, type RamBlockShared } from './ram-block.js';
import { PAGE_SIZE } from './page.js';
import { PresenceMap, type PresenceMapShared } from './presence-map.js';
import { PageWaits, type PageWaitsShared } from './page-waits.js';

/** 'installed'; or refused: 'present' (here already: not written), 'installing' (another installer has it). */
export type InstallResult = 'installed' | 'present' | 'installing';

/** What an installer in another thread attaches to (structured-cloneable). */
export interface PageInstallerShared {
  readonly ram: readonly RamBlockShared[];
  readonly presence: PresenceMapShared;
  readonly waits: PageWaitsShared;
}

export class PageInstaller {
  private readonly starts: number[] = [];
  readonly totalPages: number;

  static attach(shared: PageInstallerShared): PageInstaller {
    return new PageInstaller(shared.ram.map((r) => new RamBlock(r)), new PresenceMap(shared.presence), new PageWaits(shared.waits));
  }

  constructor(private readonly blocks: readonly RamBlock[], private readonly presence: PresenceMap, private readonly waits: PageWaits) {
    let at = 0;
    for (const b of blocks) {
      this.starts.push(at);
      at += b.pages;
    }
    this.totalPages = at;
    if (presence.pages !== at) {
      throw new InvalidArgumentError(`page installer: a presence map of ${presence.pages} pages for ${at} pages of RAM`);
    }
  }

  /** Install global page `page` with `bytes` (one whole page). */
  install(page: number, bytes: Uint8Array): InstallResult {
    if (!(bytes instanceof Uint8Array) || bytes.length !== PAGE_SIZE) {
      throw new InvalidArgumentError(`install of page ${page}: expected ${PAGE_SIZE} bytes, got ${bytes instanceof Uint8Array ? bytes.length : typeof bytes}`);
    }
    const claim = this.presence.claim(page); // checks the range
    if (claim !== 'claimed') return claim;
    let b = this.blocks.length - 1;
    while (this.starts[b] > page) b--;
    const local = page - this.starts[b];
    this.blocks[b].bytes.set(bytes, local * PAGE_SIZE);
    this.blocks[b].log.markPage(local);
    this.presence.publish(page);
    this.waits.wake(page);
    return 'installed';
  }
}
