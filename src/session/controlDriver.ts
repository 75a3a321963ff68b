/**
 * ControlDriver: a SessionDriver that talks to a Tether tmux session through a tmux control-mode
 * client (`tmux -u -L tether -CC attach -t '=tether_<id>'`) on a pty channel, so that the tab's
 * terminal holds the pane's real bytes (VS Code's own scrollback, find and selection work) while
 * the shell stays in tmux and survives drops (docs/architecture.md, Sessions).
 *
 * Design:
 * - Framing: `-CC` by default: no pty echo, and everything before the DCS marker (a banner, or
 *   tmux's own error when it cannot attach) is never parsed; it is logged, and quoted in the error
 *   when the channel ends before control mode starts. `-C` works too (echoes are skipped).
 * - Readiness: commands are sent only after `%session-changed`; commands read before the attach
 *   completes fail with "no current client".
 * - One command line per request; each of its commands yields one `%begin`/`%end|%error` block
 *   from our client (flags 1), in order, so replies are matched by order (a parse error yields one
 *   block for the whole line). Lines stay under 4 KB (a canonical pty line holds 4095 bytes).
 * - State sync (screenState.ts): `refresh-client -C <cols>,<rows>` plus the display/capture batch,
 *   on one line. tmux queues a pane's `%output` at the moment it parses those bytes into the pane's
 *   screen, and writes command replies through the same ordered queue. So every `%output` that
 *   arrives before the first reply block of the sync line is already part of the captured state,
 *   and every `%output` after it is not. Before the first sync: dropped. Between the first block
 *   and the end of the line: queued, and written right after the state bytes. Once live, output
 *   is forwarded (a later sync starts with RIS, so output shown before it is never doubled; an
 *   append after a flood rewrites from the row where the stream was cut, see Floods).
 * - Resize: the next sync line carries the new `refresh-client -C`; the sync rebuilds the screen
 *   as tmux reflowed it (tmux's and xterm's reflow differ). At most one sync is in flight, and
 *   resizes during it coalesce into one more.
 * - Input (encodeInput): runs of printable ASCII other than `'` go as
 *   `send-keys -l -t %<pane> -- '<text>'` (tmux's single quotes are fully literal); every other
 *   byte (controls, `'`, UTF-8 bytes) as `send-keys -H -t %<pane> <hex>` (raw bytes, any value).
 *   Measured on tmux 3.3a: -H costs grow faster than linearly with the number of keys in one
 *   command (1200 keys: ~20 ms), while -l moves ~1 MB/s; so -H runs are kept short. Commands are
 *   packed into lines of at most MAX_LINE_BYTES, with MAX_INPUT_IN_FLIGHT lines awaiting replies,
 *   so a large paste arrives intact and in order without flooding the server.
 * - Flow control: `refresh-client -f pause-after=<secs>` (tmux 3.2+): when our client falls that far
 *   behind, tmux drops the pane's pending output and sends `%pause`; we answer with
 *   `refresh-client -A '%<pane>:continue'` and a fresh state sync on the same line, so a flood
 *   never builds an unbounded backlog. pause()/resume() pause the SSH channel (back-pressure from
 *   the OutputBatcher), which is what makes our client fall behind in the first place.
 * - Floods (floodControl.ts): a pane whose output stays above 2 MB/s for 200 ms stops being
 *   streamed. A state line marks the point in our stream (its reply comes in order with %output;
 *   output after it is dropped), then `refresh-client -A '%<pane>:pause'`; tmux discards what it had
 *   queued for us, so the pause cannot itself be the mark. While paused, the visible screen is
 *   polled (state + capture, at most every 33 ms, one in flight) and painted in place. Once polls
 *   estimate the pane below 500 KB/s (1 to 16 in a row: calmPollsNeeded), one line resumes
 *   (`continue`) and reads the state and the
 *   history rows that scrolled by since the mark, which are appended (renderAppend): the
 *   scrollback stays complete without tmux escaping every byte for us. Where an exact append is
 *   impossible (history trimmed or cleared, more rows than the replay limit, a resize) the
 *   flood ends with a full sync instead.
 * - Nudge: tmux 3.3a can leave a `%pause` queued and unsent (control.c queues a notification
 *   behind pending blocks, and after the pause discards them nothing flushes it until the client's
 *   next command), so a long run of output that stops dead is followed by one cheap command
 *   (NUDGE_COMMAND); its reply flushes anything tmux holds, and a pause then arrives and is handled.
 * - Geometry (`window-size latest`): tmux makes a client the window's latest when it presses a key,
 *   attaches, resizes its tty (attach clients only) or runs `select-window`; `send-keys` and
 *   `refresh-client -C` from a control client do not count. So when a sync or `%layout-change` shows
 *   the window at another size than ours (another device took it), the first input after that is
 *   preceded by `select-window -t =<session>:` (the current window: nothing switches), which makes
 *   us latest and resizes the window to us: one extra command per switch of typing device, sent
 *   ahead of the keys without waiting for its reply. tmux 3.2+ (docs/architecture.md, "Geometry").
 * - Close: `%exit` (session killed, server gone, detached by someone) closes the channel;
 *   detach() closes the channel (the pty hangs up; see detach()). Either way onClose fires once, with the
 *   channel's exit status when there was one.
 * Output emitted before the first onOutput listener is registered (the initial state) is held and
 * delivered to that listener.
 */

import type { ClientChannel, PseudoTtyOptions } from 'ssh2';
import type { Logger } from '../common/logger';
import type { PaneState } from '../multiplexer/controlMode/screenState';
import { Version, versionAtLeast } from '../multiplexer/multiplexer';
import { shellQuote } from '../common/quoting';
import { ChannelLifecycle, type DriverClose, type SessionDriver, type TerminalSize } from './sessionDriver';
import { assertSessionId, sessionName } from '../common/sessionId';
import type { SshConnection } from '../ssh/sshConnection';
import { TMUX_SOCKET, clientMarkLines } from '../multiplexer/tmuxCommands';
import { ControlEvent, ControlModeFlavour, ControlParser } from '../multiplexer/controlMode/parser';
import {
  SyncCommands, SyncReply, keepHistoryTail, parseStateReply, parseSyncReplies, renderAppend, renderPaint, renderSync, screenCommand, stateCommand, syncCommands,
} from '../multiplexer/controlMode/screenState';
import {
  DEFAULT_FLOOD_OPTIONS, FloodMark, FloodOptions, OutputRate, PollSample, calmPollsNeeded, estimatedRate, resumeRows, rowsToAppend,
} from './floodControl';

/** Raw input bytes taken from the queue per round of encoding. */
export const INPUT_BYTES_PER_ROUND = 3600;
export const MAX_INPUT_IN_FLIGHT = 8;
export const MAX_LINE_BYTES = 4000;
const MAX_LITERAL_RUN = 1800;
const MAX_HEX_RUN = 300;

function literalByte(byte: number): boolean {
  return byte >= 0x20 && byte <= 0x7e && byte !== 0x27;
}

export interface InputLine {
  /** Joined by ` ; `, they make one line of at most MAX_LINE_BYTES. */
  commands: string[];
  /** How many input bytes this line types. */
  bytes: number;
}

/** The tmux command lines that type `bytes` into pane `%<pane>`, in order. */
export function encodeInput(bytes: Buffer, pane: number): InputLine[] {
  const target = `-t %${Math.trunc(pane)}`;
  const commands: { text: string; bytes: number }[] = [];
  let i = 0;
  while (i < bytes.length) {
    const literal = literalByte(bytes[i]);
    let end = i;
    while (end < bytes.length && literalByte(bytes[end]) === literal && end - i < (literal ? MAX_LITERAL_RUN : MAX_HEX_RUN)) end++;
    const run = bytes.subarray(i, end);
    if (literal) {
      commands.push({ text: `send-keys -l ${target} -- '${run.toString('latin1')}'`, bytes: run.length });
    } else {
      const hex: string[] = new Array(run.length);
      for (let k = 0; k < run.length; k++) hex[k] = run[k].toString(16).padStart(2, '0');
      commands.push({ text: `send-keys -H ${target} ${hex.join(' ')}`, bytes: run.length });
    }
    i = end;
  }
  const lines: InputLine[] = [];
  let current: InputLine = { commands: [], bytes: 0 };
  let size = 0;
  for (const command of commands) {
    if (current.commands.length > 0 && size + 3 + command.text.length > MAX_LINE_BYTES) {
      lines.push(current);
      current = { commands: [], bytes: 0 };
      size = 0;
    }
    size += (current.commands.length > 0 ? 3 : 0) + command.text.length;
    current.commands.push(command.text);
    current.bytes += command.bytes;
  }
  if (current.commands.length > 0) lines.push(current);
  return lines;
}

/** A command with a one-line reply: sent after a long run of output stops, it makes tmux write
 * whatever notification it holds queued (see Nudge above). */
export const NUDGE_COMMAND = "display-message -p ''";
/** A run of output at least this long or this large, followed by this much silence, gets a nudge
 * (size too: after our channel was paused, a backlog arrives in well under the time). */
const NUDGE_RUN_MS = 500;
const NUDGE_RUN_BYTES = 256 * 1024;
const NUDGE_SILENCE_MS = 250;

/** Control mode with pause-after flow control and control-client sizes (`refresh-client -C`) need tmux 3.2. */
export function controlModeSupported(version: Version | undefined): boolean {
  return version !== undefined && versionAtLeast(version, 3, 2);
}

/**
 * tmux before 3.7 sends control notifications (%sessions-changed, %client-detached, …) to a
 * control client that is still identifying, whose control state does not exist yet: the server
 * segfaults and every session on it ends (tmux commit e5a2a25, GitHub issue 4980; reproduced on
 * 3.3a, docs/reliability.md). So on those versions one device starts its control clients, creates
 * and kills on a host one at a time, each control client until it is identified.
 */
export function controlStartsNeedSerialising(version: Version | undefined): boolean {
  return version !== undefined && !versionAtLeast(version, 3, 7);
}

export interface ControlDriverOptions {
  /** Lines of history written into the terminal's scrollback by each state sync. */
  historyLines: number;
  /** Bytes of history written by each state sync, at most (the oldest lines go). Default 1 MiB. */
  historyMaxBytes?: number;
  log: Logger;
  /** tmux pauses our pane's output when we are this many seconds behind. Default 5. */
  pauseAfterSeconds?: number;
  /** Default '-CC'. */
  flavour?: ControlModeFlavour;
  /** How long to wait for control mode to start and the first sync. Default 20 s. */
  openTimeoutMs?: number;
  /** This device's name: marks our client on the host, so a refused kill elsewhere can name it. */
  device?: string;
  /** When a pane counts as flooding, and how a paused pane is polled (floodControl.ts). */
  flood?: Partial<FloodOptions>;
}

/** The script run on the host: the same environment as the attach script, in control mode. */
export function controlAttachScript(id: string, flavour: ControlModeFlavour = '-CC', device?: string): string {
  return [
    'unset TMUX TMUX_PANE',
    ...clientMarkLines(id, device),
    `exec tmux -u -L ${TMUX_SOCKET} ${flavour} attach-session -t ${shellQuote(`=${sessionName(assertSessionId(id))}`)}`,
  ].join('\n');
}

export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
  static is(error: unknown): error is ControlError {
    return error instanceof ControlError;
  }
}

/** A flood in progress (see Floods above). */
interface Flood {
  /** Set by the mark's reply (until then the flood is marking, after it paused): where the
   * terminal stands in tmux's history. */
  mark: FloodMark | undefined;
  /** An exact append is ruled out already: the flood ends with a full sync. */
  needsFull: boolean;
  /** A poll saw the history size change. */
  moved: boolean;
  last: PollSample | undefined;
  polling: boolean;
  timer: NodeJS.Timeout | undefined;
  /** The terminal shows the alternate screen (what the last paint left). */
  onAlternate: boolean;
  lastPaint: string | undefined;
  /** The size tmux last heard from us. */
  told: TerminalSize;
  startedAt: number;
  /** Calm polls in a row so far, and how many end the flood (calmPollsNeeded). */
  calmPolls: number;
  calmNeeded: number;
}

/** A sync that ends a flood by appending history rows rather than rewriting everything. */
interface AppendPlan {
  mark: FloodMark;
  rows: number;
  moved: boolean;
}

interface PendingLine {
  commands: number;
  replies: SyncReply[];
  resolve: (replies: SyncReply[]) => void;
  reject: (error: Error) => void;
  /** Called when the first reply block of this line arrives. */
  onStart?: () => void;
}

export async function openControlDriver(
  connection: SshConnection,
  id: string,
  size: TerminalSize,
  options: ControlDriverOptions,
): Promise<ControlDriver> {
  const flavour = options.flavour ?? '-CC';
  const pty: PseudoTtyOptions = { term: 'xterm-256color', cols: size.cols, rows: size.rows, width: 0, height: 0, modes: {} };
  const channel = await connection.openTerminal(controlAttachScript(id, flavour, options.device), pty);
  return startControlDriver(channel, id, size, options);
}

/** Starts control mode on a channel that already runs the control client (the one-exec attach
 * script, attachStatus.ts): `initial` holds the bytes read after its status line; the channel may
 * be paused and is resumed here. Resolves after the first state sync. */
export async function startControlDriver(channel: ClientChannel, id: string, size: TerminalSize, options: ControlDriverOptions, initial?: Buffer): Promise<ControlDriver> {
  const flavour = options.flavour ?? '-CC';
  const driver = new ControlDriver(channel, id, size, { ...options, flavour }, initial);
  try {
    await driver.started;
  } catch (error) {
    driver.detach();
    throw error;
  }
  return driver;
}

export class ControlDriver implements SessionDriver {
  /** Resolves after the first state sync has been produced; rejects if control mode never starts. */
  readonly started: Promise<void>;
  private readonly parser: ControlParser;
  private readonly log: Logger;
  private readonly lifecycle: ChannelLifecycle;
  private exitReason: string | undefined;
  private ready = false;
  private live = false;
  private paneId: number | undefined;
  private paneSize: TerminalSize | undefined;
  private size: TerminalSize;
  private readonly pending: PendingLine[] = [];
  private syncing = false;
  private syncStarted = false;
  private resyncWanted = false;
  private syncFailures = 0;
  /** A sync retry after repeated failures, backed off. */
  private resyncTimer: NodeJS.Timeout | undefined;
  private continueWanted = false;
  /** The window is not at our size: the next input claims it first (see Geometry above). */
  private claimWanted = false;
  private queued: { pane: number; data: Buffer }[] = [];
  /** The terminal no longer follows the stream (a flood was marked): output waits for a sync. */
  private dropping = false;
  private flood: Flood | undefined;
  private readonly floodOptions: FloodOptions;
  private readonly outputRate: OutputRate;
  private runStartedAt = 0;
  private runBytes = 0;
  private lastFloodEndedAt = -Infinity;
  private calmNeeded = 1;
  private lastOutputAt = -Infinity;
  private nudgeTimer: NodeJS.Timeout | undefined;
  private input: Buffer[] = [];
  private inputInFlight = 0;
  private preamble: Buffer[] = [];
  private early: Buffer[] | undefined = [];
  private readonly outputListeners: ((chunk: Buffer) => void)[] = [];
  private startResolve!: () => void;
  private startReject!: (error: Error) => void;
  private startTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly channel: ClientChannel,
    readonly id: string,
    size: TerminalSize,
    private readonly options: ControlDriverOptions,
    initial?: Buffer,
  ) {
    this.size = { ...size };
    this.log = options.log;
    this.parser = new ControlParser(options.flavour ?? '-CC');
    this.floodOptions = { ...DEFAULT_FLOOD_OPTIONS, ...options.flood };
    this.outputRate = new OutputRate(this.floodOptions.windowMs);
    this.started = new Promise<void>((resolve, reject) => {
      this.startResolve = resolve;
      this.startReject = reject;
    });
    this.started.catch(() => undefined);
    this.startTimer = setTimeout(() => this.failStart(new ControlError(`tmux control mode did not start within ${options.openTimeoutMs ?? 20_000} ms${this.preambleText()}`)), options.openTimeoutMs ?? 20_000);
    const onData = (chunk: Buffer): void => {
      for (const event of this.parser.push(chunk)) this.handle(event);
    };
    channel.on('data', onData);
    channel.stderr.on('data', (chunk: Buffer) => this.log.debug(`tmux control ${this.name}: stderr ${JSON.stringify(chunk.toString('utf8').slice(0, 300))}`));
    this.lifecycle = new ChannelLifecycle(channel, () => this.onChannelClose());
    if (initial && initial.length > 0) onData(initial);
    channel.resume();
  }

  get isOpen(): boolean {
    return this.lifecycle.isOpen;
  }

  get name(): string {
    return sessionName(this.id);
  }

  /** The pane whose output this driver forwards (`%<n>`), once known. */
  get pane(): string | undefined {
    return this.paneId === undefined ? undefined : `%${this.paneId}`;
  }

  /** The window is at another client's size, as far as we have heard: our next input claims it. */
  get claimPending(): boolean {
    return this.claimWanted;
  }

  /** Why tmux ended control mode (`%exit <reason>`), if it said. */
  get exitMessage(): string | undefined {
    return this.exitReason;
  }

  write(data: string | Buffer): void {
    if (!this.lifecycle.isOpen) return;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    if (bytes.length === 0) return;
    this.input.push(bytes);
    this.pumpInput();
  }

  resize(size: TerminalSize): void {
    if (!this.lifecycle.isOpen) return;
    if (size.cols === this.size.cols && size.rows === this.size.rows) return;
    this.size = { cols: size.cols, rows: size.rows };
    if (this.ready) this.requestSync();
  }

  pause(): void {
    this.channel.pause();
  }

  resume(): void {
    this.channel.resume();
  }

  /**
   * Leaves by closing the channel: sshd hangs up the pty and the tmux client exits on SIGHUP. Not by
   * `detach-client`: tmux 3.3a's server segfaults when several control clients detach that way at
   * the same moment (a window closing its tabs), taking every session down (docs/reliability.md).
   */
  detach(): void {
    if (!this.lifecycle.isOpen) return;
    this.channel.close();
  }

  onOutput(listener: (chunk: Buffer) => void): void {
    this.outputListeners.push(listener);
    const early = this.early;
    this.early = undefined;
    for (const chunk of early ?? []) listener(chunk);
  }

  onClose(listener: (info: DriverClose) => void): void {
    this.lifecycle.onClose(listener);
  }

  /** A flood is being shown at display rate, or its closing sync has yet to arrive (Floods above). */
  get flooding(): boolean {
    return this.flood !== undefined || this.dropping;
  }

  /** Re-reads the pane's whole state from tmux and rewrites the terminal with it. */
  requestSync(): void {
    if (!this.lifecycle.isOpen || !this.ready) return;
    if (this.flood) {
      // The flood ends with a sync; it can no longer be an append.
      this.flood.needsFull = true;
      return;
    }
    this.startSync(undefined);
  }

  private startSync(append: AppendPlan | undefined): void {
    if (this.syncing) {
      this.resyncWanted = true;
      return;
    }
    this.resyncWanted = false;
    const pre = [this.sizeCommand()];
    const continuing = this.continueWanted && this.paneId !== undefined;
    if (continuing) {
      // tmux's parser refuses `%5:continue` unquoted; the pane number is an integer we parsed.
      pre.push(`refresh-client -A '%${this.paneId}:continue'`);
      this.continueWanted = false;
    }
    if (!this.live) pre.push(`refresh-client -f ${shellQuote(`pause-after=${Math.max(1, Math.trunc(this.options.pauseAfterSeconds ?? 5))}`)}`);
    const target = this.paneId === undefined ? `=${this.name}:` : `%${this.paneId}`;
    const sync = append ? syncCommands(target, append.rows, { rows: true }) : syncCommands(target, this.options.historyLines);
    this.syncing = true;
    this.syncStarted = false;
    this.send([...pre, ...sync.commands], () => {
      this.syncStarted = true;
    }).then(
      (replies) => this.applySync(sync, replies.slice(pre.length), replies.length === 1 && replies[0].error ? replies[0] : undefined, continuing, append),
      () => undefined,
    );
  }

  private applySync(sync: SyncCommands, replies: SyncReply[], lineError: SyncReply | undefined, continuing: boolean, append: AppendPlan | undefined): void {
    this.syncing = false;
    if (!this.lifecycle.isOpen) return;
    let state: Buffer | undefined;
    try {
      if (lineError) throw new ControlError(`tmux refused the sync: ${lineError.lines.join(' ').slice(0, 200)}`);
      const snapshot = parseSyncReplies(sync, replies);
      this.paneId = snapshot.state.paneId;
      this.paneSize = { cols: snapshot.state.width, rows: snapshot.state.height };
      this.claimWanted = snapshot.state.width !== this.size.cols || snapshot.state.height !== this.size.rows;
      if (this.claimWanted) {
        this.log.debug(`tmux control ${this.name}: pane is ${snapshot.state.width}x${snapshot.state.height}, terminal ${this.size.cols}x${this.size.rows}`);
      }
      if (append) {
        const rows = this.appendableRows(append, snapshot.state, snapshot.history);
        if (rows) {
          this.log.info(`tmux control ${this.name}: flood over; ${rows.length} history rows appended`);
          state = Buffer.from(renderAppend(keepHistoryTail(snapshot, rows.length), this.size.rows), 'utf8');
        } else {
          // Output after this line's first reply follows a state we do not show: a full sync
          // (next) draws everything again.
          this.log.info(`tmux control ${this.name}: flood over; the history cannot be appended exactly, so a full sync follows`);
          this.queued = [];
          this.resyncWanted = true;
        }
      } else {
        const kept = tailWithin(snapshot.history, this.options.historyMaxBytes ?? 1024 * 1024).length;
        state = Buffer.from(renderSync(keepHistoryTail(snapshot, kept), this.size.rows), 'utf8');
      }
    } catch (error) {
      this.log.warn(`tmux control ${this.name}: state sync failed: ${(error as Error).message}`);
      if (!this.live) {
        this.failStart(error instanceof Error ? error : new ControlError(String(error)));
        return;
      }
      // A failed line may have carried the `continue` of a paused pane: never leave it paused (a
      // paused pane is a frozen tab). Retry at once a few times, then back off, but never give up.
      this.resyncWanted = true;
      this.continueWanted ||= continuing;
      if (++this.syncFailures > 3) {
        const delayMs = Math.min(5000, 250 * 2 ** (this.syncFailures - 4));
        this.resyncTimer ??= setTimeout(() => {
          this.resyncTimer = undefined;
          this.requestSync();
        }, delayMs);
      }
    }
    if (state) {
      this.syncFailures = 0;
      this.dropping = false;
      this.outputRate.reset();
      this.emit(state);
    }
    const queued = this.queued;
    this.queued = [];
    for (const chunk of queued) if (chunk.pane === this.paneId) this.emit(chunk.data);
    if (!this.live) {
      this.live = true;
      if (this.startTimer) clearTimeout(this.startTimer);
      this.startTimer = undefined;
      this.startResolve();
    }
    this.pumpInput();
    if ((this.resyncWanted || this.continueWanted) && !this.resyncTimer) this.requestSync();
  }

  private handle(event: ControlEvent): void {
    switch (event.type) {
      case 'output':
        if (this.paneId !== undefined && event.pane !== this.paneId) return;
        if (this.syncing && this.syncStarted) this.queued.push({ pane: event.pane, data: event.data });
        else if (this.live && !this.dropping) {
          this.emit(event.data);
          this.measure(event.data.length, event.age);
        }
        return;
      case 'reply':
        if (event.flags !== 1) return; // not a command of ours (the attach itself, hooks)
        this.onReply(event);
        return;
      case 'notification':
        if (event.name === 'session-changed' && !this.ready) {
          this.ready = true;
          this.log.debug(`tmux control ${this.name}: control mode ready`);
          this.requestSync();
        } else if (event.name === 'layout-change' && this.live) {
          // Another client made the window another size (window-size latest): tmux reflowed the
          // pane, so rebuild our copy from tmux's rather than let the two drift apart.
          const layout = layoutSize(event.args);
          if (!layout) return;
          if (layout.cols !== this.size.cols || layout.rows !== this.size.rows) this.claimWanted = true;
          if (layout.cols !== this.paneSize?.cols || layout.rows !== this.paneSize?.rows) this.requestSync();
        }
        return;
      case 'pause':
        if (event.pane !== this.paneId) return;
        if (this.flood) {
          // Ours, or tmux's own before our mark's reply: then the mark may count output that tmux
          // discarded, and the flood must end with a full sync.
          if (!this.flood.mark) this.flood.needsFull = true;
          return;
        }
        this.log.info(`tmux control ${this.name}: output paused by tmux (client behind); resyncing`);
        this.continueWanted = true;
        this.requestSync();
        return;
      case 'continue':
        return;
      case 'exit':
        this.exitReason = event.reason;
        this.log.info(`tmux control ${this.name}: %exit${event.reason ? ` (${event.reason})` : ''}`);
        if (!this.live) this.failStart(new ControlError(`tmux control mode ended${event.reason ? `: ${event.reason}` : ''}${this.preambleText()}`));
        this.channel.close();
        return;
      case 'passthrough':
        if (!this.ready) {
          if (this.preamble.reduce((n, b) => n + b.length, 0) < 4096) this.preamble.push(event.data);
        } else {
          this.log.debug(`tmux control ${this.name}: ${JSON.stringify(event.data.toString('utf8').slice(0, 200))}`);
        }
        return;
      case 'start':
        return;
    }
  }

  private onReply(event: Extract<ControlEvent, { type: 'reply' }>): void {
    const line = this.pending[0];
    if (!line) {
      this.log.debug(`tmux control ${this.name}: reply ${event.number} matches no command`);
      return;
    }
    const reply = { error: event.error, lines: event.lines };
    if (line.replies.length === 0) line.onStart?.();
    line.replies.push(reply);
    const parseError = event.error && line.replies.length === 1 && /^parse error/.test(event.lines[0] ?? '');
    if (parseError || line.replies.length >= line.commands) {
      this.pending.shift();
      line.resolve(line.replies);
    }
  }

  /** Sends one command line; resolves with one reply per command (or one for a parse error). */
  private send(commands: string[], onStart?: () => void): Promise<SyncReply[]> {
    const text = commands.join(' ; ');
    if (Buffer.byteLength(text) > MAX_LINE_BYTES) return Promise.reject(new ControlError(`command line of ${text.length} bytes is too long`));
    if (!this.lifecycle.isOpen) return Promise.reject(new ControlError('the control channel is closed'));
    return new Promise((resolve, reject) => {
      this.pending.push({ commands: commands.length, replies: [], resolve, reject, onStart });
      this.parser.expectEcho(text);
      this.channel.write(`${text}\n`);
    });
  }

  /** Counts streamed output; output that stays fast starts a flood (Floods above). */
  private measure(bytes: number, age: number | undefined): void {
    const now = performance.now();
    if (now - this.lastOutputAt >= NUDGE_SILENCE_MS) {
      this.runStartedAt = now;
      this.runBytes = 0;
    }
    this.lastOutputAt = now;
    this.runBytes += bytes;
    this.nudgeTimer ??= setTimeout(() => this.nudgeAfterRun(), NUDGE_SILENCE_MS);
    if (this.floodOptions.enterBytesPerSecond <= 0 || this.flood || this.syncing || this.paneId === undefined) return;
    this.outputRate.add(bytes, now);
    // Either trigger: output that stays fast, or output tmux says has waited long for us (we are
    // the bottleneck, whatever the rate we manage).
    const behind = age !== undefined && age >= this.floodOptions.behindMs;
    if (behind || this.outputRate.sustained(this.floodOptions.enterBytesPerSecond, now)) this.startFlood(this.paneId, now);
  }

  /** Sends NUDGE_COMMAND once a long run of output has gone silent (see Nudge above). */
  private nudgeAfterRun(): void {
    this.nudgeTimer = undefined;
    if (!this.lifecycle.isOpen) return;
    const silent = performance.now() - this.lastOutputAt;
    if (silent < NUDGE_SILENCE_MS) {
      this.nudgeTimer = setTimeout(() => this.nudgeAfterRun(), NUDGE_SILENCE_MS - silent);
      return;
    }
    const longRun = this.lastOutputAt - this.runStartedAt >= NUDGE_RUN_MS || this.runBytes >= NUDGE_RUN_BYTES;
    if (!longRun || this.flood || this.syncing) return;
    this.send([NUDGE_COMMAND]).catch(() => undefined);
  }

  private startFlood(pane: number, now: number): void {
    const flood: Flood = {
      mark: undefined, needsFull: false, moved: false, last: undefined, polling: false, timer: undefined,
      onAlternate: false, lastPaint: undefined, told: { ...this.size }, startedAt: now, calmPolls: 0,
      calmNeeded: (this.calmNeeded = calmPollsNeeded(this.calmNeeded, now - this.lastFloodEndedAt)),
    };
    this.flood = flood;
    this.log.info(`tmux control ${this.name}: output above ${this.floodOptions.enterBytesPerSecond / 1e6} MB/s; showing the screen at display rate until it calms`);
    // The terminal stops following the stream exactly where this reply arrives.
    this.send([stateCommand(`%${pane}`)], () => {
      this.dropping = true;
    }).then(
      (replies) => this.onFloodMark(flood, pane, replies),
      () => undefined,
    );
  }

  private onFloodMark(flood: Flood, pane: number, replies: SyncReply[]): void {
    if (this.flood !== flood || !this.lifecycle.isOpen) return;
    try {
      const state = parseStateReply(replies[0]);
      flood.mark = { historySize: state.historySize, historyLimit: state.historyLimit };
      flood.onAlternate = state.alternate;
      if (state.width !== this.size.cols || state.height !== this.size.rows) flood.needsFull = true;
    } catch (error) {
      this.log.warn(`tmux control ${this.name}: flood mark failed: ${(error as Error).message}`);
      this.endFlood(flood);
      return;
    }
    this.send([`refresh-client -A '%${pane}:pause'`]).then(
      (reply) => {
        if (reply.some((r) => r.error)) this.log.warn(`tmux control ${this.name}: pause failed: ${reply.map((r) => r.lines.join(' ')).join(' ').slice(0, 200)}`);
      },
      () => undefined,
    );
    this.pollFlood(flood);
  }

  /** One poll of a paused pane: its state and visible screen (at most one in flight). */
  private pollFlood(flood: Flood): void {
    if (this.flood !== flood || !flood.mark || flood.polling || !this.lifecycle.isOpen || this.paneId === undefined) return;
    if (flood.timer) clearTimeout(flood.timer);
    flood.timer = undefined;
    flood.polling = true;
    const target = `%${this.paneId}`;
    const pre = this.tellSize(flood);
    const sentAt = performance.now();
    this.send([...pre, stateCommand(target), screenCommand(target)]).then(
      (replies) => this.onFloodPoll(flood, sentAt, replies.slice(pre.length)),
      () => undefined,
    );
  }

  private onFloodPoll(flood: Flood, sentAt: number, replies: SyncReply[]): void {
    flood.polling = false;
    if (this.flood !== flood || !this.lifecycle.isOpen || !flood.mark) return;
    let sample: PollSample;
    try {
      if (replies.length !== 2) throw new ControlError(`tmux refused the poll: ${replies.map((r) => r.lines.join(' ')).join(' ').slice(0, 200)}`);
      const state = parseStateReply(replies[0]);
      if (replies[1].error) throw new ControlError(`capture-pane failed: ${replies[1].lines.join(' ').slice(0, 200)}`);
      const screen = replies[1].lines;
      sample = { at: performance.now(), historySize: state.historySize, historyLimit: state.historyLimit, cursorX: state.cursorX, cursorY: state.cursorY, alternate: state.alternate, screen };
      if (state.historySize !== flood.mark.historySize) flood.moved = true;
      // History that shrank was trimmed or cleared: which rows scrolled by is unknown.
      if (state.historySize < (flood.last?.historySize ?? flood.mark.historySize)) flood.needsFull = true;
      if (state.width !== this.size.cols || state.height !== this.size.rows) flood.needsFull = true;
      const paint = renderPaint(state, screen, this.size.rows, flood.onAlternate);
      if (paint !== flood.lastPaint) {
        flood.lastPaint = paint;
        flood.onAlternate = state.alternate;
        this.emit(Buffer.from(paint, 'utf8'));
      }
    } catch (error) {
      this.log.warn(`tmux control ${this.name}: flood poll failed: ${(error as Error).message}`);
      this.endFlood(flood);
      return;
    }
    const rate = flood.last ? estimatedRate(flood.last, sample) : Infinity;
    flood.last = sample;
    flood.calmPolls = rate < this.floodOptions.exitBytesPerSecond ? flood.calmPolls + 1 : 0;
    if (flood.calmPolls >= flood.calmNeeded) {
      this.resumeFlood(flood);
      return;
    }
    const wait = Math.max(0, sentAt + this.floodOptions.pollIntervalMs - performance.now());
    flood.timer = setTimeout(() => this.pollFlood(flood), wait);
  }

  /** Ends a flood: one line continues the pane and appends what scrolled by (or syncs fully). */
  private resumeFlood(flood: Flood): void {
    if (flood.timer) clearTimeout(flood.timer);
    flood.timer = undefined;
    this.flood = undefined;
    this.lastFloodEndedAt = performance.now();
    const seconds = ((performance.now() - flood.startedAt) / 1000).toFixed(1);
    this.log.info(`tmux control ${this.name}: output calm after ${seconds} s; resuming`);
    this.continueWanted = true;
    const mark = flood.mark;
    const scrolled = mark && flood.last ? flood.last.historySize - mark.historySize : 0;
    if (!mark || flood.needsFull || scrolled > this.options.historyLines || this.syncing) {
      this.requestSync();
      return;
    }
    this.startSync({ mark, rows: resumeRows(mark, flood.last?.historySize ?? mark.historySize, this.size.rows), moved: flood.moved });
  }

  /** A flood that cannot go on (a failed mark or poll): resume with a full sync. */
  private endFlood(flood: Flood): void {
    flood.needsFull = true;
    this.resumeFlood(flood);
  }

  /** The rows an append sync may write, or undefined when only a full sync is exact. */
  private appendableRows(append: AppendPlan, state: PaneState, captured: string[]): string[] | undefined {
    if (state.width !== this.size.cols || state.height !== this.size.rows) return undefined;
    const rows = rowsToAppend(append.mark, state, captured, append.rows, append.moved);
    if (!rows || rows.length > this.options.historyLines) return undefined;
    return tailWithin(rows, this.options.historyMaxBytes ?? 1024 * 1024).length === rows.length ? rows : undefined;
  }

  /** `refresh-client -C` when the terminal was resized during a flood (polls then paint at the new size). */
  private tellSize(flood: Flood): string[] {
    if (flood.told.cols === this.size.cols && flood.told.rows === this.size.rows) return [];
    flood.told = { ...this.size };
    return [this.sizeCommand()];
  }

  /** Our client's size for tmux, as W,H: the form every tmux with control-mode sizes accepts (3.3 also takes WxH). */
  private sizeCommand(): string {
    return `refresh-client -C ${clamp(this.size.cols)},${clamp(this.size.rows)}`;
  }

  private pumpInput(): void {
    while (this.lifecycle.isOpen && this.live && this.paneId !== undefined && this.inputInFlight < MAX_INPUT_IN_FLIGHT && this.input.length > 0) {
      // One line per round: bytes that did not fit go back to the front of the queue.
      const bytes = this.takeInput(INPUT_BYTES_PER_ROUND);
      const [line] = encodeInput(bytes, this.paneId);
      if (line.bytes < bytes.length) this.input.unshift(bytes.subarray(line.bytes));
      if (this.claimWanted) this.claimWindow();
      {
        this.inputInFlight++;
        this.send(line.commands).then(
          (replies) => {
            this.inputInFlight--;
            if (replies.some((reply) => reply.error)) this.log.warn(`tmux control ${this.name}: send-keys failed: ${replies.map((r) => r.lines.join(' ')).join(' ').slice(0, 200)}`);
            this.pumpInput();
          },
          () => {
            this.inputInFlight--;
          },
        );
      }
    }
  }

  /** Makes our client the window's latest, so the window takes our size (Geometry above). */
  private claimWindow(): void {
    this.claimWanted = false;
    this.log.debug(`tmux control ${this.name}: typing on a window of another size; claiming it`);
    this.send([claimCommand(this.name)]).then(
      (replies) => {
        if (replies.some((reply) => reply.error)) this.log.warn(`tmux control ${this.name}: select-window failed: ${replies.map((r) => r.lines.join(' ')).join(' ').slice(0, 200)}`);
      },
      () => undefined,
    );
  }

  private takeInput(max: number): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    while (size < max && this.input.length > 0) {
      const head = this.input[0];
      const take = Math.min(head.length, max - size);
      parts.push(head.subarray(0, take));
      size += take;
      if (take === head.length) this.input.shift();
      else this.input[0] = head.subarray(take);
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
  }

  private emit(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.early) {
      this.early.push(chunk);
      return;
    }
    for (const listener of this.outputListeners) listener(chunk);
  }

  private preambleText(): string {
    const text = Buffer.concat(this.preamble).toString('utf8').replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, '').replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
    return text ? `: ${text.slice(0, 300)}` : '';
  }

  private failStart(error: Error): void {
    if (this.startTimer) clearTimeout(this.startTimer);
    this.startTimer = undefined;
    if (this.live) return;
    this.startReject(error);
    if (this.lifecycle.isOpen) this.channel.close();
  }

  /** The channel closed (the lifecycle then tells the close listeners). */
  private onChannelClose(): void {
    if (!this.live) this.failStart(new ControlError(`the control channel closed before control mode started${this.preambleText()}`));
    if (this.startTimer) clearTimeout(this.startTimer);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    if (this.flood?.timer) clearTimeout(this.flood.timer);
    this.flood = undefined;
    if (this.nudgeTimer) clearTimeout(this.nudgeTimer);
    this.nudgeTimer = undefined;
    const pending = this.pending.splice(0);
    for (const line of pending) line.reject(new ControlError('the control channel closed'));
    this.input = [];
  }
}

/** The window size in a `%layout-change` notification's arguments (`@<window> <layout> …`). */
export function layoutSize(args: string): TerminalSize | undefined {
  const layout = /^@\d+ [0-9a-f]{4},(\d+)x(\d+),/.exec(args);
  return layout ? { cols: Number(layout[1]), rows: Number(layout[2]) } : undefined;
}

/**
 * The command that makes the running control client the latest client of the session's current
 * window (tmux sets `w->latest` in select-window, cmd-select-window.c, 3.2+), without switching.
 */
export function claimCommand(name: string): string {
  return `select-window -t =${name}:`;
}

/** The last lines whose UTF-8 size (with a line break each) fits in `maxBytes`. */
function tailWithin(lines: string[], maxBytes: number): string[] {
  let bytes = 0;
  let start = lines.length;
  while (start > 0) {
    bytes += Buffer.byteLength(lines[start - 1]) + 2;
    if (bytes > maxBytes) break;
    start--;
  }
  return start === 0 ? lines : lines.slice(start);
}

function clamp(value: number): number {
  return Math.max(2, Math.min(1000, Math.trunc(value)));
}
