/**
 * Incremental decoder of a migration stream or of its return path: bytes
 * are fed as they arrive, in chunks of any size, and the decoder keeps an
 * explicit read state across them (STYLE.md habit 4). Every length is
 * checked against its cap before anything is allocated; every failure is a
 * WireError naming the rule that was broken, after which the decoder is
 * closed for good.
 *
 * Page data is not buffered: it is handed to the sink piece by piece at its
 * place in the block (the loader copies it straight into RAM), and the
 * record's check is verified when the data is complete. Other records reach
 * the sink only after their check passed. Post-copy's PCPAGES are the
 * exception (records.ts `pageChecks`): their data is gathered here, into
 * one reused buffer, and handed over with the record, whose head holds a
 * check per page for the sink to verify before it installs anything.
 */
import { RefusedError, WireError } from '../errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import {
  CHECK_BYTES, FRAME_HEADER_BYTES, HEADER_FIXED_BYTES, MAX_PAGES_PER_RECORD, MAX_POSTCOPY_PAGES_PER_RECORD, crc32,
  decodeHeader, decodeHeaderFixed, type StreamHeader,
} from './format.js';
import { RECORD, Rec, recordRow, walkXbzrleRun, type Direction, type RecordRow } from './records.js';
import { refused } from './refusals.js';
import { WrittenMapRules } from './written-map-rules.js';

export interface FrameSink {
  header?(h: StreamHeader): void;
  /** A PAGES record's data: `data` goes at byte `offset` of block `block`. */
  pageData?(block: number, offset: number, data: Uint8Array): void;
  /** The page sum over a PAGES record's data as the sink holds it now. */
  pageSum?(block: number, firstPage: number, count: number): number;
  /**
   * A record whose check passed (for PAGES, after all its data). `data`:
   * a PCPAGES record's page data, valid only during the call (the buffer is
   * reused); null for every other record.
   */
  record(type: Rec, block: number, head: Buffer, pages: number, data: Uint8Array | null): void;
}

type ReadState = 'header-fixed' | 'header-body' | 'frame' | 'head' | 'pages' | 'check' | 'closed';

export interface FrameDecoderOptions {
  /** A forward stream starts with a header; the return path does not. */
  readonly stream: boolean;
  /** Largest record (head and page data) accepted, bytes; default: the largest the format allows. */
  readonly maxRecordBytes?: number;
  /**
   * A channel's connection (header flag MULTIFD) of the stream whose header
   * this is: no header of its own; CHANNEL first, then only PASS, GROW,
   * PAGES, ZERO, COMPRESSED, XBZRLE, XBZRLERUN and SYNC (each pass ends with its SYNC).
   */
  readonly channelOf?: StreamHeader;
  /** This destination asked for the ever-written map (PREALLOC): WRITTEN records come first (written-map-rules.ts). */
  readonly written?: boolean;
}

/** What travels on a channel's connection; on the main connection of a MULTIFD stream, none of these but SYNC. */
const CHANNEL_RECORDS: ReadonlySet<number> = new Set([Rec.Channel, Rec.Pass, Rec.Grow, Rec.Pages, Rec.Zero, Rec.Compressed, Rec.Xbzrle, Rec.XbzrleRun, Rec.Sync]);

export class FrameDecoder {
  private state: ReadState;
  /** Which rows of the record table may arrive here. */
  private readonly direction: Direction;
  private readonly maxRecordBytes: number;
  private header: StreamHeader | null = null;
  /** Bytes of the current fixed-size unit gathered so far. */
  private unit: Buffer = Buffer.alloc(HEADER_FIXED_BYTES);
  private unitLen = 0;
  private readonly frame = Buffer.alloc(FRAME_HEADER_BYTES);
  private readonly check = Buffer.alloc(CHECK_BYTES);
  private type = 0;
  private row: RecordRow<unknown> | null = null;
  private block = 0;
  private pages = 0;
  private firstPage = 0;
  private head: Buffer = Buffer.alloc(0);
  private pageOffset = 0;
  private pageBytesLeft = 0;
  private sawEnd = false;
  private sawVerify = false;
  private lastPass = 0;
  /** Per block: the pages in use (the header's, then each GROW's); no PAGES or ZERO past them. */
  private visible: number[] = [];
  private readonly vcpusSeen = new Set<number>();
  private sawGo = false;
  /** A MISSING arrived: the stream switched to post-copy, and PCPAGES and PEND follow GO. */
  private sawMissing = false;
  private sawPend = false;
  /** Per block, where the last MISSING range ended: ranges run in order across records, so their total is bounded by the block's pages. */
  private readonly missingEnd = new Map<number, number>();
  /** A channel's connection (options.channelOf). */
  private readonly channel: boolean;
  /** The pass whose SYNC came last (0: none yet). */
  private lastSync = 0;
  /** Where a PCPAGES record's data is gathered (reused). */
  private readonly checkedData = new Uint8Array(MAX_POSTCOPY_PAGES_PER_RECORD * PAGE_SIZE);
  /** The ever-written map's order (a stream's main connection only). */
  private readonly writtenMap: WrittenMapRules | null;
  /** Bytes consumed so far (for acknowledgements and error positions). */
  bytes = 0;
  records = 0;

  constructor(private readonly sink: FrameSink, options: FrameDecoderOptions) {
    this.channel = options.channelOf !== undefined;
    this.state = options.stream && !this.channel ? 'header-fixed' : 'frame';
    this.direction = options.stream ? 'stream' : 'return';
    this.maxRecordBytes = options.maxRecordBytes ?? Infinity;
    this.writtenMap = options.stream && !this.channel ? new WrittenMapRules(options.written === true) : null;
    if (options.channelOf !== undefined) {
      this.header = options.channelOf;
      this.visible = options.channelOf.blocks.map((b) => b.visiblePages);
    }
  }

  get streamHeader(): StreamHeader | null {
    return this.header;
  }

  /** Whether the decoder stopped between two records (a clean place to end). */
  get atBoundary(): boolean {
    return this.state === 'frame' && this.unitLen === 0;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  feed(chunk: Uint8Array): void {
    if (this.state === 'closed') throw new WireError('stream: data after the decoder closed');
    let at = 0;
    try {
      while (at < chunk.length) at += this.consume(chunk, at);
    } catch (err) {
      this.state = 'closed';
      // A refusal (refusals.ts) is about this destination, not about where in the stream: as it is.
      if (err instanceof RefusedError) throw err;
      if (err instanceof WireError) {
        err.message = `${err.message} (at byte ${this.bytes + at})`;
        throw err;
      }
      throw new WireError(`stream: rejected at byte ${this.bytes + at}: ${(err as Error).message}`, { cause: err });
    } finally {
      this.bytes += at;
    }
  }

  /** Consume from `chunk[at..]` for the current state; returns bytes used. */
  private consume(chunk: Uint8Array, at: number): number {
    switch (this.state) {
      case 'header-fixed': {
        const n = this.gather(chunk, at, HEADER_FIXED_BYTES);
        if (this.unitLen === HEADER_FIXED_BYTES) {
          const bodyLen = decodeHeaderFixed(this.unit);
          const all = Buffer.alloc(HEADER_FIXED_BYTES + bodyLen + CHECK_BYTES);
          this.unit.copy(all, 0, 0, HEADER_FIXED_BYTES);
          this.unit = all;
          this.state = 'header-body';
        }
        return n;
      }
      case 'header-body': {
        const n = this.gather(chunk, at, this.unit.length);
        if (this.unitLen === this.unit.length) {
          this.header = decodeHeader(this.unit);
          this.visible = this.header.blocks.map((b) => b.visiblePages);
          // A resumed post-copy (flag RESUME) starts past GO: only PCPAGES and PEND may follow.
          if (this.header.resume) this.sawEnd = this.sawGo = this.sawMissing = true;
          this.sink.header?.(this.header);
          this.startFrame();
        }
        return n;
      }
      case 'frame': {
        if (this.sawGo && !this.sawMissing) throw new WireError('stream: data after GO');
        const n = this.gather(chunk, at, FRAME_HEADER_BYTES);
        if (this.unitLen === FRAME_HEADER_BYTES) this.beginRecord();
        return n;
      }
      case 'head': {
        const n = this.gather(chunk, at, this.head.length);
        if (this.unitLen === this.head.length) this.afterHead();
        return n;
      }
      case 'pages': {
        const n = Math.min(this.pageBytesLeft, chunk.length - at);
        if (this.row!.pageChecks) this.checkedData.set(chunk.subarray(at, at + n), this.pageOffset - this.firstPage * PAGE_SIZE);
        else this.sink.pageData?.(this.block, this.pageOffset, chunk.subarray(at, at + n));
        this.pageOffset += n;
        this.pageBytesLeft -= n;
        if (this.pageBytesLeft === 0) this.startUnit('check');
        return n;
      }
      case 'check': {
        const n = this.gather(chunk, at, CHECK_BYTES);
        if (this.unitLen === CHECK_BYTES) this.endRecord();
        return n;
      }
      case 'closed':
        throw new WireError('stream: closed');
    }
  }

  /** Copy into the current unit buffer up to `size` bytes. */
  private gather(chunk: Uint8Array, at: number, size: number): number {
    const target = this.state === 'frame' ? this.frame : this.state === 'head' ? this.head : this.state === 'check' ? this.check : this.unit;
    const n = Math.min(size - this.unitLen, chunk.length - at);
    target.set(chunk.subarray(at, at + n), this.unitLen);
    this.unitLen += n;
    return n;
  }

  private startUnit(state: ReadState): void {
    this.state = state;
    this.unitLen = 0;
  }

  private startFrame(): void {
    this.startUnit('frame');
  }

  /** The frame header is complete: check it against its row of the record table. */
  private beginRecord(): void {
    const f = this.frame;
    const type = f.readUInt8(0);
    const row = recordRow(type);
    const name = row?.name ?? `type ${type}`;
    if (row === undefined || row.direction !== this.direction) throw new WireError(`frame: unknown record ${name} here`);
    if (f.readUInt8(1) !== 0) throw new WireError(`${name}: unknown flags 0x${f.readUInt8(1).toString(16)}`);
    if (this.sawEnd && !this.sawGo && type !== Rec.Go) throw new WireError(`${name}: record after END (only GO may follow)`);
    if (!this.sawEnd && type === Rec.Go) throw new WireError('GO: before END');
    this.checkPostcopyOrder(name, type);
    if (this.direction === 'stream') this.checkChannelOrder(name, type);
    if (!this.header?.resume) this.writtenMap?.beforeRecord(name, type);
    if (this.sawVerify && (type === Rec.Pages || type === Rec.Zero || type === Rec.Xbzrle || type === Rec.XbzrleRun || type === Rec.Pass || type === Rec.Grow)) {
      throw new WireError(`${name}: after VERIFY (the digest covers every page)`);
    }
    const block = f.readUInt16LE(2);
    const headLen = f.readUInt32LE(4);
    const pages = f.readUInt32LE(8);
    const nblocks = this.header?.blocks.length ?? 0;
    const fixed = row.headBytes;
    if (fixed !== null ? headLen !== fixed : headLen > row.maxHeadBytes(nblocks)) {
      throw new WireError(`${name}: head length ${headLen}, expected ${fixed !== null ? fixed : `at most ${row.maxHeadBytes(nblocks)}`}`);
    }
    if (row.pageData) {
      const max = row.pageChecks ? MAX_POSTCOPY_PAGES_PER_RECORD : MAX_PAGES_PER_RECORD;
      if (pages < 1 || pages > max) throw new WireError(`${name}: page count ${pages}, expected 1..${max}`);
      if (row.pageChecks && headLen !== 4 + 4 * pages) throw new WireError(`${name}: head length ${headLen}, expected ${4 + 4 * pages} for ${pages} pages`);
    } else if (pages !== 0) {
      throw new WireError(`${name}: page count ${pages}, expected 0`);
    }
    if (headLen + pages * PAGE_SIZE > this.maxRecordBytes) {
      throw refused('max-frame', `${name}: a record of ${headLen + pages * PAGE_SIZE} bytes exceeds the largest frame accepted here (${this.maxRecordBytes} bytes)`);
    }
    if (row.perBlock) {
      if (block >= nblocks) throw new WireError(`${name}: block ${block}, the stream has ${nblocks}`);
    } else if (block !== 0) {
      throw new WireError(`${name}: block field ${block}, expected 0`);
    }
    this.type = type;
    this.row = row;
    this.block = block;
    this.pages = pages;
    this.head = Buffer.alloc(headLen);
    this.startUnit('head');
    if (headLen === 0) this.afterHead();
  }

  private afterHead(): void {
    if (this.type === Rec.Pages || this.type === Rec.PcPages) {
      const first = this.head.readUInt32LE(0); // PAGES' and PCPAGES' first page
      this.firstPage = first;
      const blockPages = this.header!.blocks[this.block].pages;
      if (first >= blockPages || this.pages > blockPages - first) {
        throw new WireError(`${this.row!.name}: pages ${first}..${first + this.pages - 1} are outside block ${this.header!.blocks[this.block].name} of ${blockPages} pages`);
      }
      this.checkInUse(this.row!.name, first, this.pages);
      this.pageOffset = first * PAGE_SIZE;
      this.pageBytesLeft = this.pages * PAGE_SIZE;
      this.startUnit('pages');
      return;
    }
    this.startUnit('check');
  }

  /** The check is complete: verify it, then the record's own rules, then deliver it. */
  private endRecord(): void {
    const sent = this.check.readUInt32LE(0);
    let seed = 0;
    if (this.type === Rec.Pages) seed = this.sink.pageSum?.(this.block, this.firstPage, this.pages) ?? 0;
    const actual = crc32(this.head, crc32(this.frame, seed));
    if (sent !== actual) throw new WireError(`${this.row!.name}: check 0x${sent.toString(16)}, computed 0x${actual.toString(16)}`);
    this.checkRecordRules();
    this.records++;
    const { type, block, head, pages } = this;
    this.startFrame();
    this.sink.record(type, block, head, pages, this.row!.pageChecks ? this.checkedData.subarray(0, pages * PAGE_SIZE) : null);
  }

  /**
   * Post-copy's order (format.ts): MISSING only in a stream whose header
   * announced POSTCOPY, before END; PCPAGES and PEND only after GO of a
   * stream that sent MISSING; PEND once; nothing but those after GO.
   */
  private checkPostcopyOrder(name: string, type: number): void {
    if (type === Rec.Missing && !this.header!.postcopy) throw new WireError('MISSING: the header did not announce post-copy (flag POSTCOPY)');
    const postcopyOnly = type === Rec.PcPages || type === Rec.Pend;
    if (postcopyOnly && !this.sawGo) throw new WireError(`${name}: before GO (post-copy pages come after it)`);
    if (this.sawGo && !postcopyOnly) throw new WireError(`${name}: after GO of a post-copy stream (only PCPAGES and PEND may follow)`);
    if (type === Rec.Pend && this.sawPend) throw new WireError('PEND: arrived twice');
  }

  /**
   * Several channels (header flag MULTIFD): a channel's connection opens
   * with CHANNEL and carries only the pages' records and SYNC; the main
   * connection carries none of those but SYNC. Without the flag, neither
   * CHANNEL nor SYNC.
   */
  private checkChannelOrder(name: string, type: number): void {
    if (this.channel) {
      if (type === Rec.Compressed && this.header!.compression === null) throw new WireError('COMPRESSED: the header did not announce compression (flag COMPRESSION)');
      if ((this.records === 0) !== (type === Rec.Channel)) throw new WireError(`${name}: ${this.records === 0 ? 'a channel opens with CHANNEL' : 'CHANNEL again'}`);
      if (!CHANNEL_RECORDS.has(type)) throw new WireError(`${name}: not on a channel's connection (it goes on the main one)`);
    } else if (this.header!.channels > 0) {
      if (CHANNEL_RECORDS.has(type) && type !== Rec.Sync) throw new WireError(`${name}: on the main connection of a stream whose pages travel on ${this.header!.channels} channels`);
    } else if (type === Rec.Channel || type === Rec.Sync || type === Rec.Compressed) {
      throw new WireError(`${name}: the header did not announce channels (flag MULTIFD)`);
    }
  }

  /** Pages [first, first+count) of the current block must be in use (the header's size, or a GROW's since). */
  private checkInUse(name: string, first: number, count: number): void {
    const inUse = this.visible[this.block];
    if (first + count > inUse) {
      throw new WireError(`${name}: pages ${first}..${first + count - 1} are past block ${this.header!.blocks[this.block].name}'s ${inUse} pages in use`);
    }
  }

  /** An XBZRLERUN entry (walkXbzrleRun, once per page: bound once, nothing allocated): its page in the block and in use. */
  private readonly runEntry = (page: number): void => {
    this.checkDeltaPage('XBZRLERUN', page);
  };

  /** A delta's page (XBZRLE, XBZRLERUN) lies inside the current block and its pages in use. */
  private checkDeltaPage(name: string, page: number): void {
    const blockPages = this.header!.blocks[this.block].pages;
    if (page >= blockPages) throw new WireError(`${name}: page ${page} is outside block ${this.header!.blocks[this.block].name} of ${blockPages} pages`);
    this.checkInUse(name, page, 1);
  }

  /** What a record must agree with besides its frame: the stream's geometry and the records before it. */
  private checkRecordRules(): void {
    switch (this.type) {
      case Rec.Zero: {
        const { first, count } = RECORD.Zero.decode(this.head);
        const blockPages = this.header!.blocks[this.block].pages;
        if (count < 1 || first >= blockPages || count > blockPages - first) {
          throw new WireError(`ZERO: run ${first}+${count} is outside block ${this.header!.blocks[this.block].name} of ${blockPages} pages`);
        }
        this.checkInUse('ZERO', first, count);
        break;
      }
      case Rec.Compressed: {
        const { first, count } = RECORD.Compressed.decode(this.head);
        const { name, pages } = this.header!.blocks[this.block];
        if (first >= pages || count > pages - first) throw new WireError(`COMPRESSED: pages ${first}..${first + count - 1} are outside block ${name} of ${pages} pages`);
        this.checkInUse('COMPRESSED', first, count);
        break;
      }
      case Rec.Xbzrle:
        // The delta itself is the loader's to check (xbzrleDecode), against the page as it holds it. Read in place: nothing allocated per page.
        if (this.head.length < 5) RECORD.Xbzrle.decode(this.head); // throws, naming the short head
        this.checkDeltaPage('XBZRLE', this.head.readUInt32LE(0));
        break;
      case Rec.XbzrleRun:
        walkXbzrleRun(this.head, this.runEntry);
        break;
      case Rec.Grow: {
        const { pages } = RECORD.Grow.decode(this.head);
        const { name, pages: blockPages } = this.header!.blocks[this.block];
        const now = this.visible[this.block];
        if (pages <= now) throw new WireError(`GROW: block ${name} to ${pages} pages, in use to ${now} already (a block never shrinks)`);
        if (pages > blockPages) throw new WireError(`GROW: block ${name} to ${pages} pages, past its ${blockPages}`);
        this.visible[this.block] = pages;
        break;
      }
      case Rec.Vcpu: {
        const { index } = RECORD.Vcpu.decode(this.head);
        if (index >= (this.header?.vcpus ?? 0)) throw new WireError(`VCPU: index ${index}, the stream has ${this.header?.vcpus ?? 0} vCPUs`);
        if (this.vcpusSeen.has(index)) throw new WireError(`VCPU: state for vCPU ${index} arrived twice`);
        this.vcpusSeen.add(index);
        break;
      }
      case Rec.Pass: {
        const { pass } = RECORD.Pass.decode(this.head);
        if (pass <= this.lastPass) throw new WireError(`PASS: pass ${pass} after pass ${this.lastPass}`);
        this.lastPass = pass;
        break;
      }
      case Rec.Sync: {
        const { pass } = RECORD.Sync.decode(this.head);
        // On a channel, the SYNC of the pass it is in; on the main connection, passes in order.
        if (this.channel ? pass !== this.lastPass || pass === this.lastSync : pass <= this.lastSync) {
          throw new WireError(`SYNC: pass ${pass} after ${this.channel ? `PASS ${this.lastPass}` : 'SYNC'}${this.lastSync === 0 ? '' : ` and SYNC ${this.lastSync}`}`);
        }
        this.lastSync = pass;
        break;
      }
      case Rec.Verify:
        if (!this.header!.verify) throw new WireError('VERIFY: the header did not announce it (flag VERIFY)');
        if (this.sawVerify) throw new WireError('VERIFY: arrived twice');
        this.sawVerify = true;
        break;
      case Rec.End:
        if (this.header!.verify && !this.sawVerify) throw new WireError('END: the header announced VERIFY, none arrived');
        this.sawEnd = true;
        break;
      case Rec.Go: this.sawGo = true; break;
      case Rec.Missing: this.checkMissing(); break;
      case Rec.Pend: this.sawPend = true; break;
      case Rec.Written: {
        const { last, ranges } = RECORD.Written.decode(this.head);
        this.writtenMap!.check(this.header!, this.block, last, ranges);
        break;
      }
    }
  }

  /** MISSING's ranges lie in the block, in order, and do not overlap, across the block's records too. */
  private checkMissing(): void {
    const { ranges } = RECORD.Missing.decode(this.head);
    const { name, pages } = this.header!.blocks[this.block];
    let end = this.missingEnd.get(this.block) ?? 0;
    for (let i = 0; i < ranges.length; i += 2) {
      const first = ranges[i];
      const count = ranges[i + 1];
      if (count < 1 || first < end || first + count > pages) {
        throw new WireError(`MISSING: range ${first}+${count} of block ${name} (${pages} pages) is empty, out of order or outside it`);
      }
      end = first + count;
    }
    this.missingEnd.set(this.block, end);
    this.sawMissing = true;
  }
}
