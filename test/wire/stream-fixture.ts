/** Builds small valid migration streams for decoder tests (no sockets). */
import { PAGE_SIZE } from '../../src/memory/page.js';
import { Rec, encodeDeviceHead, encodeEndHead, encodeHeader, encodeVcpuHead, u32Head } from '../../src/wire/format.js';
import { FrameWriter } from '../../src/wire/frame-writer.js';

export const UUID = '12345678-9abc-4def-8123-456789abcdef';

export interface StreamChanges {
  /** Override END's totals. */
  readonly end?: { normal: number; zero: number };
  /** vCPUs in the header (states are sent for vCPU 0 only). */
  readonly vcpus?: number;
  /** Device sections to send (default: app/x version 2, "hello"). */
  readonly devices?: readonly { name: string; version: number; data: string }[];
  /** A VERIFY record with this digest. */
  readonly verify?: Buffer;
}

/** A stream: header, a pass with data pages and a zero run, a vCPU state, a device, END, GO. */
export function buildStream(pages = 64, changes: StreamChanges = {}): { bytes: Buffer; ram: Uint8Array } {
  const ram = new Uint8Array(pages * PAGE_SIZE);
  for (let p = 0; p < pages; p += 2) ram.fill((p % 251) + 1, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  const chunks: Buffer[] = [encodeHeader({ pageSize: PAGE_SIZE, uuid: UUID, vcpus: changes.vcpus ?? 1, blocks: [{ name: 'ram0', pages }] })];
  const writer = new FrameWriter((chunk, release) => {
    chunks.push(Buffer.from(chunk));
    release();
  }, 2);
  writer.appendRecord(Rec.Pass, 0, u32Head(1));
  writer.appendPages(0, 0, 1, ram);
  writer.appendRecord(Rec.Zero, 0, u32Head(1, 1));
  writer.appendPages(0, 2, 1, ram);
  writer.appendRecord(Rec.Zero, 0, u32Head(3, 1));
  writer.appendPages(0, 4, pages - 4, ram);
  if (changes.verify !== undefined) writer.appendRecord(Rec.Verify, 0, changes.verify);
  writer.appendRecord(Rec.Vcpu, 0, encodeVcpuHead(0, Buffer.from('{"guestNs":0}')));
  for (const d of changes.devices ?? [{ name: 'app/x', version: 2, data: 'hello' }]) {
    writer.appendRecord(Rec.Device, 0, encodeDeviceHead(d.name, d.version, Buffer.from(d.data)));
  }
  writer.appendRecord(Rec.End, 0, encodeEndHead([changes.end ?? { normal: pages - 2, zero: 2 }]));
  writer.appendRecord(Rec.Go, 0, Uint8Array.of(1));
  writer.flush();
  return { bytes: Buffer.concat(chunks), ram };
}
