/**
 * Messages between the main thread and the migration threads (the source's
 * migration worker, the destination's loader), typed in one place. Errors
 * travel in their serialized form (serialized-error.ts), rebuilt as their
 * class on arrival; a cancellation is a failure whose error has
 * CancelledError's code.
 */
import type { SerializedError } from '../serialized-error.js';
import type { SavedSection } from '../guest/device-state.js';
import type { PageInstallerShared } from '../memory/page-installer.js';
import type { RamBlockOptions, RamBlockShared } from '../memory/ram-block.js';
import type { TlsOptions } from '../transport/tls.js';
import type { BlockTotals, StreamHeader } from '../wire/format.js';
import type { PassCounters } from './ram-sender.js';
import type { CodecMethod } from '../wire/compression.js';
import type { CompressionReport } from './compression-stats.js';
import type { DestinationParameters, MigrationParameters } from './parameters.js';
import type { PassRecord, SourceCounters } from './stats.js';
import type { PreallocFigures } from './preallocation.js';
import type { HugePagesFigures } from '../memory/huge-pages.js';
import type { XbzrleFigures } from './xbzrle-sender.js';
import type { LoadFigures, RamLoaderShared } from './ram-loader.js';

// ---- source ----

export interface SourceInit {
  readonly uri: string;
  readonly parameters: MigrationParameters;
  readonly ram: readonly RamBlockShared[];
  readonly vcpuControls: readonly SharedArrayBuffer[];
  readonly uuid: string;
  /** Send a digest of RAM at pause; the destination checks it before LOADED. */
  readonly verify: boolean;
  /** A WebAssembly guest's program identity (64 hex characters), sent in the header; the destination must run the same. */
  readonly programIdentity?: string;
  /** TLS for the channel (tcp: and unix:). */
  readonly tls?: TlsOptions;
  /**
   * 'thread': the migration thread (ferry's way). 'mainloop': the session is
   * driven from the main event loop one step per 100 ms tick, as QEMU's
   * 2010 buffered_file timer drove ram_save_live; only for the benchmark's
   * reproduction of the thread's experiment. Its step cap and zero-page
   * budget are `parameters`, which may change while it runs.
   */
  readonly mode: 'thread' | 'mainloop';
  /** The main thread's monotonic clock at `migrate` (ms, performance.timeOrigin-relative). */
  readonly startedAtMs: number;
  /** The capability auto-converge: throttle the vCPUs when the guest outpaces the migration (auto-converge.ts). */
  readonly autoConverge?: boolean;
  /** The capability dirty-limit: limit each vCPU's dirty rate when the guest outpaces the migration (dirty-limit.ts). */
  readonly dirtyLimit?: boolean;
  /** The capability postcopy-ram: announced in the header; migrate-start-postcopy may then switch to post-copy. */
  readonly postcopy?: boolean;
  /** The capability multifd: the pages travel on this many channels (the parameter multifd-channels); absent or 0: on the main connection. */
  readonly channels?: number;
  /** With channels: `multifd-compression` other than none, its codec chosen (the header announces it); absent or null: none. */
  readonly compression?: ChannelCompressionInit | null;
  /** The capability xbzrle: pages sent again go as deltas against a cache of xbzrle-cache-size (each channel its share). */
  readonly xbzrle?: boolean;
  /** Tests only: corrupt the first this many post-copy page sends after their check is taken (the destination must ask again). */
  readonly corruptPostcopyPages?: number;
  /** Tests only: with xbzrle on one connection, the first this many deltas go hostile (a run past the page's end), their checks valid. */
  readonly hostileXbzrleDeltas?: number;
}

/** What a channel is told to do (ChannelInit): the codec, and whether `auto` decides when to use it (channel-compression.ts). */
export interface ChannelCompressionInit {
  readonly method: CodecMethod;
  readonly auto: boolean;
  /** auto: which codec it picked and why (compression-setting.ts), the reason shown until the first decision. */
  readonly why?: string;
}

/** The migration thread -> a channel's thread (several channels: channel-sender.ts). */
export interface ChannelInit {
  readonly uri: string;
  readonly tls?: TlsOptions;
  readonly uuid: string;
  readonly index: number;
  readonly channels: number;
  readonly parameters: MigrationParameters;
  readonly ram: readonly RamBlockShared[];
  /** Per block: the dirty log slot of the migration's client (the channels share it, each taking its own ranges). */
  readonly clientSlots: readonly number[];
  readonly verify: boolean;
  /** Each block's pages in use as the stream's header said them (the channel's GROWs count from these). */
  readonly inUse: readonly number[];
  /** What each channel publishes as it goes (channel-figures.ts). */
  readonly figures: SharedArrayBuffer;
  /** max-bandwidth's one budget, shared by every channel (shared-rate-limiter.ts). */
  readonly limiter: SharedArrayBuffer;
  /** `multifd-compression` other than none: the codec, and whether `auto` decides (channel-compression.ts). */
  readonly compression?: ChannelCompressionInit | null;
  /** The capability xbzrle: this channel's cache (xbzrle-sender.ts xbzrleCacheShare); absent: off. */
  readonly xbzrle?: boolean;
}

export type ToChannel =
  /** Send pass `pass` of this channel's stripe; `inUse`: each block's pages in use, read once for all channels. */
  | { readonly type: 'pass'; readonly pass: number; readonly inUse: readonly number[]; readonly unlimited: boolean }
  /** No more passes: drain and end. */
  | { readonly type: 'finish' }
  /** The migration stopped: end now. */
  | { readonly type: 'stop' }
  | { readonly type: 'set-parameters'; readonly parameters: MigrationParameters };

export type FromChannel =
  | { readonly type: 'connected'; readonly index: number }
  | { readonly type: 'pass-done'; readonly index: number; readonly pass: number; readonly counters: PassCounters; readonly totals: readonly BlockTotals[]; readonly busyNs: number; readonly xbzrle: XbzrleFigures | null }
  /** Drained; `digest`: with verify, the digest of what this channel sent (lanes add up across channels). */
  | { readonly type: 'finished'; readonly index: number; readonly digest: Uint8Array | null }
  | { readonly type: 'failed'; readonly index: number; readonly error: SerializedError }
  /** With compression: the channel's counters so far, and (auto) whether it compresses now and why. */
  | CompressionReport;

/** What a channel's loader thread starts with (destination, several channels: channel-loader.ts). */
export interface ChannelLoaderInit {
  readonly header: StreamHeader;
  readonly ram: RamLoaderShared;
  readonly maxRecordBytes: number;
  /** The stop word, shared with the loader thread (channel-loader-words.ts). */
  readonly words: SharedArrayBuffer;
  /** The channel the connection proved itself on the loader thread (channel-proof.ts). */
  readonly index: number;
}

/** Loader thread -> a channel's loader thread: its connection's bytes, in order, then its end; `finish`: END's barrier passed, say the final figures. */
export type ToChannelLoader =
  | { readonly type: 'data'; readonly chunk: Uint8Array }
  | { readonly type: 'end' }
  | { readonly type: 'finish' };

/** A channel's loader thread -> the loader thread. */
export type FromChannelLoader =
  /** Its CHANNEL loaded; `threadId`: the thread that loads it. */
  | { readonly type: 'channel'; readonly index: number; readonly threadId: number }
  /** `bytes` of the connection were decoded and loaded (they were acknowledged; the flow control). */
  | { readonly type: 'loaded'; readonly bytes: number }
  /** SYNC `pass` loaded: every page of the pass is in RAM; the channel's figures so far. */
  | { readonly type: 'synced'; readonly pass: number; readonly figures: LoadFigures }
  /** The bytes broke a rule; nothing more is loaded. */
  | { readonly type: 'failed'; readonly error: SerializedError }
  /** Every byte before the end was loaded; `atBoundary`: the connection ended between records. */
  | { readonly type: 'ended'; readonly atBoundary: boolean }
  /** Asked to finish: its figures, final (nothing more is applied); `unsynced`: what it loaded after its last SYNC (a broken rule), else null. */
  | { readonly type: 'final'; readonly figures: LoadFigures; readonly unsynced: string | null };

/** Main -> source worker. */
export type ToSource =
  | { readonly type: 'paused'; readonly devices: readonly SavedSection[]; readonly pausedAtMs: number; readonly ackedAtMs: number; readonly wasRunning: boolean }
  | { readonly type: 'pause-failed'; readonly error: SerializedError }
  | { readonly type: 'committed' }
  | { readonly type: 'commit-failed'; readonly error: SerializedError }
  | { readonly type: 'cancel' }
  /** migrate-start-postcopy: switch to post-copy at the next chance (postcopy-ram is on). */
  | { readonly type: 'start-postcopy' }
  /** `migrate` with resume: recover the paused post-copy over a new connection to `uri`. */
  | { readonly type: 'resume'; readonly uri: string }
  | { readonly type: 'set-parameters'; readonly parameters: MigrationParameters };

/** Post-copy recovery's steps, on either side (postcopy-recovery.ts): the status each one enters. */
export type RecoveryStep =
  /** The link broke: paused, nothing discarded. */
  | { readonly type: 'postcopy-paused'; readonly reason: string }
  /** Connecting (source) or listening (destination, with the address). */
  | { readonly type: 'postcopy-recover-setup'; readonly uri?: string }
  /** Connected: the bitmap is being exchanged. */
  | { readonly type: 'postcopy-recover' }
  /** The bitmap is applied: post-copy goes on. */
  | { readonly type: 'postcopy-recovered' };

/**
 * Source worker -> main. `pass`: a live pass ended (each record is posted
 * once; the main thread keeps the history). `stats`: the figures, every
 * 100 ms and after each pass, without the history.
 */
export type FromSource =
  | { readonly type: 'active' }
  /** auto-converge: throttle every vCPU by `percent` (the main thread owns the guest; the throttle ends with the migration). */
  | { readonly type: 'throttle'; readonly percent: number; readonly why: string }
  /** dirty-limit: limit every vCPU to `quotaMBPerSec` (the main thread throttles each by its own rate; it ends with the migration). */
  | { readonly type: 'dirty-limit'; readonly quotaMBPerSec: number; readonly why: string }
  | { readonly type: 'pass'; readonly pass: PassRecord }
  | { readonly type: 'stats'; readonly stats: SourceCounters }
  /** Pause the guest for switchover; `postcopy`: for post-copy's (the status becomes postcopy-active). */
  | { readonly type: 'pause'; readonly postcopy: boolean }
  | { readonly type: 'commit' }
  | RecoveryStep
  | { readonly type: 'completed'; readonly stats: SourceCounters }
  /** Failed, or cancelled (the error's code tells); `afterGo`: whether GO was sent. */
  | { readonly type: 'failed'; readonly error: SerializedError; readonly afterGo: boolean; readonly stats: SourceCounters };

// ---- destination ----

/** The destination's limits (maxGuestBytes, maxFrameBytes, idleTimeoutMs: see parameters.ts), and where and what to accept. */
export interface LoaderInit extends DestinationParameters {
  readonly uri: string;
  readonly tls?: TlsOptions;
  /** Listen on a non-loopback address without TLS (refused otherwise). */
  readonly allowInsecure?: boolean;
  /** When given, the stream's geometry must match: total RAM bytes and vCPU count. */
  readonly expect?: { readonly ramBytes?: number; readonly vcpus?: number };
  /** The WebAssembly program this destination runs (IncomingOptions.program): the stream's must be it. */
  readonly program?: ProgramExpectation;
  /** Tests only: cap preallocation below the free-memory cap, bytes (preallocation.ts). */
  readonly preallocMaxBytes?: number;
  /** Advise the guest's RAM for transparent huge pages before any page is loaded (memory/huge-pages.ts). */
  readonly hugePages?: boolean;
}

/**
 * A destination's WebAssembly program: its identity (64 lowercase hex
 * characters, the header's PROGRAM identity) and how its RAM blocks are
 * built (the reserved tail, the mark map, the size word: wasm/layout.ts
 * maps the program's layout onto these).
 */
export interface ProgramExpectation {
  readonly identity: string;
  readonly ram: RamBlockOptions;
}

/** Loader worker -> main. */
export type FromLoader =
  | { readonly type: 'listening'; readonly uri: string }
  | { readonly type: 'connected' }
  /** A connection was turned away (a failed TLS handshake, plaintext to TLS, a second source); still listening. */
  | { readonly type: 'rejected'; readonly reason: string }
  | { readonly type: 'header'; readonly header: StreamHeader; readonly ram: readonly RamBlockShared[] }
  /** END checked; `missing`: post-copy's missing pages, (first, count) pairs of global page numbers, to mark before GO (null: pre-copy). */
  | { readonly type: 'loaded'; readonly devices: readonly SavedSection[]; readonly vcpus: readonly Uint8Array[]; readonly stats: LoaderStats; readonly missing: Uint32Array | null }
  /** GO; `postcopy`: pages are still missing (the guest runs while they arrive). */
  | { readonly type: 'go'; readonly run: boolean; readonly postcopy: boolean }
  | { readonly type: 'done'; readonly stats: LoaderStats }
  /** Preallocation started or ended (preallocation.ts). */
  | { readonly type: 'prealloc'; readonly figures: PreallocFigures }
  | RecoveryStep
  /** Failed, or cancelled (the error's code tells); `afterGo`: whether GO had arrived. */
  | { readonly type: 'failed'; readonly error: SerializedError; readonly afterGo: boolean; readonly stats: LoaderStats };

/** Main -> loader worker. */
export type ToLoader =
  /** `pages`: in post-copy, where the loader installs pages and reads the vCPUs' requests. */
  | { readonly type: 'load-ok'; readonly pages?: PageInstallerShared }
  | { readonly type: 'load-failed'; readonly error: SerializedError }
  | { readonly type: 'resumed' }
  | { readonly type: 'resume-failed'; readonly error: SerializedError }
  /** migrate-recover: listen on `uri` for the source's recovery connection (only while postcopy-paused). */
  | { readonly type: 'recover'; readonly uri: string }
  | { readonly type: 'cancel' };

export interface LoaderStats {
  readonly bytes: number;
  readonly records: number;
  readonly normalPages: number;
  readonly zeroPages: number;
  readonly zeroPagesWritten: number;
  /** Pages that arrived as XBZRLE deltas (also in normalPages); absent from an older ferry. */
  readonly xbzrlePages?: number;
  readonly passes: number;
  /** Several channels: the channels' connections taken (0: the pages came on the main one). */
  readonly channels: number;
  /** Several channels: each channel's loader thread and the pages (with data and zero) it loaded; absent from an older ferry. */
  readonly channelThreads?: readonly ChannelThreadFigures[];
  /** Verify mode: whether the RAM digests matched (null: not asked), and what computing ours cost. */
  readonly verified: boolean | null;
  readonly verifyMs: number;
  /** Post-copy's figures (null: pre-copy only). */
  readonly postcopy: PostcopyLoaderStats | null;
  /** Preallocation's figures, its time apart from the migration's (null: not asked). */
  readonly prealloc: PreallocFigures | null;
  /** Huge pages (hugePages): the bytes advised, and the process's AnonHugePages when these figures were taken (absent or null: not asked). */
  readonly hugePages?: HugePagesFigures | null;
}

export interface ChannelThreadFigures {
  readonly channel: number;
  readonly threadId: number;
  readonly pages: number;
}

export interface PostcopyLoaderStats {
  /** Pages missing when GO came. */
  readonly missingAtGo: number;
  /** Pages received after GO: installed, already here (refused, not written), bad (their check failed: asked again). */
  readonly received: number;
  readonly installed: number;
  readonly present: number;
  readonly bad: number;
  /** Pages asked for in REQUEST records (a page asked again counts again). */
  readonly requested: number;
  /** Request to page seen, ms, over the waits that ended with their page (p50, p99; null before any). */
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
  readonly latencySamples: number;
}
