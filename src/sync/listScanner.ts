/**
 * Splits the blob list answer `{"blobs":[{…},{…}]}` into its entries while the body streams in, so
 * a list of any size costs memory for one entry at a time. An entry longer than `maxEntryBytes` is
 * skipped without being buffered. The scanner only tracks strings and nesting; each entry it hands
 * out is parsed with JSON.parse by the caller, so nothing malformed gets further than that.
 */
export interface ListScannerOptions {
  readonly maxEntryBytes: number;
  /** One raw entry (the JSON text of an array element of "blobs"). */
  readonly onEntry: (text: string) => void;
  /** An entry over `maxEntryBytes`, dropped unread. */
  readonly onOversized: () => void;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

export class ListScanner {
  /** '{' and '[' of the containers we are inside. */
  private readonly stack: number[] = [];
  private inString = false;
  private escaped = false;
  /** The last string seen directly inside the top-level object (its keys), up to 16 bytes. */
  private topString: number[] = [];
  private collectingTopString = false;
  /** Depth of the "blobs" array once found (2), else 0. */
  private blobsDepth = 0;
  private sawBlobs = false;
  private blobsClosed = false;
  /** The current entry: its bytes so far, or 'oversized' once it passed the cap. */
  private entry: Buffer[] | 'oversized' | undefined;
  private entryBytes = 0;
  private entryIsScalar = false;

  constructor(private readonly options: ListScannerOptions) {}

  /** True once the top-level "blobs" array has been seen. */
  get foundBlobs(): boolean {
    return this.sawBlobs;
  }

  /** True once the "blobs" array was closed: every entry has been handed out. */
  get complete(): boolean {
    return this.blobsClosed;
  }

  write(chunk: Uint8Array): void {
    let entryStart = this.entry !== undefined ? 0 : -1;
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // Next quote / backslash at or after a position, cached so long strings (base64) are skipped
    // with indexOf rather than byte by byte.
    let nextQuote = -2;
    let nextBackslash = -2;
    for (let i = 0; i < chunk.length; i++) {
      if (this.inString && !this.escaped && !this.collectingTopString) {
        if (nextQuote !== -1 && nextQuote < i) nextQuote = buffer.indexOf(QUOTE, i);
        if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = buffer.indexOf(BACKSLASH, i);
        const stop = Math.min(nextQuote === -1 ? chunk.length : nextQuote, nextBackslash === -1 ? chunk.length : nextBackslash);
        if (stop >= chunk.length) break;
        i = stop;
      }
      const byte = chunk[i];
      const depth = this.stack.length;
      const inBlobs = this.blobsDepth > 0 && depth === this.blobsDepth && !this.inString;

      if (inBlobs && this.entry === undefined && !isSpace(byte) && byte !== 0x2c /* , */ && byte !== 0x5d /* ] */) {
        // An entry starts here.
        this.entry = [];
        this.entryBytes = 0;
        this.entryIsScalar = byte !== 0x7b && byte !== 0x5b;
        entryStart = i;
      } else if (inBlobs && this.entry !== undefined && this.entryIsScalar && (byte === 0x2c || byte === 0x5d || isSpace(byte))) {
        // A scalar entry (not an object) ends at the separator: hand it out so it is counted as malformed.
        this.finishEntry(chunk, entryStart, i);
        entryStart = -1;
      }

      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === BACKSLASH) this.escaped = true;
        else if (byte === QUOTE) {
          this.inString = false;
          if (this.collectingTopString) this.collectingTopString = false;
        } else if (this.collectingTopString && this.topString.length < 16) this.topString.push(byte);
        continue;
      }
      if (byte === QUOTE) {
        this.inString = true;
        if (depth === 1) {
          this.collectingTopString = true;
          this.topString = [];
        }
      } else if (byte === 0x7b || byte === 0x5b) {
        this.stack.push(byte);
        if (byte === 0x5b && depth === 1 && !this.sawBlobs && Buffer.from(this.topString).toString('latin1') === 'blobs') {
          this.blobsDepth = 2;
          this.sawBlobs = true;
        }
      } else if (byte === 0x7d || byte === 0x5d) {
        this.stack.pop();
        if (this.blobsDepth > 0 && this.stack.length === this.blobsDepth && this.entry !== undefined && !this.entryIsScalar) {
          // The entry's closing brace: it ends with this byte.
          this.finishEntry(chunk, entryStart, i + 1);
          entryStart = -1;
        } else if (this.blobsDepth > 0 && this.stack.length === this.blobsDepth - 1) {
          this.blobsDepth = 0;
          this.blobsClosed = true;
        }
      }
    }
    if (this.entry !== undefined && entryStart >= 0) this.append(chunk.subarray(entryStart));
  }

  private append(part: Uint8Array): void {
    if (this.entry === undefined || this.entry === 'oversized') return;
    this.entryBytes += part.length;
    if (this.entryBytes > this.options.maxEntryBytes) {
      this.entry = 'oversized';
      return;
    }
    this.entry.push(Buffer.from(part));
  }

  private finishEntry(chunk: Uint8Array, start: number, end: number): void {
    if (start >= 0) this.append(chunk.subarray(start, end));
    const entry = this.entry;
    this.entry = undefined;
    if (entry === 'oversized') this.options.onOversized();
    else if (entry !== undefined) this.options.onEntry(Buffer.concat(entry).toString('utf8'));
  }
}
