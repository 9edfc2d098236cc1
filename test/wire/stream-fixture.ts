/** Builds small valid migration streams for decoder tests (no sockets). */
import { PAGE_SIZE } from '../../src/memory/page.js';
import { CHECK_BYTES, FRAME_HEADER_BYTES, crc32, encodeHeader, writeFrameHeader } from '../../src/wire/format.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';
import { pageHasher } from '../../src/wire/page-hash.js';
import { RECORD, type XbzrleEntry } from '../../src/wire/records.js';
import { xbzrleEncode } from '../../src/wire/xbzrle.js';
import { RamDigest } from '../../src/migration/ram-digest.js';

export const UUID = '12345678-9abc-4def-8123-456789abcdef';

export interface StreamChanges {
  /** Override END's totals. */
  readonly end?: { normal: number; zero: number };
  /** vCPUs in the header (states are sent for vCPU 0 only). */
  readonly vcpus?: number;
  /** Device sections to send (default: app/x version 2, "hello"). */
  readonly devices?: readonly { name: string; version: number; data: string }[];
  /** The header announces VERIFY, and a VERIFY record carries this digest ('correct': the digest of the RAM sent). */
  readonly verify?: Buffer | 'correct';
  /** The header carries this program identity (flag PROGRAM). */
  readonly program?: string;
  /** The header says the block is in use to 4 pages, and a GROW to all of it comes before page 4. */
  readonly grow?: boolean;
  /** WRITTEN records right after the header (the ever-written map, for a destination that asked): each one's ranges, the last with LAST. */
  readonly written?: readonly (readonly number[])[];
  /** None of the WRITTEN records carries LAST. */
  readonly writtenWithoutLast?: boolean;
  /**
   * true: a second pass sends page 0 (data) and page 1 (zero) again as
   * XBZRLE deltas, then pages 2, 3 (zero) and 5 as one XBZRLERUN (the RAM
   * returned holds them applied). A record: one
   * XBZRLE record of these bytes instead (any length: hostile streams),
   * in a second pass, or `first`: right after PASS 1, before any page.
   */
  readonly xbzrle?: boolean | { readonly page: number; readonly delta: Uint8Array; readonly first?: boolean };
  /** One XBZRLERUN record with this head as is (any head: hostile ones), in a second pass, or `first`: right after PASS 1, before any page. */
  readonly xbzrleRun?: { readonly head: Buffer; readonly first?: boolean };
}

/** Pages the valid second pass (`xbzrle: true`) sends as deltas: two XBZRLE records, then one XBZRLERUN. */
export const DELTA_PAGES = [0, 1, 2, 3, 5];

/** An XBZRLE record of any delta, built by hand (the writer refuses a hostile one). */
export function rawXbzrle(page: number, delta: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + delta.length);
  head.writeUInt32LE(page, 0);
  head.set(delta, 4);
  return rawRecord(RECORD.Xbzrle.tag, head);
}

/** A record of block 0 with `head` as is and a valid check (hostile heads). */
export function rawRecord(tag: number, head: Uint8Array): Buffer {
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + head.length + CHECK_BYTES);
  writeFrameHeader(new DataView(buf.buffer, buf.byteOffset, buf.length), 0, tag, 0, head.length, 0);
  buf.set(head, FRAME_HEADER_BYTES);
  buf.writeUInt32LE(crc32(buf.subarray(0, FRAME_HEADER_BYTES + head.length)), FRAME_HEADER_BYTES + head.length);
  return buf;
}

/** An XBZRLERUN head by hand: `count`, then each entry's page, length as given and delta (so any of them can lie). */
export function xbzrleRunHead(count: number, entries: readonly (readonly [page: number, length: number, delta: Uint8Array])[]): Buffer {
  const parts = entries.map(([page, length, delta]) => {
    const e = Buffer.alloc(6 + delta.length);
    e.writeUInt32LE(page, 0);
    e.writeUInt16LE(length, 4);
    e.set(delta, 6);
    return e;
  });
  const head = Buffer.concat([Buffer.alloc(4), ...parts]);
  head.writeUInt32LE(count, 0);
  return head;
}

/** The second pass's writes: a few bytes of page 0 and of zero page 1. */
function rewrite(ram: Uint8Array, page: number): Uint8Array {
  const now = ram.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  now.set([0xde, 0xad, 0xbe, 0xef], 100);
  now[4095] = 0x5a;
  return now;
}

/** The hand-built record, in order: what the writer holds goes first. */
function hostileAt(writer: FrameWriter, chunks: Buffer[], record: Buffer): void {
  writer.flush();
  chunks.push(record);
}

/** Pass 2 of `changes.xbzrle`: DELTA_PAGES as deltas against what pass 1 sent (two XBZRLE records, then one XBZRLERUN); `ram` updated. */
function appendDeltas(writer: FrameWriter, ram: Uint8Array): void {
  writer.append(RECORD.Pass, { pass: 2 });
  const entries: XbzrleEntry[] = [];
  for (const page of DELTA_PAGES) {
    const delta = new Uint8Array(PAGE_SIZE);
    const now = rewrite(ram, page);
    const length = xbzrleEncode(ram.subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), now, delta);
    if (page < 2) writer.appendXbzrle(0, page, delta, length);
    else entries.push({ page, delta: delta.subarray(0, length) });
    ram.set(now, page * PAGE_SIZE);
  }
  writer.append(RECORD.XbzrleRun, { entries }, 0);
}

/** The verify digest of `ram` (block 0), as a source that sent all of it would have it. */
export function digestOf(ram: Uint8Array): Buffer {
  const memory = new WebAssembly.Memory({ initial: Math.ceil(ram.length / 65536), maximum: Math.ceil(ram.length / 65536), shared: true });
  new Uint8Array(memory.buffer).set(ram);
  const digest = new RamDigest([ram.length / PAGE_SIZE]);
  digest.setPages(pageHasher(memory), 0, 0, 0, ram.length / PAGE_SIZE);
  return digest.value();
}

/** A stream: header, a pass with data pages and a zero run [a GROW among them], a vCPU state, a device, END, GO. */
export function buildStream(pages = 64, changes: StreamChanges = {}): { bytes: Buffer; ram: Uint8Array } {
  const ram = new Uint8Array(pages * PAGE_SIZE);
  for (let p = 0; p < pages; p += 2) ram.fill((p % 251) + 1, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  const verify = changes.verify;
  const hostile = typeof changes.xbzrle === 'object' ? changes.xbzrle : null;
  const blocks = [{ name: 'ram0', pages, visiblePages: changes.grow === true ? 4 : pages }];
  const chunks: Buffer[] = [encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: changes.vcpus ?? 1, blocks, verify: verify !== undefined, program: changes.program })];
  const writer = new FrameWriter((chunk, release) => {
    chunks.push(Buffer.from(chunk));
    release();
  }, 2);
  const written = changes.written ?? [];
  for (const [i, ranges] of written.entries()) writer.append(RECORD.Written, { last: i === written.length - 1 && changes.writtenWithoutLast !== true, ranges }, 0);
  writer.append(RECORD.Pass, { pass: 1 });
  const hostileRecord = hostile !== null ? rawXbzrle(hostile.page, hostile.delta) : changes.xbzrleRun !== undefined ? rawRecord(RECORD.XbzrleRun.tag, changes.xbzrleRun.head) : null;
  const hostileFirst = (hostile ?? changes.xbzrleRun)?.first === true;
  if (hostileRecord !== null && hostileFirst) hostileAt(writer, chunks, hostileRecord);
  writer.appendPages(0, 0, 1, ram);
  writer.append(RECORD.Zero, { first: 1, count: 1 });
  writer.appendPages(0, 2, 1, ram);
  writer.append(RECORD.Zero, { first: 3, count: 1 });
  if (changes.grow === true) writer.append(RECORD.Grow, { pages }, 0);
  writer.appendPages(0, 4, pages - 4, ram);
  if (changes.xbzrle === true) appendDeltas(writer, ram);
  if (hostileRecord !== null && !hostileFirst) writer.append(RECORD.Pass, { pass: 2 });
  if (hostileRecord !== null && !hostileFirst) hostileAt(writer, chunks, hostileRecord);
  if (verify !== undefined) writer.append(RECORD.Verify, { digest: verify === 'correct' ? digestOf(ram) : verify });
  writer.append(RECORD.Vcpu, { index: 0, state: Buffer.from('{"guestNs":0}') });
  for (const d of changes.devices ?? [{ name: 'app/x', version: 2, data: 'hello' }]) {
    writer.append(RECORD.Device, { name: d.name, version: d.version, data: Buffer.from(d.data) });
  }
  writer.append(RECORD.End, { totals: [changes.end ?? { normal: pages - 2 + (changes.xbzrle === true ? DELTA_PAGES.length : 0), zero: 2 }] });
  writer.append(RECORD.Go, { run: true });
  writer.flush();
  return { bytes: Buffer.concat(chunks), ram };
}
