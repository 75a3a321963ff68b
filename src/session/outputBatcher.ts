import { StringDecoder } from 'node:string_decoder';

export interface OutputBatcherOptions {
  /** Receives decoded text; called once per burst of chunks. */
  write: (text: string) => void;
  /** Applies back-pressure to the source (the SSH channel) while the backlog is large. */
  pause: () => void;
  resume: () => void;
  /** Above this many pending bytes the source is paused until a flush drains them. */
  highWaterMark?: number;
}

/**
 * Turns SSH channel chunks into terminal writes. Decoding keeps multi-byte UTF-8 sequences that are
 * split across chunks intact; batching keeps a burst of output from flooding the editor with one
 * event per chunk; pausing the channel pushes the backlog back into SSH flow control.
 */
export class OutputBatcher {
  private readonly decoder = new StringDecoder('utf8');
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Immediate | undefined;
  private paused = false;
  private disposed = false;
  private readonly highWaterMark: number;

  constructor(private readonly options: OutputBatcherOptions) {
    this.highWaterMark = options.highWaterMark ?? 256 * 1024;
  }

  push(chunk: Buffer): void {
    if (this.disposed) return;
    const text = this.decoder.write(chunk);
    if (text.length === 0) return;
    this.pending.push(text);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= this.highWaterMark && !this.paused) {
      this.paused = true;
      this.options.pause();
    }
    // Chunks that arrive in one turn of the event loop become one write; a keystroke's echo is
    // written in the same turn it arrives (a timer here cost every echo its full interval).
    this.timer ??= setImmediate(() => this.flush());
  }

  /** Writes everything pending now (for example before a status line, so order is kept). */
  flush(): void {
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    if (this.pending.length > 0) {
      const text = this.pending.join('');
      this.pending = [];
      this.pendingBytes = 0;
      this.options.write(text);
    }
    if (this.paused && !this.disposed) {
      this.paused = false;
      this.options.resume();
    }
  }

  /** Starts a fresh byte stream: a half sequence from a dead channel must not prefix the next. */
  reset(): void {
    this.flush();
    this.decoder.end();
  }

  dispose(): void {
    this.flush();
    this.disposed = true;
  }
}
