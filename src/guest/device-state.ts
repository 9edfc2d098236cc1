/**
 * Device state: named, versioned sections that the embedding application
 * registers (as QEMU's vmstate). A section saves to bytes and loads from
 * bytes of any version from its `minVersion` to its `version`.
 */
import { InvalidArgumentError } from '../errors.js';

export interface DeviceSection {
  readonly name: string;
  /** Current version, written on save. Positive integer. */
  readonly version: number;
  /** Oldest version `load` still accepts (default: `version`). */
  readonly minVersion?: number;
  save(): Uint8Array;
  load(data: Uint8Array, version: number): void;
}

export interface SavedSection {
  readonly name: string;
  readonly version: number;
  readonly data: Uint8Array;
}

const NAME_RE = /^[A-Za-z0-9_.:/-]{1,128}$/;
/** Largest section a save may produce or a load accept. */
export const MAX_SECTION_BYTES = 16 * 1024 * 1024;

export class DeviceRegistry {
  private readonly sections = new Map<string, DeviceSection>();

  register(section: DeviceSection): void {
    if (typeof section?.name !== 'string' || !NAME_RE.test(section.name)) {
      throw new InvalidArgumentError(
        `device section name must be 1-128 characters of [A-Za-z0-9_.:/-], got ${JSON.stringify(section?.name)}`);
    }
    const min = section.minVersion ?? section.version;
    if (!Number.isInteger(section.version) || section.version < 1 || !Number.isInteger(min) || min < 1 || min > section.version) {
      throw new InvalidArgumentError(
        `device section ${section.name}: versions must satisfy 1 <= minVersion <= version, got ${min}..${section.version}`);
    }
    if (this.sections.has(section.name)) {
      throw new InvalidArgumentError(`device section ${section.name} is already registered`);
    }
    this.sections.set(section.name, section);
  }

  unregister(name: string): boolean {
    return this.sections.delete(name);
  }

  get names(): string[] {
    return [...this.sections.keys()];
  }

  /** Save every section, in registration order. */
  saveAll(): SavedSection[] {
    return [...this.sections.values()].map((s) => {
      const data = s.save();
      if (!(data instanceof Uint8Array) || data.length > MAX_SECTION_BYTES) {
        throw new InvalidArgumentError(`device section ${s.name}: save() must return at most ${MAX_SECTION_BYTES} bytes`);
      }
      return { name: s.name, version: s.version, data };
    });
  }

  /** Check one incoming section against what is registered; throws a clear error. */
  check(name: string, version: number): DeviceSection {
    const s = this.sections.get(name);
    if (s === undefined) throw new InvalidArgumentError(`unknown device section ${JSON.stringify(name)}`);
    const min = s.minVersion ?? s.version;
    if (version < min || version > s.version) {
      throw new InvalidArgumentError(
        `device section ${name}: version ${version}, expected ${min === s.version ? min : `${min}..${s.version}`}`);
    }
    return s;
  }

  /** Load one section, checked first. */
  load(saved: SavedSection): void {
    this.check(saved.name, saved.version).load(saved.data, saved.version);
  }

  /**
   * Load a migrated guest's sections: all are checked before any loads, and
   * every section registered here must be among them (a device left in its
   * initial state while the guest runs on would be state silently lost).
   */
  loadAll(saved: readonly SavedSection[]): void {
    for (const d of saved) this.check(d.name, d.version);
    const missing = this.names.filter((n) => !saved.some((d) => d.name === n));
    if (missing.length > 0) throw new InvalidArgumentError(`device section ${missing.join(', ')} is registered here but missing from the stream`);
    for (const d of saved) this.load(d);
  }
}
