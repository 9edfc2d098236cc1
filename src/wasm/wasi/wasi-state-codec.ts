/**
 * The WASI device's saved form: one section of bytes (DEVICE record
 * "wasi", or a file: save), checked on restore in the order Firecracker
 * checks a snapshot: size cap, magic, version, sizes, checksum, contents.
 *
 *   offset      bytes  field
 *   0           4      magic "FWSI"
 *   4           2      format version (u16 LE), WASI_STATE_VERSION
 *   6           2      0
 *   8           4      J: bytes of the JSON part (u32 LE)
 *   12          4      B: bytes of the blob (u32 LE)
 *   16          J      JSON (UTF-8): args, env, random, fds, inodes, ... (wasi-state-check.ts reads it)
 *   16+J        B      blob: stdin, then each file's contents in inode order, back to back;
 *                      the JSON names each as [offset, length] in the blob
 *   16+J+B      4      CRC32 (zlib) of bytes 0 .. 16+J+B
 *
 * The encoding is canonical: restoring and saving again gives the same
 * bytes (the tests check save(restore(x)) = x). Any incompatible change
 * bumps WASI_STATE_VERSION.
 */
import { crc32 } from 'node:zlib';
import { WasiStateError } from '../../errors.js';
import { contents, type Inode } from './fs-nodes.js';
import { stateFromJson } from './wasi-state-check.js';
import type { WasiState } from './wasi-state.js';

export const WASI_STATE_MAGIC = 'FWSI';
export const WASI_STATE_VERSION = 1;
/**
 * Largest saved state: the device section cap of the migration stream
 * (MAX_DEVICE_DATA_BYTES, src/wire/format.ts, 16 MiB), restated here
 * because wasm/ may not import wire/. The parts' own caps keep a save
 * below it: files 8 MiB, stdin 4 MiB, args and env 256 KiB, then 4096
 * nodes, 8192 names and 1024 descriptors (about 3 MiB of JSON with
 * ordinary names). Only names full of characters that JSON escapes could
 * pass it: save() then throws WasiStateError, and the program, which
 * nothing has touched, keeps running.
 */
export const MAX_WASI_STATE_BYTES = 16 * 1024 * 1024;
const HEAD_BYTES = 16;
const CRC_BYTES = 4;

/** Appends byte ranges to the blob, returning where each went. */
class Blob {
  readonly parts: Uint8Array[] = [];
  length = 0;
  add(bytes: Uint8Array): [number, number] {
    this.parts.push(bytes);
    this.length += bytes.length;
    return [this.length - bytes.length, bytes.length];
  }
}

const times = (n: Inode) => ({ atim: String(n.atim), mtim: String(n.mtim), ctim: String(n.ctim) });

function inodeJson(ino: number, node: Inode, blob: Blob): object {
  if (node.kind === 'file') return { ino, kind: 'file', nlink: node.nlink, data: blob.add(contents(node)), ...times(node) };
  return { ino, kind: 'dir', nlink: node.nlink, parent: node.parent, entries: [...node.entries], ...times(node) };
}

/** The state's JSON part, filling `blob` with the bytes it refers to. */
function stateJson(state: WasiState, blob: Blob): object {
  return {
    args: state.args,
    env: state.env,
    stdin: blob.add(state.stdin),
    random: state.random.state.map(String),
    fds: [...state.fds.entries].map(([fd, e]) => ({
      fd, kind: e.kind, ino: e.ino, offset: e.offset, fdflags: e.fdflags,
      rightsBase: e.rightsBase, rightsInheriting: e.rightsInheriting, preopen: e.preopen,
    })),
    nextIno: state.fs.nextIno,
    inodes: [...state.fs.inodes].map(([ino, node]) => inodeJson(ino, node, blob)),
    pendingSleep: state.pendingSleep === null ? null : { deadlineNs: String(state.pendingSleep.deadlineNs), due: state.pendingSleep.due },
    exitCode: state.exitCode,
  };
}

export function encodeState(state: WasiState): Uint8Array {
  const blob = new Blob();
  const json = new TextEncoder().encode(JSON.stringify(stateJson(state, blob)));
  const total = HEAD_BYTES + json.length + blob.length + CRC_BYTES;
  if (total > MAX_WASI_STATE_BYTES) throw new WasiStateError(`WASI device state: ${total} bytes, more than ${MAX_WASI_STATE_BYTES}`);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(WASI_STATE_MAGIC), 0);
  view.setUint16(4, WASI_STATE_VERSION, true);
  view.setUint32(8, json.length, true);
  view.setUint32(12, blob.length, true);
  out.set(json, HEAD_BYTES);
  let at = HEAD_BYTES + json.length;
  for (const part of blob.parts) {
    out.set(part, at);
    at += part.length;
  }
  view.setUint32(at, crc32(out.subarray(0, at)) >>> 0, true);
  return out;
}

const refuse = (what: string): never => {
  throw new WasiStateError(`WASI device state: ${what}`);
};

/** Check the frame (cap, magic, version, sizes, checksum) and return the JSON text and the blob. */
function unframe(data: Uint8Array): { json: string; blob: Uint8Array } {
  if (!(data instanceof Uint8Array)) refuse('not bytes');
  if (data.length > MAX_WASI_STATE_BYTES) refuse(`${data.length} bytes, more than ${MAX_WASI_STATE_BYTES}`);
  if (data.length < HEAD_BYTES + CRC_BYTES) refuse(`${data.length} bytes, shorter than its ${HEAD_BYTES + CRC_BYTES}-byte frame`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const magic = new TextDecoder().decode(data.subarray(0, 4));
  if (magic !== WASI_STATE_MAGIC) refuse(`magic ${JSON.stringify(magic)}, expected ${JSON.stringify(WASI_STATE_MAGIC)}`);
  const version = view.getUint16(4, true);
  if (version !== WASI_STATE_VERSION) refuse(`version ${version}, expected ${WASI_STATE_VERSION}`);
  const jsonBytes = view.getUint32(8, true);
  const blobBytes = view.getUint32(12, true);
  const end = HEAD_BYTES + jsonBytes + blobBytes;
  if (end + CRC_BYTES !== data.length) refuse(`sizes: JSON ${jsonBytes} and blob ${blobBytes} bytes make ${end + CRC_BYTES}, the section has ${data.length}`);
  const expected = view.getUint32(end, true);
  const actual = crc32(data.subarray(0, end)) >>> 0;
  if (expected !== actual) refuse(`checksum ${hex(actual)}, expected ${hex(expected)}: the section is corrupt`);
  let json: string;
  try {
    json = new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(HEAD_BYTES, HEAD_BYTES + jsonBytes));
  } catch {
    return refuse('the JSON part is not UTF-8');
  }
  return { json, blob: data.subarray(HEAD_BYTES + jsonBytes, end) };
}

const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

export function decodeState(data: Uint8Array): WasiState {
  const { json, blob } = unframe(data);
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    return refuse(`the JSON part does not parse: ${(err as Error).message}`);
  }
  return stateFromJson(parsed, blob);
}
