/**
 * Splits a byte stream into JSON values, as QMP needs: a value may span
 * several lines or arrive in pieces, several may share a chunk, and
 * whitespace separates them. A small state machine tracks nesting and
 * strings across chunks; each complete top-level value is handed over as
 * text (JSON.parse does the rest). A value growing past `maxBytes` is an
 * error: a client that sends gigabytes without completing a value is cut
 * off instead of filling memory.
 */
import { JsonStreamError } from '../errors.js';

/** Declared with the other classes (errors.ts); re-exported here where it is thrown. */
export { JsonStreamError };

export class JsonStreamSplitter {
  private parts: string[] = [];
  private size = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** A top-level scalar (number, true, ...) being read; ends at whitespace or a brace. */
  private inScalar = false;

  constructor(private readonly onValue: (text: string) => void, private readonly maxBytes = 1024 * 1024) {}

  feed(chunk: string): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true; // backslash
        else if (c === 0x22) this.inString = false; // quote
        continue;
      }
      if (this.depth === 0 && !this.inScalar) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
          start = i + 1;
          continue;
        }
        start = i;
        if (c === 0x7b || c === 0x5b) this.depth = 1;
        else if (c === 0x22) {
          this.inString = true;
          this.inScalar = true;
        } else this.inScalar = true;
        continue;
      }
      if (this.inScalar && this.depth === 0) {
        if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x7b || c === 0x5b) {
          this.emit(chunk.slice(start, i));
          start = i;
          i--; // look at this character again at top level
        }
        continue;
      }
      if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) this.depth++;
      else if (c === 0x7d || c === 0x5d) {
        this.depth--;
        if (this.depth === 0) {
          this.emit(chunk.slice(start, i + 1));
          start = i + 1;
        }
      }
    }
    if (this.depth > 0 || this.inScalar) {
      const rest = chunk.slice(start);
      this.size += rest.length;
      if (this.size > this.maxBytes) {
        this.reset();
        throw new JsonStreamError(`a JSON value longer than ${this.maxBytes} bytes`);
      }
      this.parts.push(rest);
    }
  }

  private emit(tail: string): void {
    const text = this.parts.length === 0 ? tail : this.parts.join('') + tail;
    this.reset();
    this.onValue(text);
  }

  private reset(): void {
    this.parts = [];
    this.size = 0;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.inScalar = false;
  }
}
