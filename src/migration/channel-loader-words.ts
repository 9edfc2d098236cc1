/**
 * The words the loader thread shares with every channel's loader thread
 * (several channels, destination): one SharedArrayBuffer of Int32s, every
 * Atomics access to it here (STYLE habit 10).
 *
 * STOP (word 0): 1 once the migration ended. The loader thread sets it
 * (Atomics.store) before it asks any thread to terminate; each channel's
 * loader reads it (Atomics.load) before it applies each record (and each
 * piece of a PAGES record) to the guest's RAM, and stops there. A worker's
 * terminate() is not synchronous: it may still be decoding queued chunks.
 * Both accesses are sequentially consistent, so they fall in one total
 * order: every check after the store sees 1 and writes nothing; the only
 * write that can land after the store is the one whose check came just
 * before it (at most one record, bounded by max-record bytes). That is a
 * failed migration's (its guest never runs here, the source keeps
 * running): a successful one never gets here with a channel writing,
 * because END's checks come only after each channel said its final figures
 * and stopped applying on its own thread (channel-loader.ts `finish`).

 */
const STOP = 0;
const WORDS = 1;

export class ChannelLoaderWords {
  private readonly words: Int32Array;

  /** `shared`: from `ChannelLoaderWords.create` (on every thread the same buffer). */
  constructor(readonly shared: SharedArrayBuffer) {
    this.words = new Int32Array(shared);
  }

  static create(): ChannelLoaderWords {
    return new ChannelLoaderWords(new SharedArrayBuffer(4 * WORDS));
  }

  /** The migration ended: no channel's loader applies another record. */
  stop(): void {
    Atomics.store(this.words, STOP, 1);
  }

  get stopped(): boolean {
    return Atomics.load(this.words, STOP) !== 0;
  }
}
