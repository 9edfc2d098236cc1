/**
 * What ferry needs to know of a WebAssembly module before Binaryen sees it:
 * its imports, its memories and its exports, read straight from the binary.
 * It is cheap (it skips every other section by its length), so a program
 * is refused for a bad import or memory at once, and the cache key can be
 * computed on a warm start without loading Binaryen.
 *
 *   magic    00 61 73 6d             "\0asm"
 *   version  01 00 00 00             1 (a component has 0d 00 01 00)
 *   section  id:u8 size:u32leb bytes  repeated; ids read here:
 *            2 imports   vec(module:name field:name kind:u8 desc)
 *            5 memories  vec(limits)
 *            7 exports   vec(name kind:u8 index:u32leb)
 *   limits   flags:u8 (bit 0 max, bit 1 shared, bit 2 memory64, bit 3 page size)
 *            min:leb [max:leb] [log2 page size:u32leb]
 *
 * Every read is checked against the end of its section; a failure names the
 * byte offset and what was being read.
 */
import { WasmModuleError } from '../errors.js';

export type ExternalKind = 'function' | 'table' | 'memory' | 'global' | 'tag';
const KINDS: readonly ExternalKind[] = ['function', 'table', 'memory', 'global', 'tag'];

export interface MemoryLimits {
  readonly initialPages: number;
  readonly maximumPages?: number;
  readonly shared: boolean;
  readonly memory64: boolean;
  /** Flags bit 3: the custom-page-sizes proposal. */
  readonly customPageSize: boolean;
}

export interface WasmImport {
  readonly module: string;
  readonly name: string;
  readonly kind: ExternalKind;
  /** For a memory import: its limits. */
  readonly memory?: MemoryLimits;
}

export interface WasmExport {
  readonly name: string;
  readonly kind: ExternalKind;
  readonly index: number;
}

export interface ModuleHeader {
  readonly imports: readonly WasmImport[];
  /** The memories the module defines (section 5), not imported ones. */
  readonly memories: readonly MemoryLimits[];
  readonly exports: readonly WasmExport[];
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const SECTION_EXPORT = 7;

/** A cursor over `bytes` up to `end`; every read checks the end. */
class Reader {
  constructor(private readonly bytes: Uint8Array, public pos: number, public end: number) {}

  fail(what: string): never {
    throw new WasmModuleError(`not a valid WebAssembly module: ${what} at byte ${this.pos}`);
  }

  byte(what: string): number {
    if (this.pos >= this.end) this.fail(`truncated ${what}`);
    return this.bytes[this.pos++];
  }

  /** An unsigned LEB128 of at most `maxBits` bits, as a number (exact up to 2^53). */
  leb(what: string, maxBits = 32): number {
    let result = 0;
    let scale = 1;
    for (let shift = 0; shift < maxBits; shift += 7) {
      const b = this.byte(what);
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    return this.fail(`${what}: LEB128 longer than ${maxBits} bits`);
  }

  name(what: string): string {
    const length = this.leb(`${what} length`);
    if (length > this.end - this.pos) this.fail(`${what} of ${length} bytes runs past its section`);
    const text = new TextDecoder('utf-8', { fatal: false }).decode(this.bytes.subarray(this.pos, this.pos + length));
    this.pos += length;
    return text;
  }

  limits(what: string): MemoryLimits {
    const flags = this.byte(`${what} flags`);
    if (flags > 0x0f) this.fail(`${what} flags 0x${flags.toString(16)} unknown`);
    const bits = flags & 0x04 ? 64 : 32;
    const initialPages = this.leb(`${what} minimum`, bits + 6);
    const maximumPages = flags & 0x01 ? this.leb(`${what} maximum`, bits + 6) : undefined;
    if (flags & 0x08) this.leb(`${what} page size`);
    return { initialPages, maximumPages, shared: (flags & 0x02) !== 0, memory64: (flags & 0x04) !== 0, customPageSize: (flags & 0x08) !== 0 };
  }

  /** A value type: one byte, or 0x63/0x64 and a heap type (s33). */
  valueType(what: string): void {
    const b = this.byte(what);
    if (b === 0x63 || b === 0x64) this.leb(`${what} heap type`, 35);
  }
}

function readImport(r: Reader): WasmImport {
  const module = r.name('import module name');
  const name = r.name('import field name');
  const code = r.byte('import kind');
  const kind = KINDS[code] ?? r.fail(`import ${module}.${name} has unknown kind ${code}`);
  switch (kind) {
    case 'function': r.leb('import type index'); return { module, name, kind };
    case 'table': r.valueType('table element type'); r.limits('table limits'); return { module, name, kind };
    case 'memory': return { module, name, kind, memory: r.limits('memory limits') };
    case 'global': r.valueType('global type'); r.byte('global mutability'); return { module, name, kind };
    case 'tag': r.byte('tag attribute'); r.leb('tag type index'); return { module, name, kind };
  }
}

function readVector<T>(r: Reader, what: string, item: (r: Reader) => T): T[] {
  const count = r.leb(`${what} count`);
  if (count > r.end - r.pos) r.fail(`${what} count ${count} exceeds the section's bytes`);
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(item(r));
  return out;
}

function readExport(r: Reader): WasmExport {
  const name = r.name('export name');
  const code = r.byte('export kind');
  const kind = KINDS[code] ?? r.fail(`export ${name} has unknown kind ${code}`);
  return { name, kind, index: r.leb('export index') };
}

/** Check the magic and the version, naming what was found instead. */
function checkPreamble(bytes: Uint8Array): void {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new WasmModuleError(`not WebAssembly: the file does not start with the magic 00 61 73 6d ("\\0asm"), it starts with ${head === '' ? 'nothing (empty)' : head}`);
  }
  const version = bytes[4] | (bytes[5] << 8) | (bytes[6] << 16) | (bytes[7] << 24);
  if (version === 0x0001000d) throw new WasmModuleError('a WebAssembly component (version 0x1000d), not a core module: ferry runs WASI preview 1 command modules');
  if (version !== 1) throw new WasmModuleError(`WebAssembly binary version ${version}, expected 1`);
}

/** The imports, memories and exports of the module `bytes`. */
export function readModuleHeader(bytes: Uint8Array): ModuleHeader {
  checkPreamble(bytes);
  let imports: WasmImport[] = [];
  let memories: MemoryLimits[] = [];
  let exports: WasmExport[] = [];
  const r = new Reader(bytes, 8, bytes.length);
  while (r.pos < bytes.length) {
    const id = r.byte('section id');
    const size = r.leb('section size');
    if (size > bytes.length - r.pos) r.fail(`section ${id} of ${size} bytes runs past the end of the file (${bytes.length} bytes)`);
    const section = new Reader(bytes, r.pos, r.pos + size);
    if (id === SECTION_IMPORT) imports = readVector(section, 'import', readImport);
    else if (id === SECTION_MEMORY) memories = readVector(section, 'memory', (s) => s.limits('memory limits'));
    else if (id === SECTION_EXPORT) exports = readVector(section, 'export', readExport);
    r.pos += size;
  }
  return { imports, memories, exports };
}
