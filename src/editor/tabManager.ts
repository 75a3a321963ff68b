import { stripControls } from '../common/displayText';
import * as vscode from 'vscode';
import type { Logger } from '../common/logger';
import type { MultiplexerKind } from '../multiplexer/multiplexer';
import { PersistentSession } from '../session/persistentSession';
import { hostCapabilities, scriptsFor } from '../multiplexer/hostCapabilities';
import { newSessionId } from '../common/sessionId';
import { ConnectionPool } from '../ssh/sshConnection';
import { ResolvedHost, SshConfigError } from '../ssh/sshConfig';
import { SNAPSHOT_KEY, TabRecord, decodeSnapshot, encodeSnapshot, parseDirectories, parseTitles, tabName } from '../session/tabSnapshot';
import { META_LIMITS, cleanMetaText } from '../multiplexer/sessionMetadata';
import { TetherPty } from './tetherPty';
import { Commands, ContextKeys } from './contributions';
import { deviceName, executeCommand, readSetting, setContext } from './contributionApi';
import type { SshHosts } from './sshHosts';

/** What closing a tab by hand did: killed, or only detached (and why, for the user). */
export type CloseOutcome = { readonly action: 'killed' } | { readonly action: 'detached'; readonly why: string };

/** What closing a tab does (the cross-device rule, crossDeviceController.ts); given to the TabManager when it is built. */
export interface ClosePolicy {
  /** The ✕ on a tab: kill only if this is the last user, else detach. */
  close(session: PersistentSession, record: TabRecord): Promise<CloseOutcome>;
  /** The deliberate kill; `killed` only when the host confirmed it. `force`: the user confirmed "Kill anyway". */
  kill(session: PersistentSession, record: TabRecord, options?: { force?: boolean }): Promise<KillResult>;
  /** A probe found the session gone from its host. */
  gone?(record: TabRecord): void;
}

/** What a deliberate kill did: `refused` when the host saw other clients attached (named in `devices` when known). */
export interface KillResult {
  readonly killed: boolean;
  readonly why?: string;
  readonly refused?: boolean;
  readonly devices?: readonly string[];
}

interface Tab {
  record: TabRecord;
  session: PersistentSession;
  pty: TetherPty;
  terminal: vscode.Terminal;
  /** Set when the extension itself closes the tab (detach), so the close is not a user's close. */
  detaching?: boolean;
  ended?: boolean;
}

const CWD_REFRESH_MS = 30_000;
/** How long after a restore a switch to a pre-existing local terminal is undone (once). */
const RESTORE_SETTLE_MS = 10_000;

/** Owns the open Tether tabs: opening, restoring, closing, and the snapshot that restore reads. */
export class TabManager implements vscode.Disposable {
  private readonly tabs = new Map<vscode.Terminal, Tab>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly changeEmitter = new vscode.EventEmitter<void>();
  readonly onDidChangeTabs = this.changeEmitter.event;
  private readonly detachedEmitter = new vscode.EventEmitter<{ record: TabRecord; why: string }>();
  /** A ✕ only detached (the close policy said why): the cross-device controller offers "Kill anyway…". */
  readonly onDidDetachOnClose = this.detachedEmitter.event;
  private shuttingDown = false;
  private cwdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly pool: ConnectionPool,
    private readonly hosts: SshHosts,
    private readonly closePolicy: ClosePolicy,
    private readonly log: Logger,
  ) {
    this.disposables.push(
      vscode.window.onDidCloseTerminal((terminal) => this.onTerminalClosed(terminal)),
      vscode.window.onDidChangeActiveTerminal((terminal) => {
        // The tab's context menu offers Rename Session only on Tether tabs.
        void setContext(ContextKeys.ActiveTerminalIsTether, !!terminal && this.tabs.has(terminal));
        void this.refreshDirectories();
      }),
      this.changeEmitter,
      this.detachedEmitter,
    );
    this.cwdTimer = setInterval(() => void this.refreshDirectories(), CWD_REFRESH_MS);
  }

  /** The persistent sessions open in this window, in tab order. */
  records(): TabRecord[] {
    const order = vscode.window.terminals;
    return [...this.tabs.values()]
      .filter((tab) => !tab.ended && tab.record.multiplexer !== 'none')
      .sort((a, b) => order.indexOf(a.terminal) - order.indexOf(b.terminal))
      .map((tab) => tab.record);
  }

  hasSession(id: string): boolean {
    return [...this.tabs.values()].some((tab) => tab.record.id === id && !tab.ended);
  }

  /** Opens a new persistent tab on a host. */
  open(hostLabel: string, cwd?: string): vscode.Terminal | undefined {
    const host = this.resolveOrReport(hostLabel);
    if (!host) return undefined;
    return this.createTab(host, { id: newSessionId(), mode: 'create', cwd });
  }

  /** Attaches a tab to an existing session (restore, join); never creates one. */
  attach(
    record: Omit<TabRecord, 'name' | 'location' | 'title'> & Partial<Pick<TabRecord, 'name' | 'location' | 'title'>>,
    replayLines: number,
    options: { show?: boolean } = {},
  ): vscode.Terminal | undefined {
    if (this.hasSession(record.id)) {
      const tab = [...this.tabs.values()].find((candidate) => candidate.record.id === record.id);
      tab?.terminal.show();
      return tab?.terminal;
    }
    const { host, note } = this.hosts.resolveListed(record);
    const title = cleanMetaText(record.title, META_LIMITS.title);
    return this.createTab(host, { id: record.id, mode: 'attach', multiplexer: record.multiplexer, tmuxVersion: record.tmuxVersion, cwd: record.cwd, startedAt: record.startedAt, name: title ?? record.name, location: record.location, replayLines, notice: note, title }, options.show ?? true);
  }

  /** The session for a profile request: VS Code creates the terminal itself. */
  profile(hostLabel: string): vscode.TerminalProfile | undefined {
    const host = this.resolveOrReport(hostLabel);
    if (!host) return undefined;
    const { pty, name, adopt } = this.prepare(host, { id: newSessionId(), mode: 'create' });
    const profile = new vscode.TerminalProfile({ name, pty, isTransient: true, iconPath: new vscode.ThemeIcon('remote') });
    const listener = vscode.window.onDidOpenTerminal((terminal) => {
      if ((terminal.creationOptions as vscode.ExtensionTerminalOptions).pty === pty) {
        listener.dispose();
        adopt(terminal);
      }
    });
    this.disposables.push(listener);
    return profile;
  }

  /** Closes a tab and leaves its session running on the host, which records who detached it and
   * when (every device's Hosts view then says "detached from laptop 2 h ago"). */
  detach(terminal: vscode.Terminal): boolean {
    const tab = this.tabs.get(terminal);
    if (!tab) return false;
    tab.detaching = true;
    void tab.session.markDetached().then((marked) => {
      if (marked) this.log.info(`detach: ${tab.session.name} recorded as detached from ${deviceName()} on ${tab.record.hostLabel}`);
    });
    tab.session.detach();
    terminal.dispose();
    return true;
  }

  /**
   * Renames a tab's session: the title goes to the host (every device reads it there), into the
   * snapshot (restore) and the listing (joins, Live view). An empty title goes back to `host · id`.
   * Resolves to whether the host stored it; the tab is renamed here either way.
   */
  async rename(terminal: vscode.Terminal, title: string): Promise<boolean> {
    const tab = this.tabs.get(terminal);
    if (!tab) return false;
    this.applyTitle(tab, cleanMetaText(title, META_LIMITS.title));
    try {
      return await tab.session.setTitle(tab.record.title);
    } catch (error) {
      this.log.warn(`rename: ${tab.session.name}: the host was not updated: ${(error as Error).message}`);
      return false;
    }
  }

  private applyTitle(tab: Tab, title: string | undefined): boolean {
    if (tab.record.title === title) return false;
    if (title === undefined) delete tab.record.title;
    else tab.record.title = title;
    tab.record.name = tabName(tab.record);
    tab.pty.rename(tab.record.name);
    this.changed();
    return true;
  }

  /** Kills a tab's session on purpose; still believed only on the host's sentinel. */
  async kill(terminal: vscode.Terminal, options: { force?: boolean } = {}): Promise<KillResult> {
    const tab = this.tabs.get(terminal);
    if (!tab) return { killed: false, why: 'it is not a Tether terminal' };
    const result = await this.closePolicy.kill(tab.session, tab.record, options);
    if (result.killed) {
      tab.detaching = true;
      terminal.dispose();
    }
    return result;
  }

  /** The open tab of a session, if this window has one. */
  terminalOf(id: string): vscode.Terminal | undefined {
    for (const [terminal, tab] of this.tabs) if (tab.record.id === id && !tab.ended) return terminal;
    return undefined;
  }

  tabFor(terminal: vscode.Terminal | undefined): TabRecord | undefined {
    return terminal ? this.tabs.get(terminal)?.record : undefined;
  }

  /** Ends the tab of a session that another device killed. */
  endRemotelyKilled(id: string, byDevice: string): void {
    for (const tab of this.tabs.values()) {
      if (tab.record.id !== id || tab.ended) continue;
      tab.pty.session.emit('data', `\r\n\x1b[2m[tether] session ${tab.session.name} was ended on ${stripControls(byDevice)}\x1b[0m\r\n`);
      tab.detaching = true;
      tab.session.detach();
      tab.terminal.dispose();
    }
  }

  /**
   * Recreates the tabs of the last snapshot, in order, each attaching by its original ID. The panel
   * then shows the first restored panel tab without taking focus, and stays on it even when the
   * workbench had already opened its default local terminal (it does when the panel was open at
   * startup, before Tether activates).
   */
  restore(replayLines: number): number {
    const decoded = decodeSnapshot(this.context.workspaceState.get(SNAPSHOT_KEY));
    if (decoded.corrupt) this.log.warn('snapshot: stored tab snapshot was unreadable; starting with no tabs');
    if (decoded.dropped > 0) this.log.warn(`snapshot: ${decoded.dropped} unreadable tab record(s) left out`);
    const before = new Set(vscode.window.terminals);
    const restored: vscode.Terminal[] = [];
    for (const record of decoded.tabs) {
      const terminal = this.attach(record, replayLines, { show: false });
      if (terminal) restored.push(terminal);
    }
    this.log.info(`restore: ${decoded.tabs.length} tab(s) from the snapshot`);
    const editorTabs = restored.filter((terminal) => this.tabs.get(terminal)?.record.location === 'editor');
    for (const terminal of editorTabs) terminal.show(true);
    const lead = restored.find((terminal) => !editorTabs.includes(terminal));
    if (lead) this.keepRestoredTabActive(lead, before);
    return decoded.tabs.length;
  }

  /**
   * Shows `lead` in the panel (preserveFocus) and, for a short while, moves the panel back to it
   * once if a terminal that existed before the restore (the workbench's default local shell, or
   * its own restored terminals) becomes active. A terminal opened after the restore is the user's
   * choice and is left alone.
   */
  private keepRestoredTabActive(lead: vscode.Terminal, before: ReadonlySet<vscode.Terminal>): void {
    lead.show(true);
    const settled = (): void => {
      clearTimeout(timer);
      listener.dispose();
    };
    const listener = vscode.window.onDidChangeActiveTerminal((terminal) => {
      if (!terminal || !before.has(terminal) || !this.tabs.has(lead)) return;
      this.log.info('restore: the workbench made a local terminal active; showing the restored Tether tab again');
      settled();
      lead.show(true);
    });
    const timer = setTimeout(settled, RESTORE_SETTLE_MS);
    this.disposables.push(listener);
  }

  /** Quitting VS Code kills nothing and must not empty the snapshot. */
  markShuttingDown(): void {
    this.shuttingDown = true;
  }

  dispose(): void {
    this.shuttingDown = true;
    if (this.cwdTimer) clearInterval(this.cwdTimer);
    for (const tab of this.tabs.values()) tab.session.dispose();
    for (const disposable of this.disposables) disposable.dispose();
  }

  private resolveOrReport(hostLabel: string): ResolvedHost | undefined {
    try {
      return this.hosts.resolve(hostLabel);
    } catch (error) {
      const message = SshConfigError.is(error) ? error.message : `cannot use host ${hostLabel}: ${(error as Error).message}`;
      this.log.error(message);
      void vscode.window.showErrorMessage(`Tether: ${message}. Fix the host's entry in ~/.ssh/config, or type user@host[:port] instead.`, 'Open SSH Config').then((choice) => {
        if (choice) void executeCommand(Commands.OpenSshConfig);
      });
      return undefined;
    }
  }

  private createTab(host: ResolvedHost, spec: SessionSpec, show = true): vscode.Terminal {
    const { pty, name, adopt } = this.prepare(host, spec);
    const location = spec.location === 'editor' || (!spec.location && readSetting('tether.terminalLocation') === 'editor')
      ? vscode.TerminalLocation.Editor
      : vscode.TerminalLocation.Panel;
    const terminal = vscode.window.createTerminal({ name, pty, isTransient: true, iconPath: new vscode.ThemeIcon('remote'), location });
    adopt(terminal);
    if (show) terminal.show(spec.mode === 'attach');
    return terminal;
  }

  private prepare(host: ResolvedHost, spec: SessionSpec): { pty: TetherPty; name: string; adopt: (terminal: vscode.Terminal) => void } {
    const name = spec.name ?? tabName({ hostLabel: host.label, id: spec.id, title: spec.title });
    const session = new PersistentSession({
      id: spec.id,
      host,
      pool: this.pool,
      log: this.log,
      mode: spec.mode,
      preference: readSetting('tether.multiplexer'),
      multiplexer: spec.multiplexer,
      tmuxVersion: spec.tmuxVersion,
      cwd: spec.cwd,
      historyLimit: readSetting('tether.historyLimit'),
      replayLines: spec.replayLines ?? 0,
      tmuxMode: readSetting('tether.tmux.mode'),
      controlHistoryLines: readSetting('tether.scrollback.replayLines'),
      deviceName: deviceName(),
      notice: spec.notice,
    });
    const record: TabRecord = {
      id: spec.id,
      hostLabel: host.label,
      user: host.user,
      hostName: host.hostName,
      port: host.port,
      multiplexer: spec.multiplexer ?? 'tmux',
      name,
      location: spec.location ?? (readSetting('tether.terminalLocation') === 'editor' ? 'editor' : 'panel'),
      cwd: spec.cwd,
      startedAt: spec.startedAt ?? Date.now(),
      ...(spec.title === undefined ? {} : { title: spec.title }),
      ...(spec.tmuxVersion === undefined ? {} : { tmuxVersion: spec.tmuxVersion }),
    };
    let tab: Tab | undefined;
    const pty = new TetherPty(session, () => {
      /* onDidCloseTerminal carries the reason; the decision is made there */
    });
    session.on('multiplexer', (kind) => {
      record.multiplexer = kind;
      this.changed();
    });
    // The snapshot keeps the tmux version, so the next restore builds its script without a detect.
    session.on('state', (state) => {
      if (state !== 'attached' || session.tmuxVersion === undefined || session.tmuxVersion === record.tmuxVersion) return;
      record.tmuxVersion = session.tmuxVersion;
      this.changed();
    });
    session.on('exit', () => {
      if (tab) tab.ended = true;
      this.changed();
    });
    session.on('gone', () => this.closePolicy.gone?.(record));
    const adopt = (terminal: vscode.Terminal): void => {
      tab = { record, session, pty, terminal };
      this.tabs.set(terminal, tab);
      if (vscode.window.activeTerminal === terminal) void setContext(ContextKeys.ActiveTerminalIsTether, true);
      this.changed();
    };
    return { pty, name, adopt };
  }

  private onTerminalClosed(terminal: vscode.Terminal): void {
    const tab = this.tabs.get(terminal);
    if (!tab) return;
    const reason = terminal.exitStatus?.reason;
    if (this.shuttingDown || reason === vscode.TerminalExitReason.Shutdown) {
      // The window is going away: keep the session and the snapshot as they are.
      tab.session.dispose();
      return;
    }
    this.tabs.delete(terminal);
    tab.pty.dispose();
    if (tab.ended || tab.detaching || reason !== vscode.TerminalExitReason.User) {
      tab.session.dispose();
      this.changed();
      return;
    }
    this.changed();
    void this.closeByUser(tab);
  }

  private async closeByUser(tab: Tab): Promise<void> {
    try {
      if (tab.record.multiplexer === 'none') {
        tab.session.dispose();
        return;
      }
      const outcome = await this.closePolicy.close(tab.session, tab.record);
      if (outcome.action === 'detached') this.detachedEmitter.fire({ record: tab.record, why: outcome.why });
    } catch (error) {
      this.log.warn(`close: ${tab.session.name}: ${(error as Error).message}; detached`);
      tab.session.detach();
    }
  }

  private changed(): void {
    if (this.shuttingDown) return;
    void this.context.workspaceState.update(SNAPSHOT_KEY, encodeSnapshot(this.records()));
    this.changeEmitter.fire();
  }

  /** Asks each host once for the directories of all our sessions there (one command per host). */
  private async refreshDirectories(): Promise<void> {
    const byHost = new Map<string, Tab[]>();
    for (const tab of this.tabs.values()) {
      if (tab.ended || tab.record.multiplexer === 'none' || tab.session.state !== 'attached') continue;
      const key = ConnectionPool.keyOf(tab.session.host);
      byHost.set(key, [...(byHost.get(key) ?? []), tab]);
    }
    let changed = false;
    await Promise.all(
      [...byHost.values()].map(async (tabs) => {
        const connection = this.pool.peek(tabs[0].session.host);
        if (!connection) return;
        try {
          const capabilities = await hostCapabilities(connection);
          for (const kind of new Set(tabs.map((tab) => tab.record.multiplexer as Exclude<MultiplexerKind, 'none'>))) {
            const scripts = scriptsFor(kind, capabilities);
            const result = await connection.runScript(scripts.currentDirectories(tabs.map((tab) => tab.record.id)), 10_000);
            const directories = parseDirectories(result.output);
            const titles = parseTitles(result.output);
            for (const tab of tabs) {
              // A rename on another device reaches this tab through the host. A host without a title
              // (an older session, or a rename that could not reach it) leaves ours as it is.
              const title = titles.get(tab.record.id);
              if (title !== undefined) this.applyTitle(tab, title);
              const cwd = directories.get(tab.record.id);
              if (cwd && cwd !== tab.record.cwd) {
                tab.record.cwd = cwd;
                changed = true;
              }
            }
          }
        } catch (error) {
          this.log.debug(`cwd refresh failed: ${(error as Error).message}`);
        }
      }),
    );
    if (changed) this.changed();
  }
}

interface SessionSpec {
  id: string;
  mode: 'create' | 'attach';
  multiplexer?: MultiplexerKind;
  tmuxVersion?: string;
  cwd?: string;
  startedAt?: number;
  name?: string;
  location?: 'panel' | 'editor';
  replayLines?: number;
  /** Printed in the tab before it connects. */
  notice?: string;
  title?: string;
}
