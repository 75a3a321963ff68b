/**
 * A streaming parser for tmux control mode (tmux(1), CONTROL MODE), fed arbitrary chunks.
 *
 * - `-CC`: everything before the DCS marker `ESC P1000p` is ordinary output (a banner, a shell's
 *   rc-file noise, or tmux's own error when it cannot attach). It is passed through as
 *   `passthrough` and never parsed. After `%exit`, tmux ends the DCS with `ESC \`; anything after
 *   that is passed through again.
 * - `-C`: there is no marker, and a pty echoes every command line we send. The owner tells the
 *   parser each line it sent (`expectEcho`); a line equal to the oldest expected echo is dropped.
 *   Lines that do not start with `%` outside a reply block are passed through.
 *
 * Reply blocks: `%begin <time> <number> <flags>` … `%end|%error <time> <number> <flags>`. The block
 * ends only at a guard with the same number and flags; every other line inside (including lines
 * that look like `%end` with another number, or like `%output`) is data.
 *
 * `%output %<pane> <data>` and `%extended-output %<pane> <age> … : <data>` carry bytes with every
 * byte below 0x20 and the backslash written as `\ooo`; bytes of 0x80 and above arrive raw. Data is
 * kept as a Buffer: a UTF-8 character split across two notifications is decoded later.
 */

export type ControlEvent =
  | { type: 'passthrough'; data: Buffer }
  /** The DCS marker of `-CC` was seen: control mode starts. */
  | { type: 'start' }
  | { type: 'output'; pane: number; data: Buffer; age?: number }
  | { type: 'reply'; time: number; number: number; flags: number; error: boolean; lines: string[] }
  | { type: 'pause'; pane: number }
  | { type: 'continue'; pane: number }
  | { type: 'exit'; reason: string | undefined }
  /** Any other notification, e.g. `%session-changed $1 name` → name 'session-changed'. */
  | { type: 'notification'; name: string; args: string };

export type ControlModeFlavour = '-C' | '-CC';

const DCS_START = Buffer.from('\x1bP1000p', 'latin1');
const ST = Buffer.from('\x1b\\', 'latin1');
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;

type Phase = 'preamble' | 'protocol' | 'after-exit';

interface OpenBlock {
  time: number;
  number: number;
  flags: number;
  lines: string[];
}

export class ControlParser {
  private phase: Phase;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes held back in the preamble because they may be the start of the DCS marker. */
  private held: Buffer = Buffer.alloc(0);
  private block: OpenBlock | undefined;
  private readonly echoes: string[] = [];
  /** In after-exit: how many bytes of `ESC \` were already consumed. */
  private stMatched = 0;

  constructor(readonly flavour: ControlModeFlavour) {
    this.phase = flavour === '-CC' ? 'preamble' : 'protocol';
  }

  /** In `-C` mode: a line we sent, whose echo by the pty must not be parsed. */
  expectEcho(line: string): void {
    if (this.flavour === '-C') this.echoes.push(line);
  }

  /** True while inside a `%begin` … `%end` block. */
  get inBlock(): boolean {
    return this.block !== undefined;
  }

  push(chunk: Buffer): ControlEvent[] {
    const events: ControlEvent[] = [];
    this.consume(chunk, events);
    return events;
  }

  private consume(chunk: Buffer, events: ControlEvent[]): void {
    if (chunk.length === 0) return;
    if (this.phase === 'preamble') {
      const data = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
      this.held = Buffer.alloc(0);
      const at = data.indexOf(DCS_START);
      if (at >= 0) {
        if (at > 0) events.push({ type: 'passthrough', data: Buffer.from(data.subarray(0, at)) });
        this.phase = 'protocol';
        events.push({ type: 'start' });
        this.consume(data.subarray(at + DCS_START.length), events);
        return;
      }
      // Keep a tail that could be the start of the marker.
      let keep = Math.min(DCS_START.length - 1, data.length);
      while (keep > 0 && !DCS_START.subarray(0, keep).equals(data.subarray(data.length - keep))) keep--;
      if (data.length - keep > 0) events.push({ type: 'passthrough', data: Buffer.from(data.subarray(0, data.length - keep)) });
      this.held = Buffer.from(data.subarray(data.length - keep));
      return;
    }
    if (this.phase === 'after-exit') {
      let start = 0;
      while (this.stMatched < ST.length && start < chunk.length && chunk[start] === ST[this.stMatched]) {
        this.stMatched++;
        start++;
      }
      if (this.stMatched < ST.length && start < chunk.length) this.stMatched = ST.length; // no ST: plain output
      if (start < chunk.length) events.push({ type: 'passthrough', data: Buffer.from(chunk.subarray(start)) });
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, offset);
      if (nl < 0) {
        const rest = chunk.subarray(offset);
        this.pending.push(Buffer.from(rest));
        this.pendingBytes += rest.length;
        return;
      }
      let line = chunk.subarray(offset, nl);
      if (this.pending.length > 0) {
        line = Buffer.concat([...this.pending, line], this.pendingBytes + line.length);
        this.pending = [];
        this.pendingBytes = 0;
      }
      offset = nl + 1;
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
      this.line(line, events);
      if ((this.phase as Phase) === 'after-exit') {
        this.consume(chunk.subarray(offset), events);
        return;
      }
    }
  }

  private line(line: Buffer, events: ControlEvent[]): void {
    if (this.echoes.length > 0 && line.length === Buffer.byteLength(this.echoes[0]) && line.toString('utf8') === this.echoes[0]) {
      this.echoes.shift();
      return;
    }
    if (this.block) {
      const guard = /^%(end|error) (\d+) (\d+) (\d+)$/.exec(line.length < 64 ? line.toString('latin1') : '');
      if (guard && Number(guard[3]) === this.block.number && Number(guard[4]) === this.block.flags) {
        const block = this.block;
        this.block = undefined;
        events.push({ type: 'reply', time: block.time, number: block.number, flags: block.flags, error: guard[1] === 'error', lines: block.lines });
      } else {
        this.block.lines.push(line.toString('utf8'));
      }
      return;
    }
    if (line.length === 0 || line[0] !== 0x25 /* % */) {
      if (line.length > 0 || this.flavour === '-C') events.push({ type: 'passthrough', data: Buffer.concat([line, Buffer.from('\n')]) });
      return;
    }
    if (startsWith(line, '%output ')) {
      const parsed = paneAndRest(line, '%output '.length);
      if (parsed) events.push({ type: 'output', pane: parsed.pane, data: decodeOctal(line.subarray(parsed.rest)) });
      return;
    }
    if (startsWith(line, '%extended-output ')) {
      const parsed = paneAndRest(line, '%extended-output '.length);
      if (!parsed) return;
      const colon = line.indexOf(' : ', parsed.rest - 1);
      if (colon < 0) return;
      const age = Number(/^(\d+)/.exec(line.subarray(parsed.rest, colon).toString('latin1'))?.[1] ?? NaN);
      events.push({ type: 'output', pane: parsed.pane, data: decodeOctal(line.subarray(colon + 3)), ...(Number.isFinite(age) ? { age } : {}) });
      return;
    }
    const text = line.toString('utf8');
    const begin = /^%begin (\d+) (\d+) (\d+)$/.exec(text);
    if (begin) {
      this.block = { time: Number(begin[1]), number: Number(begin[2]), flags: Number(begin[3]), lines: [] };
      return;
    }
    const space = text.indexOf(' ');
    const name = text.slice(1, space < 0 ? undefined : space);
    const args = space < 0 ? '' : text.slice(space + 1);
    switch (name) {
      case 'pause':
      case 'continue': {
        const pane = /^%(\d+)$/.exec(args);
        if (pane) events.push({ type: name, pane: Number(pane[1]) });
        return;
      }
      case 'exit':
        events.push({ type: 'exit', reason: args === '' ? undefined : args });
        if (this.flavour === '-CC') this.phase = 'after-exit';
        return;
      default:
        events.push({ type: 'notification', name, args });
    }
  }
}

function startsWith(line: Buffer, prefix: string): boolean {
  if (line.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (line[i] !== prefix.charCodeAt(i)) return false;
  return true;
}

/** Parses `%<digits> ` at `from`; returns the pane number and where the rest starts. */
function paneAndRest(line: Buffer, from: number): { pane: number; rest: number } | undefined {
  if (line[from] !== 0x25) return undefined;
  let i = from + 1;
  let pane = 0;
  while (i < line.length && line[i] >= 0x30 && line[i] <= 0x39) pane = pane * 10 + (line[i++] - 0x30);
  if (i === from + 1) return undefined;
  if (i < line.length && line[i] !== 0x20) return undefined;
  return { pane, rest: Math.min(i + 1, line.length) };
}

function isOctal(byte: number | undefined): boolean {
  return byte !== undefined && byte >= 0x30 && byte <= 0x37;
}

/** Decodes tmux's `\ooo` escapes to raw bytes; a backslash not followed by three octal digits stays. */
export function decodeOctal(data: Buffer): Buffer {
  if (data.indexOf(BACKSLASH) < 0) return Buffer.from(data);
  const out = Buffer.allocUnsafe(data.length);
  let n = 0;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i];
    if (byte === BACKSLASH && isOctal(data[i + 1]) && isOctal(data[i + 2]) && isOctal(data[i + 3])) {
      out[n++] = ((data[i + 1] - 0x30) * 64 + (data[i + 2] - 0x30) * 8 + (data[i + 3] - 0x30)) & 0xff;
      i += 3;
    } else {
      out[n++] = byte;
    }
  }
  return Buffer.from(out.subarray(0, n));
}
