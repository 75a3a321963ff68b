import { randomBytes } from 'node:crypto';
import { stripControls } from '../common/displayText';
import { EventEmitter } from 'node:events';
import type { Logger } from '../common/logger';
import {
  FORCE_KILL_CLIENTS, HostCapabilities, KillOutcome, MultiplexerKind, MultiplexerPreference, MultiplexerScripts, SessionStatus,
  Version, chooseMultiplexer, formatVersion, parseKillOutput, parseTmuxVersion,
} from '../multiplexer/multiplexer';
import { TmuxScripts } from '../multiplexer/tmuxCommands';
import { OutputBatcher } from './outputBatcher';
import { DEFAULT_RECONNECT_POLICY, ReconnectPolicy, ReconnectPolicyOptions } from './reconnectPolicy';
import { AttachDriver, SessionDriver, TerminalSize } from './sessionDriver';
import { assertSessionId, sessionName } from '../common/sessionId';
import { AGENT_DIR, agentLinkScript } from '../ssh/agentForwarding';
import { AttachStatus, attachChannelScript, newAttachMarker, readAttachPreamble, writeGoAhead } from '../multiplexer/attachStatus';
import type { PseudoTtyOptions } from 'ssh2';
import { ConnectError, ConnectionPool, SshConnection, isChannelRefusal } from '../ssh/sshConnection';
import type { ResolvedHost } from '../ssh/sshConfig';
import { boundReplay } from './scrollback';
import { RemoteCommandError } from '../ssh/remoteExec';
import { ControlError, controlAttachScript, controlModeSupported, controlStartsNeedSerialising, startControlDriver } from './controlDriver';
import { ReasonError } from '../common/reasonError';
import { forgetHostCapabilities, hostCapabilities, knownHostCapabilities, scriptsFor } from '../multiplexer/hostCapabilities';

export type SessionState = 'connecting' | 'attached' | 'reconnecting' | 'waiting-for-user' | 'ended';

export interface PersistentSessionOptions {
  id: string;
  host: ResolvedHost;
  pool: ConnectionPool;
  log: Logger;
  /** create: a new session; attach: an existing one (restore, join). Attach never creates. */
  mode: 'create' | 'attach';
  /** For create: what the user wants. For attach: ignored in favour of `multiplexer`. */
  preference?: MultiplexerPreference;
  /** For attach: the multiplexer the session lives in. */
  multiplexer?: MultiplexerKind;
  /** For attach (restore): the tmux version the tab's snapshot recorded ("3.3a"). The first attach
   * builds its script from it instead of detecting first, so a restore is one exec. */
  tmuxVersion?: string;
  cwd?: string;
  historyLimit?: number;
  /** Lines of scrollback to replay before the first attach (restore and join); 0 for none. */
  replayLines?: number;
  replayMaxBytes?: number;
  reconnect?: ReconnectPolicyOptions;
  probeTimeoutMs?: number;
  /** On tmux 3.2+, `control` drives the session through tmux control mode (VS Code keeps its own
   * scrollback, find and selection); `attach` lets tmux draw. Default `attach`. */
  tmuxMode?: 'control' | 'attach';
  /** History lines each control-mode state sync writes into the terminal's scrollback. */
  controlHistoryLines?: number;
  /** This device's name, stored on the host as session metadata and as the mark of our client. */
  deviceName?: string;
  /** For create: the session's title, stored on the host. */
  title?: string;
  /** A line the tab prints before it connects (e.g. how a listed host was resolved). */
  notice?: string;
}

export interface SessionEvents {
  data: [text: string];
  state: [state: SessionState];
  exit: [code: number];
  multiplexer: [kind: MultiplexerKind];
  /** A probe confirmed that the session no longer exists on the host. */
  gone: [];
}

const DIM = '\x1b[2m';
const RESET = '\x1b[0m';


interface Opened {
  /** Absent for a plain shell, which has no status line. */
  status?: AttachStatus;
  driver?: SessionDriver;
  connection?: SshConnection;
}


/**
 * One tab's session on a host: creates or attaches, streams output, and survives connection drops
 * by re-attaching. The Pseudoterminal adapter and the integration tests both drive this class, so
 * the tests exercise the same code path as the editor.
 */
export class PersistentSession extends EventEmitter<SessionEvents> {
  readonly id: string;
  private kind: MultiplexerKind | undefined;
  private scripts: MultiplexerScripts | undefined;
  /** The tmux version this tab's snapshot recorded, until the host is detected or disagrees. */
  private recordedTmux: Version | undefined;
  private driver: SessionDriver | undefined;
  private size: TerminalSize = { cols: 80, rows: 24 };
  private currentState: SessionState = 'connecting';
  private readonly policy: ReconnectPolicy;
  private readonly batcher: OutputBatcher;
  private ending = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private userInputWaiter: (() => void) | undefined;
  /** Set once the tab has attached: from then on every (re)connect is attach-only. */
  private established = false;
  private replayPending: boolean;
  /** Set when this tab talks to tmux through control mode (decided once per tab). */
  private control: boolean | undefined;
  private killing = false;
  /** Keys typed before the client is attached, replayed once it is (bounded). */
  private readonly typedWhileAttaching: string[] = [];
  /** Attach clients in a row that ended within two seconds (see onChannelClosed). */
  private quickCloses = 0;

  constructor(private readonly options: PersistentSessionOptions) {
    super();
    this.id = assertSessionId(options.id);
    this.kind = options.mode === 'attach' ? options.multiplexer : undefined;
    this.recordedTmux = options.mode === 'attach' && options.tmuxVersion !== undefined ? parseTmuxVersion(`tmux ${options.tmuxVersion}`) : undefined;
    this.replayPending = options.mode === 'attach' && (options.replayLines ?? 0) > 0;
    this.policy = new ReconnectPolicy(options.reconnect ?? DEFAULT_RECONNECT_POLICY);
    this.batcher = new OutputBatcher({
      write: (text) => this.emit('data', text),
      pause: () => this.driver?.pause(),
      resume: () => this.driver?.resume(),
    });
  }

  get state(): SessionState {
    return this.currentState;
  }

  get multiplexer(): MultiplexerKind | undefined {
    return this.kind;
  }

  /** The tmux version this tab's scripts are built for ("3.3a"), for the tab snapshot. */
  get tmuxVersion(): string | undefined {
    return this.scripts instanceof TmuxScripts ? formatVersion(this.scripts.version) : undefined;
  }

  get host(): ResolvedHost {
    return this.options.host;
  }

  get name(): string {
    return sessionName(this.id);
  }

  /** Starts the session; failures end the tab with a message rather than rejecting. */
  async start(size: TerminalSize): Promise<void> {
    this.size = usableSize(size) ?? this.size;
    if (this.options.notice) this.status(this.options.notice);
    // Restored and joined tabs show their own progress; the replay clears it away.
    if (this.options.mode === 'attach') this.status(`attaching to ${this.name} on ${this.options.host.label}…`);
    try {
      const connection = await this.connect();
      if (this.options.mode === 'create') await this.choose(connection);
      await this.attachVia(connection, this.options.mode === 'create');
    } catch (error) {
      this.handleFailure(error, 'start');
    }
  }

  write(data: string): void {
    if (this.currentState === 'waiting-for-user' && /[\r\n]/.test(data)) {
      this.userInputWaiter?.();
      return;
    }
    if (this.currentState === 'attached') this.driver?.write(data);
    else if (this.typedWhileAttaching.reduce((sum, text) => sum + text.length, 0) < 64 * 1024) this.typedWhileAttaching.push(data);
  }

  resize(size: TerminalSize): void {
    // A hidden or zero-sized tab must never shrink a window that other devices share.
    const usable = usableSize(size);
    if (!usable) return;
    this.size = usable;
    this.driver?.resize(usable);
  }

  /** Closes the tab's channel and leaves the session running on the host. */
  detach(): void {
    this.finish(undefined);
  }

  /**
   * Kills the session if no more than our own client uses it, confirmed by a sentinel the host
   * echoes. Returns what happened; the tab's channel is closed either way. `force` (the user
   * confirmed "Kill anyway") kills with other clients attached; the sentinel still decides.
   */
  async kill(options: { force?: boolean } = {}): Promise<KillOutcome> {
    // Our own kill ends our client too; that is not news for the tab to report.
    this.killing = true;
    const sentinel = `tether-killed-${randomBytes(12).toString('hex')}`;
    try {
      if (this.kind === 'none') {
        this.finish(undefined);
        return { killed: true };
      }
      const connection = await this.options.pool.acquire(this.options.host);
      const scripts = this.scripts ?? scriptsFor(this.kind ?? 'tmux', await this.capabilitiesVia(connection));
      let maxClients = 0;
      if (options.force) {
        maxClients = FORCE_KILL_CLIENTS;
      } else if (scripts.kind === 'tmux' && this.driver?.isOpen) {
        maxClients = 1; // Our own client is still attached; it leaves right after the kill.
      } else if (this.driver?.isOpen) {
        // screen cannot count clients: detach our display first, then "Attached" means someone else.
        this.finish(undefined);
        await delay(300);
      }
      const result = await connection.runScript(scripts.kill(this.id, maxClients, sentinel, this.locksHost(scripts)), this.options.probeTimeoutMs);
      // While our own client is attached, the host lists it too: leave one of our device out.
      const ownAttached = scripts.kind === 'tmux' && this.driver?.isOpen === true;
      const outcome = parseKillOutput(result.output, sentinel, ownAttached ? this.options.deviceName : undefined);
      const named = !outcome.killed && outcome.attachedDevices ? `; attached: ${outcome.attachedDevices.join(', ')}` : '';
      this.options.log.info(`session ${this.name}: kill ${outcome.killed ? 'confirmed by sentinel' : `not done (${outcome.reason}${named})`}`);
      return outcome;
    } catch (error) {
      this.options.log.warn(`session ${this.name}: kill failed: ${(error as Error).message}`);
      return { killed: false, reason: 'unconfirmed' };
    } finally {
      this.finish(undefined);
    }
  }

  dispose(): void {
    this.finish(undefined);
  }

  /**
   * Records on the host that this device detached on purpose (and when), so every device's Hosts
   * view can say "detached from laptop 2 h ago". Best effort: a host that cannot be reached keeps
   * the session anyway. Call before detach(), while the connection is still at hand.
   */
  async markDetached(): Promise<boolean> {
    if (!this.options.deviceName || this.kind === 'none') return false;
    try {
      const connection = await this.options.pool.acquire(this.options.host);
      const scripts = this.scripts ?? scriptsFor(this.kind ?? 'tmux', await this.capabilitiesVia(connection));
      const result = await connection.runScript(scripts.detachMark(this.id, this.options.deviceName), this.options.probeTimeoutMs);
      return /^marked$/m.test(result.output);
    } catch (error) {
      this.options.log.info(`session ${this.name}: could not record the detach on the host: ${(error as Error).message}`);
      return false;
    }
  }

  /** Stores the session's title on the host (undefined removes it). True once the host confirmed. */
  async setTitle(title: string | undefined): Promise<boolean> {
    if (this.kind === 'none') return false;
    const connection = await this.options.pool.acquire(this.options.host);
    const scripts = this.scripts ?? scriptsFor(this.kind ?? 'tmux', await this.capabilitiesVia(connection));
    const result = await connection.runScript(scripts.setTitle(this.id, title), this.options.probeTimeoutMs);
    return /^titled$/m.test(result.output);
  }

  private async connect(): Promise<SshConnection> {
    this.setState(this.currentState === 'reconnecting' ? 'reconnecting' : 'connecting');
    const connection = await this.options.pool.acquire(this.options.host);

    return connection;
  }

  /** Picks the multiplexer of a new tab from what the host has (cached per host). */
  private async choose(connection: SshConnection): Promise<void> {
    const capabilities = await hostCapabilities(connection, this.options.probeTimeoutMs);
    const choice = chooseMultiplexer(this.options.preference ?? 'auto', capabilities);
    this.kind = choice.kind;
    this.scripts = choice.kind === 'none' ? undefined : scriptsFor(choice.kind, capabilities);
    this.emit('multiplexer', choice.kind);
    this.options.log.info(`session ${this.name} on ${this.options.host.label}: ${choice.kind}${choice.reason ? ` (${choice.reason})` : ''}`);
    if (choice.kind === 'none') this.status(`${choice.reason ?? 'no multiplexer'}: this terminal is a plain shell and will not survive a disconnect`);
  }

  /**
   * One exec channel: (create,) check the session, (replay,) attach, and start the driver on it
   * (attachStatus.ts). `create` only for a new tab's first attach: a reconnect never creates.
   */
  private async attachVia(via: SshConnection, create: boolean, retried = false): Promise<void> {
    if (this.ending) return;
    let opened: Opened;
    if (this.kind === 'none') {
      const pty = this.pty();
      opened = await this.onSomeConnection(via, async (connection) => ({ driver: new AttachDriver(await connection.openTerminal(undefined, pty)) }));
    } else {
      const capabilities = await this.capabilitiesVia(via);
      this.scripts ??= scriptsFor(this.kind ?? 'tmux', capabilities);
      this.control ??= this.scripts.kind === 'tmux' && this.options.tmuxMode === 'control' && controlModeSupported(capabilities.tmux);
      opened = await this.onSomeConnection(via, (connection) => this.openAttachChannel(connection, create));
    }
    const status = opened.status;
    if (status && status.state !== 'attached') return this.notAttached(via, status, create, retried);
    if (opened.driver) this.adopt(opened.driver, opened.connection ?? via);
  }

  /** A status other than attached: the session ended, or the host no longer has what we detected. */
  private async notAttached(via: SshConnection, status: Exclude<AttachStatus, { state: 'attached' }>, create: boolean, retried: boolean): Promise<void> {
    if (status.state === 'gone' || status.state === 'exited') return this.endGone(status.state === 'gone' ? { state: 'gone' } : { state: 'exited', exitCode: status.exitCode });
    // The cached capabilities no longer hold, or a create failed: detect again (issue 16).
    forgetHostCapabilities(via);
    this.recordedTmux = undefined;
    if (status.state === 'create-failed') {
      throw new SessionError('create-failed', `could not create ${this.kind} session ${this.name} on ${this.options.host.label}: ${status.detail || 'no output'}`);
    }
    const capabilities = await hostCapabilities(via, this.options.probeTimeoutMs);
    const present = this.kind === 'screen' ? capabilities.screen !== undefined : capabilities.tmux !== undefined;
    this.options.log.info(`session ${this.name}: the host answered unsupported; detected again (${this.kind} ${present ? 'present' : 'missing'})`);
    if (create && !retried) {
      await this.choose(via);
      return this.attachVia(via, true, true);
    }
    // An existing session needs its multiplexer: without it, the session is gone.
    if (!present) return this.endGone({ state: 'gone' });
    if (retried) throw new RemoteCommandError('no-marker', `${this.options.host.label} keeps answering unsupported for ${this.name}`);
    this.scripts = scriptsFor(this.scripts?.kind ?? 'tmux', capabilities);
    return this.attachVia(via, create, true);
  }

  /**
   * What this tab's scripts are built from: the host's capabilities once known (or being
   * detected); before that, for a restored tab, the tmux version its snapshot recorded (no detect:
   * a restore is one exec; a host that disagrees answers `unsupported` and is detected then).
   */
  private capabilitiesVia(connection: SshConnection): Promise<Pick<HostCapabilities, 'tmux'>> {
    const known = knownHostCapabilities(connection);
    if (known) return known;
    if (this.recordedTmux && this.kind === 'tmux') return Promise.resolve({ tmux: this.recordedTmux });
    return hostCapabilities(connection, this.options.probeTimeoutMs);
  }

  /**
   * Whether this tab's tmux work that fires control notifications (create, kill, its control
   * client starting) takes the host's lock: control mode on tmux 3.2 to 3.6, which crash when a
   * notification meets a control client still identifying (controlStartsNeedSerialising). The
   * scripts take the lock on the host (tmuxCommands.ts hostLockLines), so it holds across devices.
   */
  private locksHost(scripts: MultiplexerScripts): boolean {
    if (!(scripts instanceof TmuxScripts) || this.options.tmuxMode !== 'control') return false;
    return controlModeSupported(scripts.version) && controlStartsNeedSerialising(scripts.version);
  }

  /** Runs the one-exec attach script on a pty channel and starts the tab's driver on it. */
  private async openAttachChannel(connection: SshConnection, create: boolean): Promise<Opened> {
    const scripts = this.scripts!;
    const marker = newAttachMarker();
    const replay = this.replayPending && !this.control;
    // A tmux attach client flushes pty output that sshd has not read yet (attachStatus.ts).
    const goAhead = scripts.kind === 'tmux' && !this.control;
    const script = attachChannelScript({
      marker,
      id: this.id,
      binary: scripts.kind,
      status: scripts.status(this.id),
      attach: this.control ? controlAttachScript(this.id, '-CC', this.options.deviceName) : scripts.attach(this.id, this.options.deviceName),
      create: create
        ? scripts.create({
            id: this.id,
            cwd: this.options.cwd,
            cols: this.size.cols,
            rows: this.size.rows,
            historyLimit: this.options.historyLimit ?? 50_000,
            device: this.options.deviceName,
            title: this.options.title,
          })
        : undefined,
      agentLink: connection.forwardsAgent ? agentLinkScript(this.id) : undefined,
      capture: replay ? scripts.capture(this.id, this.options.replayLines ?? 0) : undefined,
      goAhead,
      hostLock: this.control === true && this.locksHost(scripts),
    });
    const channel = await connection.openTerminal(script, this.pty());
    const preamble = await readAttachPreamble(channel, marker, this.options.probeTimeoutMs ?? 15_000, connection);
    if (preamble.noise.trim()) this.options.log.debug(`session ${this.name}: before the attach status: ${JSON.stringify(preamble.noise.slice(0, 300))}`);
    const status = preamble.status;
    if (status.state !== 'attached') {
      channel.close();
      return { status };
    }
    if (goAhead) writeGoAhead(channel);
    if (status.agent && status.agent !== 'linked') {
      this.options.log.warn(`session ${this.name}: agent forwarding: ${status.agent === 'no-agent' ? 'the host did not get a forwarded agent (AllowAgentForwarding no?)' : `could not link ${AGENT_DIR}/${this.id}.sock`}`);
    }
    if (preamble.replay !== undefined) {
      this.replayPending = false;
      const text = boundReplay(preamble.replay, this.options.replayLines ?? 0, this.options.replayMaxBytes ?? 512 * 1024);
      // Replayed history, then a cleared screen that the multiplexer redraws on attach: the
      // visible rows are neither duplicated nor missing.
      if (text) this.emit('data', text + '\x1b[0m\r\n\x1b[H\x1b[2J');
    }
    if (!this.control) return { status, driver: new AttachDriver(channel, preamble.rest), connection };
    try {
      const driver = await startControlDriver(channel, this.id, this.size, {
        historyLines: this.options.controlHistoryLines ?? 2000,
        historyMaxBytes: this.options.replayMaxBytes,
        log: this.options.log,
        // A control client that has not synced by then falls back to attach rather than keep
        // a restoring tab blank (seen now and then when 20 tabs attach at once).
        openTimeoutMs: 6000,
        device: this.options.deviceName,
      }, preamble.rest);
      return { status, driver, connection };
    } catch (error) {
      // A session that ended in between is the next status check's business; anything else falls back to attach.
      if (!ControlError.is(error) || /can't find session|no server running/i.test(error.message)) throw error;
      this.options.log.warn(`session ${this.name}: control mode failed (${error.message}); using tmux attach`);
      this.control = false;
      return this.openAttachChannel(connection, false);
    }
  }

  /** Runs `open` on the connection; one at the host's session limit hands over to another. */
  private async onSomeConnection(connection: SshConnection, open: (connection: SshConnection) => Promise<Opened>): Promise<Opened> {
    try {
      return { connection, ...(await open(connection)) };
    } catch (error) {
      if (!isChannelRefusal(error)) throw error;
      this.options.log.info(`session ${this.name}: ${this.options.host.label} refused another channel; opening another connection`);
      const other = await this.options.pool.acquire(this.options.host);
      return { connection: other, ...(await open(other)) };
    }
  }

  private pty(): PseudoTtyOptions {
    return { term: 'xterm-256color', cols: this.size.cols, rows: this.size.rows, width: 0, height: 0, modes: {} };
  }

  /** Makes a started driver the tab's own. */
  private adopt(driver: SessionDriver, connection: SshConnection): void {
    if (this.ending) {
      driver.detach();
      return;
    }
    this.driver = driver;
    this.batcher.reset();
    const openedAt = Date.now();
    let drawn!: () => void;
    const firstOutput = new Promise<void>((resolve) => (drawn = resolve));
    driver.onOutput((chunk) => {
      drawn();
      this.batcher.push(chunk);
    });
    driver.onClose((info) => {
      drawn();
      if (this.driver !== driver) return;
      this.batcher.flush();
      this.driver = undefined;
      // A client that keeps ending at once (yet its session lives) must not spin.
      this.quickCloses = Date.now() - openedAt < 2000 ? this.quickCloses + 1 : 0;
      void this.onChannelClosed(connection, info.exitCode);
    });
    // An attach client is on the host's client list (and its pty in raw mode) only once it draws;
    // until then a kill's client count would miss it and typed control keys would be cooked.
    // Control mode resolves only after its first state sync, so it is attached already.
    const ready = driver instanceof AttachDriver ? Promise.race([firstOutput, delay(5000)]) : Promise.resolve();
    void ready.then(() => {
      if (this.ending || this.driver !== driver) return;
      this.policy.reset();
      this.established = true;
      this.setState('attached');
      const typed = this.typedWhileAttaching.splice(0);
      if (typed.length > 0) driver.write(typed.join(''));
    });
  }

  /**
   * The channel ended. Without a connection: reconnect. With one: one exec re-attaches, or its
   * status line says the shell exited (the tab closes with its status) or the session is gone.
   */
  private async onChannelClosed(connection: SshConnection, exitCode: number | null): Promise<void> {
    if (this.ending || this.killing) return;
    if (!connection.isOpen) return this.startReconnect('connection lost');
    if (this.kind === 'none') {
      // A plain shell that exited reports its status; a dropped connection reports none.
      if (exitCode !== null) return this.finish(exitCode);
      return this.startReconnect('connection lost');
    }
    // Keys typed from now on wait for the next attach (and arrive once).
    this.setState('reconnecting');
    if (this.quickCloses >= 3) await delay(Math.min(5000, 250 * 2 ** Math.min(this.quickCloses - 3, 5)));
    if (this.ending) return;
    try {
      await this.attachVia(connection, false);
    } catch (error) {
      if (this.ending) return;
      if (ConnectError.is(error) && error.permanent) return this.handleFailure(error, 'reconnect');
      this.options.log.info(`session ${this.name}: re-attach failed (${(error as Error).message}); reconnecting`);
      this.batcher.reset();
      this.status(`connection lost to ${this.options.host.label}; reconnecting…`);
      this.scheduleReconnect();
    }
  }

  private startReconnect(why: string): void {
    if (this.ending || this.currentState === 'reconnecting') return;
    this.batcher.reset();
    if (this.kind === 'none') {
      this.setState('waiting-for-user');
      this.status(`${why} to ${this.options.host.label}. This terminal was not persistent, so its shell is gone. Press Enter to start a fresh shell, or close the tab.`);
      this.userInputWaiter = () => {
        this.userInputWaiter = undefined;
        this.setState('reconnecting');
        this.scheduleReconnect();
      };
      return;
    }
    this.setState('reconnecting');
    this.status(`${why} to ${this.options.host.label}; reconnecting…`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.ending) return;
    const wait = this.policy.nextDelay();
    this.options.log.info(`session ${this.name}: reconnect attempt ${this.policy.attempts} in ${wait} ms`);
    this.reconnectTimer = setTimeout(() => void this.reconnectOnce(), wait);
  }

  private async reconnectOnce(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.ending) return;
    try {
      const connection = await this.connect();
      // Attach-only: a session that is gone is reported, never recreated (docs/architecture.md, Sessions).
      await this.attachVia(connection, false);
      if (this.currentState === 'attached') this.options.log.info(`session ${this.name}: re-attached`);
    } catch (error) {
      if (ConnectError.is(error) && error.permanent) return this.handleFailure(error, 'reconnect');
      this.options.log.info(`session ${this.name}: reconnect failed: ${(error as Error).message}`);
      this.scheduleReconnect();
    }
  }

  private endGone(status: Exclude<SessionStatus, { state: 'alive' | 'unknown' }>): void {
    if (status.state === 'exited') {
      this.options.log.info(`session ${this.name}: shell exited with ${status.exitCode}`);
      return this.finish(status.exitCode);
    }
    this.status(`session ${this.name} no longer exists on host ${this.options.host.label}: the session ended on the host (host rebooted or the session was killed)`);
    this.options.log.warn(`session ${this.name}: gone from ${this.options.host.label}`);
    this.emit('gone');
    this.finish(1);
  }

  private handleFailure(error: unknown, during: string): void {
    if (this.ending) return;
    const message = error instanceof Error ? error.message : String(error);
    const existing = this.options.mode === 'attach' || this.established;
    const transient = (ConnectError.is(error) && !error.permanent) || RemoteCommandError.is(error) || ControlError.is(error);
    if (transient && during !== 'probe' && existing) {
      // An unreachable host keeps a restored tab waiting, not closed (its snapshot entry stays).
      if (this.currentState !== 'reconnecting') {
        this.setState('reconnecting');
        this.status(`${message}; retrying…`);
      }
      this.scheduleReconnect();
      return;
    }
    if (during === 'probe') {
      this.options.log.info(`session ${this.name}: probe failed (${message}); reconnecting`);
      this.startReconnect('connection lost');
      return;
    }
    this.options.log.error(`session ${this.name}: ${message}`);
    this.status(message);
    this.finish(1);
  }

  private status(text: string): void {
    this.batcher.flush();
    this.emit('data', `\r\n${DIM}[tether] ${stripControls(text)}${RESET}\r\n`);
  }

  private setState(state: SessionState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.emit('state', state);
  }

  /** Ends the tab: closes our channel (never the session) and reports the exit code, if given. */
  private finish(exitCode: number | undefined): void {
    if (this.ending) return;
    this.ending = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.userInputWaiter = undefined;
    const driver = this.driver;
    this.driver = undefined;
    driver?.detach();
    this.batcher.dispose();
    this.setState('ended');
    if (exitCode !== undefined) this.emit('exit', exitCode);
  }
}

export class SessionError extends ReasonError<'create-failed'> {
  override readonly name = 'SessionError';
}

function usableSize(size: TerminalSize | undefined): TerminalSize | undefined {
  if (!size || !Number.isFinite(size.cols) || !Number.isFinite(size.rows)) return undefined;
  if (size.cols < 2 || size.rows < 2) return undefined;
  return { cols: Math.min(1000, Math.trunc(size.cols)), rows: Math.min(1000, Math.trunc(size.rows)) };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
