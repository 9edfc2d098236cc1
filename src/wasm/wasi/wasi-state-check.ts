/**
 * Reading the JSON part of a saved WASI state back into a state, trusting
 * nothing: every field's type and range, every blob range, the caps, and
 * that the parts agree (each descriptor's node exists and is of its kind,
 * each entry names an existing node, a file's link count is the number of
 * names it has, a directory has at most one name and it is its parent's,
 * a node with no name is held by a descriptor). The first thing wrong is
 * a WasiStateError naming the field.
 */
import { WasiStateError } from '../../errors.js';
import { FdTable, type FdEntry, type FdKind, MAX_FDS } from './fd-table.js';
import type { DirNode, FileNode, Inode } from './fs-nodes.js';
import { MAX_NAME_BYTES } from './fs-nodes.js';
import { MAX_FS_BYTES, MAX_INODES, MAX_NAMES } from './memory-fs.js';
import { MAX_SUBSCRIPTIONS } from './call-poll.js';
import { SeededRandom } from './seeded-random.js';
import { ALL_FD_FLAGS, ALL_RIGHTS } from './wasi-abi.js';
import { MAX_ARGS_ENV_BYTES, MAX_STDIN_BYTES } from './wasi-config.js';
import { makeState, type WasiState } from './wasi-state.js';

const refuse = (where: string, what: string): never => {
  throw new WasiStateError(`WASI device state: ${where}: ${what}`);
};

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(where, 'not an object');
  return v as Json;
}

function arr(v: unknown, where: string, max: number): unknown[] {
  if (!Array.isArray(v)) refuse(where, 'not an array');
  if ((v as unknown[]).length > max) refuse(where, `${(v as unknown[]).length} items, at most ${max}`);
  return v as unknown[];
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) refuse(where, `${JSON.stringify(v)} is not an integer from ${min} to ${max}`);
  return v as number;
}

function u64(v: unknown, where: string): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(v) || BigInt(v) >= 1n << 64n) refuse(where, `${JSON.stringify(v)} is not a u64 in decimal`);
  return BigInt(v as string);
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.includes('\0')) refuse(where, 'not a string without NUL');
  return v as string;
}

/** Hands out the blob's ranges, which must tile it in order (the canonical form encodeState writes). */
class BlobReader {
  private at = 0;
  constructor(private readonly blob: Uint8Array) {}
  take(v: unknown, where: string, max: number): Uint8Array {
    const [offset, length] = arr(v, where, 2).map((x, i) => int(x, `${where}[${i}]`, 0, 2 ** 32));
    if (offset !== this.at) refuse(where, `blob range starts at ${offset}, expected ${this.at}`);
    if (length > max || offset + length > this.blob.length) refuse(where, `blob range of ${length} bytes at ${offset} leaves the blob (${this.blob.length}) or its cap (${max})`);
    this.at += length;
    return this.blob.slice(offset, offset + length);
  }
  end(): void {
    if (this.at !== this.blob.length) refuse('blob', `${this.blob.length - this.at} bytes that nothing refers to`);
  }
}

function strings(v: unknown, where: string): string[] {
  const list = arr(v, where, MAX_ARGS_ENV_BYTES).map((s, i) => str(s, `${where}[${i}]`));
  return list;
}

function times(o: Json, where: string) {
  return { atim: u64(o.atim, `${where}.atim`), mtim: u64(o.mtim, `${where}.mtim`), ctim: u64(o.ctim, `${where}.ctim`) };
}

function entryName(v: unknown, where: string): string {
  const name = str(v, where);
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > MAX_NAME_BYTES || name.includes('/') || name === '.' || name === '..') refuse(where, `bad name ${JSON.stringify(name)}`);
  return name;
}

function inode(v: unknown, where: string, blob: BlobReader): [number, Inode] {
  const o = obj(v, where);
  const ino = int(o.ino, `${where}.ino`, 1, 2 ** 32);
  if (o.kind === 'file') {
    const data = blob.take(o.data, `${where}.data`, MAX_FS_BYTES);
    const file: FileNode = { kind: 'file', nlink: int(o.nlink, `${where}.nlink`, 0, MAX_NAMES), data, size: data.length, ...times(o, where) };
    return [ino, file];
  }
  if (o.kind !== 'dir') refuse(`${where}.kind`, `${JSON.stringify(o.kind)}, expected "file" or "dir"`);
  const entries = new Map<string, number>();
  arr(o.entries, `${where}.entries`, MAX_NAMES).forEach((e, i) => {
    const [name, child] = arr(e, `${where}.entries[${i}]`, 2);
    const n = entryName(name, `${where}.entries[${i}][0]`);
    if (entries.has(n)) refuse(`${where}.entries[${i}]`, `name ${JSON.stringify(n)} twice`);
    entries.set(n, int(child, `${where}.entries[${i}][1]`, 1, 2 ** 32));
  });
  const dir: DirNode = {
    kind: 'dir', nlink: int(o.nlink, `${where}.nlink`, 0, 1), parent: int(o.parent, `${where}.parent`, 1, 2 ** 32), entries, ...times(o, where),
  };
  return [ino, dir];
}

function inodes(v: unknown, blob: BlobReader, nextIno: number): Map<number, Inode> {
  const map = new Map<number, Inode>();
  let bytes = 0;
  arr(v, 'inodes', MAX_INODES).forEach((item, i) => {
    const [ino, node] = inode(item, `inodes[${i}]`, blob);
    if (map.has(ino) || ino >= nextIno) refuse(`inodes[${i}].ino`, `${ino} repeated or not below nextIno ${nextIno}`);
    if (node.kind === 'file') bytes += node.size;
    map.set(ino, node);
  });
  if (bytes > MAX_FS_BYTES) refuse('inodes', `files of ${bytes} bytes, more than ${MAX_FS_BYTES}`);
  return map;
}

const KINDS: readonly FdKind[] = ['stdin', 'stdout', 'stderr', 'file', 'dir'];

function fd(v: unknown, where: string, nodes: Map<number, Inode>): [number, FdEntry] {
  const o = obj(v, where);
  const kind = o.kind as FdKind;
  if (!KINDS.includes(kind)) refuse(`${where}.kind`, `${JSON.stringify(o.kind)} is not one of ${KINDS.join(', ')}`);
  const ino = int(o.ino, `${where}.ino`, 0, 2 ** 32);
  const stream = kind !== 'file' && kind !== 'dir';
  if (stream ? ino !== 0 : nodes.get(ino)?.kind !== kind) refuse(`${where}.ino`, `${ino} is not a ${stream ? 'stream\'s 0' : `${kind} that exists`}`);
  const preopen = o.preopen === null ? null : str(o.preopen, `${where}.preopen`);
  if (preopen !== null && kind !== 'dir') refuse(`${where}.preopen`, 'set on a descriptor that is not a directory');
  return [int(o.fd, `${where}.fd`, 0, MAX_FDS - 1), {
    kind, ino, offset: int(o.offset, `${where}.offset`, 0, Number.MAX_SAFE_INTEGER), fdflags: int(o.fdflags, `${where}.fdflags`, 0, ALL_FD_FLAGS),
    rightsBase: int(o.rightsBase, `${where}.rightsBase`, 0, ALL_RIGHTS), rightsInheriting: int(o.rightsInheriting, `${where}.rightsInheriting`, 0, ALL_RIGHTS), preopen,
  }];
}

function fds(v: unknown, nodes: Map<number, Inode>): Map<number, FdEntry> {
  const map = new Map<number, FdEntry>();
  arr(v, 'fds', MAX_FDS).forEach((item, i) => {
    const [n, entry] = fd(item, `fds[${i}]`, nodes);
    if (map.has(n)) refuse(`fds[${i}].fd`, `descriptor ${n} twice`);
    map.set(n, entry);
  });
  return map;
}

/** The links agree: entries name existing nodes, link counts match, every unnamed node is a root or held open. */
function checkLinks(nodes: Map<number, Inode>, open: FdTable): void {
  const names = new Map<number, number[]>();
  let total = 0;
  for (const [ino, node] of nodes) {
    if (node.kind !== 'dir') continue;
    for (const [name, child] of node.entries) {
      if (!nodes.has(child)) refuse(`inode ${ino}`, `entry ${JSON.stringify(name)} names node ${child}, which does not exist`);
      names.set(child, [...(names.get(child) ?? []), ino]);
      if (++total > MAX_NAMES) refuse(`inode ${ino}`, `more than ${MAX_NAMES} names in all`);
    }
  }
  for (const [ino, node] of nodes) {
    const namedBy = names.get(ino) ?? [];
    if (node.kind === 'file' && node.nlink !== namedBy.length) refuse(`inode ${ino}`, `nlink ${node.nlink}, but ${namedBy.length} names`);
    if (node.kind === 'dir') checkDir(ino, node, namedBy, nodes);
    if (node.nlink === 0 && !open.refers(ino)) refuse(`inode ${ino}`, 'no name and no descriptor: nothing can reach it');
  }
}

/**
 * A directory is named once, by its parent (nlink 1), or is a root (its
 * own parent, nlink 1), or was removed (nlink 0, its own parent); and its
 * parents lead to a root, without a loop.
 */
function checkDir(ino: number, dir: DirNode, namedBy: readonly number[], nodes: Map<number, Inode>): void {
  const named = namedBy.length === 1 && namedBy[0] === dir.parent && dir.parent !== ino && dir.nlink === 1;
  const unnamed = namedBy.length === 0 && dir.parent === ino;
  if (!named && !unnamed) refuse(`inode ${ino}`, `a directory named by [${namedBy.join(', ')}] with parent ${dir.parent} and nlink ${dir.nlink}`);
  let cur = ino;
  for (let steps = 0; ; steps++) {
    const node = nodes.get(cur);
    if (node?.kind !== 'dir') { refuse(`inode ${ino}`, `its parent ${cur} is not a directory`); return; }
    if (node.parent === cur) return;
    if (steps > nodes.size) refuse(`inode ${ino}`, 'its parents form a loop');
    cur = node.parent;
  }
}

function pendingSleep(v: unknown): WasiState['pendingSleep'] {
  if (v === null) return null;
  const o = obj(v, 'pendingSleep');
  const due = arr(o.due, 'pendingSleep.due', MAX_SUBSCRIPTIONS).map((x, i) => int(x, `pendingSleep.due[${i}]`, 0, MAX_SUBSCRIPTIONS - 1));
  return { deadlineNs: u64(o.deadlineNs, 'pendingSleep.deadlineNs'), due };
}

function randomState(v: unknown): SeededRandom {
  const words = arr(v, 'random', 4).map((w, i) => u64(w, `random[${i}]`));
  if (words.length !== 4 || words.every((w) => w === 0n)) refuse('random', 'not four words, not all zero');
  return new SeededRandom(words as [bigint, bigint, bigint, bigint]);
}

/** The state that `json` (the parsed JSON part) and `blob` describe, or a WasiStateError. */
export function stateFromJson(json: unknown, blobBytes: Uint8Array): WasiState {
  const o = obj(json, 'top level');
  const blob = new BlobReader(blobBytes);
  const args = strings(o.args, 'args');
  const env = strings(o.env, 'env');
  if ([...args, ...env].reduce((n, s) => n + Buffer.byteLength(s) + 1, 0) > MAX_ARGS_ENV_BYTES) refuse('args, env', `more than ${MAX_ARGS_ENV_BYTES} bytes`);
  const stdin = blob.take(o.stdin, 'stdin', MAX_STDIN_BYTES);
  const random = randomState(o.random);
  const nextIno = int(o.nextIno, 'nextIno', 1, 2 ** 32);
  const nodes = inodes(o.inodes, blob, nextIno);
  blob.end();
  const fdMap = fds(o.fds, nodes);
  checkLinks(nodes, new FdTable(fdMap));
  const exitCode = o.exitCode === null ? null : int(o.exitCode, 'exitCode', 0, 2 ** 32 - 1);
  return makeState({ args, env, stdin, random, fds: fdMap, inodes: nodes, nextIno, pendingSleep: pendingSleep(o.pendingSleep), exitCode });
}
