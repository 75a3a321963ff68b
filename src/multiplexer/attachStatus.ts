/**
 * One exec per (re)attach (issue 16). The script a tab's pty channel runs checks that the session
 * exists (and creates it first, for a new tab), links the forwarded agent, marks our client,
 * replays history if asked, and prints one status line before it execs the multiplexer client:
 *
 *   <marker> attached [replay] [agent=<linked|no-agent|failed>]
 *   <marker> gone | exited <N> | unsupported | create-failed <detail>
 *
 * `<marker>` is a one-time random word, so a banner or a noisy rc file (which may print anything,
 * including our words) is never read as a status. After `attached replay` comes the captured
 * history, ended by `<marker> replay-end`; after that, the client's own output.
 *
 * With `goAhead` (tmux attach clients), the script waits for one line from the client between the
 * status and the `exec`: tmux discards pty output that sshd has not read yet when it takes the
 * terminal (tty_start_tty: tcflush TCOFLUSH), which under load ate the status line and the replay.
 * The client sends that line once it has read the whole preamble (writeGoAhead). This module builds
 * that script from the multiplexer's own scripts and parses the channel's first bytes. No vscode
 * import; the parser is pure.
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { quoteForMessage } from '../common/displayText';
import { RemoteCommandError } from '../ssh/remoteExec';
import type { AgentLinkResult } from '../ssh/agentForwarding';
import { exitFileLines } from './multiplexer';
import { hostLockLines, releaseWhenAttachedLines } from './tmuxCommands';
import { assertSessionId } from '../common/sessionId';

export type AttachStatus =
  | { state: 'attached'; agent?: AgentLinkResult }
  | { state: 'gone' }
  | { state: 'exited'; exitCode: number }
  | { state: 'unsupported' }
  | { state: 'create-failed'; detail: string };

export interface AttachPreamble {
  status: AttachStatus;
  /** The captured history (raw, as the pty delivered it), when the script replayed it. */
  replay?: string;
  /** Bytes after the status line (or the replay): the client's own output, for the terminal. */
  rest: Buffer;
  /** What came before our status line (a banner, rc-file output): for the log, never the terminal. */
  noise: string;
}

/** Bytes we read before the status (and replay) at most; past it the output is garbage. */
export const MAX_PREAMBLE_BYTES = 16 * 1024 * 1024;

export function newAttachMarker(): string {
  return `__tether_${randomBytes(8).toString('hex')}__`;
}

export class AttachStatusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AttachStatusError';
  }
}

/**
 * Reads a channel's first bytes until the status line (and the replay, if one follows). push()
 * returns the preamble once complete, undefined while more is needed, and throws on output that
 * cannot be ours (too long without a status, or a status line we do not know).
 */
export class AttachStatusReader {
  private buffered = Buffer.alloc(0);
  private noise = '';
  private status: AttachStatus | undefined;
  private replayWanted = false;
  private replayStart = 0;

  constructor(
    private readonly marker: string,
    private readonly maxBytes = MAX_PREAMBLE_BYTES,
  ) {
    if (!/^[A-Za-z0-9_]{8,}$/.test(marker)) throw new Error('an attach marker is a word of at least 8 characters');
  }

  push(chunk: Buffer): AttachPreamble | undefined {
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const newline = this.buffered.indexOf(0x0a, this.status ? this.replayStart : 0);
      if (newline < 0) break;
      const line = this.buffered.subarray(this.status ? this.replayStart : 0, newline).toString('utf8').replace(/\r$/, '');
      if (!this.status) {
        this.buffered = this.buffered.subarray(newline + 1);
        const status = this.parseStatusLine(line);
        if (!status) {
          this.noise += `${line}\n`;
          continue;
        }
        this.status = status;
        if (!this.replayWanted) return this.finish(undefined, this.buffered);
        this.replayStart = 0;
        continue;
      }
      // In the replay: look for the end line; everything before it is history.
      if (line === `${this.marker} replay-end`) {
        const lineStart = this.replayStart;
        const replay = this.buffered.subarray(0, lineStart).toString('utf8');
        return this.finish(replay, this.buffered.subarray(newline + 1));
      }
      this.replayStart = newline + 1;
    }
    if (this.buffered.length + this.noise.length > this.maxBytes) {
      throw new AttachStatusError(`no status line from the attach script within ${this.maxBytes} bytes`);
    }
    return undefined;
  }

  /** What arrived without a status, for an error message when the channel ends early. */
  get received(): string {
    return this.noise + this.buffered.toString('utf8');
  }

  private finish(replay: string | undefined, rest: Buffer): AttachPreamble {
    const preamble: AttachPreamble = { status: this.status!, rest: Buffer.from(rest), noise: this.noise };
    if (replay !== undefined) preamble.replay = replay;
    return preamble;
  }

  private parseStatusLine(line: string): AttachStatus | undefined {
    const at = line.indexOf(`${this.marker} `);
    // The marker must start the line (after stray terminal noise such as a cleared line, nothing).
    if (at !== 0) return undefined;
    const words = line.slice(this.marker.length + 1).trim();
    const attached = /^attached((?: replay)?)((?: agent=(?:linked|no-agent|failed))?)$/.exec(words);
    if (attached) {
      this.replayWanted = attached[1] !== '';
      const agent = attached[2] ? (attached[2].slice(' agent='.length) as AgentLinkResult) : undefined;
      return agent ? { state: 'attached', agent } : { state: 'attached' };
    }
    if (words === 'gone') return { state: 'gone' };
    if (words === 'unsupported') return { state: 'unsupported' };
    const exited = /^exited (\d{1,3})$/.exec(words);
    if (exited) return { state: 'exited', exitCode: Math.min(255, Number(exited[1])) };
    const failed = /^create-failed ?(.*)$/.exec(words);
    if (failed) return { state: 'create-failed', detail: failed[1].trim() };
    throw new AttachStatusError(`unexpected status from the attach script: ${JSON.stringify(words.slice(0, 100))}`);
  }
}

export interface AttachScriptParts {
  marker: string;
  /** The session's ID (checked), for its exit-status file. */
  id: string;
  /** The multiplexer's binary: a host without it answers `unsupported` (or `exited`). */
  binary: 'tmux' | 'screen';
  /** The multiplexer's status script: prints alive, gone or `exited N` on its last line. */
  status: string;
  /** The lines that become the client (they end in `exec …`). */
  attach: string;
  /** For a new tab: the create script (prints `created`); it runs before the status check. */
  create?: string;
  /** With agent forwarding: the link script (prints linked or no-agent), run before create. */
  agentLink?: string;
  /** Prints the history to replay (restore and join). */
  capture?: string;
  /** Wait for the client's go-ahead line before the attach (see the module comment). */
  goAhead?: boolean;
  /** Hold the host's tmux lock (tmuxCommands.ts hostLockLines) from before the create until the
   * client is attached: control mode on tmux 3.2 to 3.6. */
  hostLock?: boolean;
}

/** The one script of a tab's attach channel (see the module comment). Parts run in subshells, so
 * their `exit` and variables stay theirs; only the attach lines run in the main shell, whose `$$`
 * the client keeps through `exec` (its client mark relies on that). */
export function attachChannelScript(parts: AttachScriptParts): string {
  if (!/^[A-Za-z0-9_]{8,}$/.test(parts.marker)) throw new Error('an attach marker is a word of at least 8 characters');
  const lines = [
    `m=${parts.marker}`,
    // The go-ahead line must not come back as an echo in the terminal.
    ...(parts.goAhead ? ['stty -echo 2>/dev/null'] : []),
    ...exitFileLines(assertSessionId(parts.id)),
    `if ! command -v ${parts.binary} >/dev/null 2>&1; then`,
    '  if [ -f "$exitfile" ]; then echo "$m exited $(head -c 4 "$exitfile")"; else echo "$m unsupported"; fi',
    '  exit 0',
    'fi',
  ];
  if (parts.hostLock) lines.push(...hostLockLines());
  let agent = '';
  if (parts.agentLink !== undefined) {
    lines.push(`a=$( ( ${subshell(parts.agentLink)} ) 2>/dev/null | grep -E '^(linked|no-agent)$' | tail -n 1)`, '[ -n "$a" ] || a=failed');
    agent = ' agent=$a';
  }
  if (parts.create !== undefined) {
    lines.push(
      `out=$( ( ${subshell(parts.create)} ) 2>&1 )`,
      'case "$out" in *created*) ;; *) echo "$m create-failed $(printf %s "$out" | tr -d \'\\r\' | tr \'\\n\' \' \' | cut -c 1-300)"; exit 0 ;; esac',
    );
  }
  lines.push(
    `st=$( ( ${subshell(parts.status)} ) 2>/dev/null | tail -n 1)`,
    'case "$st" in',
    '  alive) ;;',
    '  gone|exited\\ *) echo "$m $st"; exit 0 ;;',
    '  *) echo "$m unsupported"; exit 0 ;;',
    'esac',
  );
  if (parts.capture !== undefined) {
    lines.push(`echo "$m attached replay${agent}"`, `( ${subshell(parts.capture)} ) 2>/dev/null`, 'echo', 'echo "$m replay-end"');
  } else {
    lines.push(`echo "$m attached${agent}"`);
  }
  if (parts.goAhead) lines.push('IFS= read -r go || exit 0');
  if (parts.hostLock) lines.push(...releaseWhenAttachedLines(parts.id));
  lines.push(parts.attach);
  return lines.join('\n');
}

/** Tells an attach script with `goAhead` that its preamble arrived: the client may take the pty. */
export function writeGoAhead(channel: ClientChannel): void {
  channel.write('\n');
}

/** A script as the body of `( … )`: on its own lines, so a comment or heredoc cannot eat the `)`. */
function subshell(script: string): string {
  return `\n${script}\n`;
}

/**
 * Reads the attach channel's preamble. On `attached` the channel is left paused with no data
 * listener: the driver takes `rest` and resumes it, so no byte is lost or doubled. Rejects when the
 * channel (or, through `connection`'s 'close', the whole connection) ends first, or on timeout.
 */
export function readAttachPreamble(channel: ClientChannel, marker: string, timeoutMs: number, connection?: EventEmitter): Promise<AttachPreamble> {
  const reader = new AttachStatusReader(marker);
  return new Promise((resolve, reject) => {
    let done = false;
    const cleanup = (): void => {
      done = true;
      clearTimeout(timer);
      channel.off('data', onData);
      channel.off('close', onClose);
      connection?.off('close', onConnectionClose);
    };
    const fail = (error: Error): void => {
      if (done) return;
      cleanup();
      channel.close();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      if (done) return;
      let preamble: AttachPreamble | undefined;
      try {
        preamble = reader.push(chunk);
      } catch (error) {
        return fail(error as Error);
      }
      if (!preamble) return;
      cleanup();
      channel.pause();
      resolve(preamble);
    };
    const onClose = (): void => fail(new RemoteCommandError('no-marker', `the attach script ended without a status; output: ${quoteForMessage(reader.received, 200)}`));
    const onConnectionClose = (): void => fail(new RemoteCommandError('channel', 'the connection closed before the attach script answered'));
    const timer = setTimeout(() => fail(new RemoteCommandError('timeout', `the attach script gave no status within ${timeoutMs} ms; output so far: ${quoteForMessage(reader.received, 200)}`)), timeoutMs);
    channel.on('data', onData);
    channel.on('close', onClose);
    connection?.on('close', onConnectionClose);
  });
}
