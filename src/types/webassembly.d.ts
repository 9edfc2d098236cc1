/**
 * The part of the WebAssembly JS API ferry uses. TypeScript ships these
 * types only in its DOM lib and @types/node 20 does not declare them; this
 * avoids pulling browser globals into a Node program.
 */
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(delta: number): number;
  }
  class Module {
    constructor(bytes: BufferSource);
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  /** An exported global (ferry reads its value; kernels set it). */
  class Global {
    readonly value: number;
  }
  type BufferSource = ArrayBufferView | ArrayBuffer;
}
