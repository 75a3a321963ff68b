import * as os from 'node:os';
import { stripControls } from './displayText';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Logger } from './logger';
import type { MultiplexerKind, MultiplexerPreference } from './multiplexer';
import { PersistentSession, hostCapabilities, scriptsFor } from './persistentSession';
import { newSessionId, shortId } from './sessionId';
import { ConnectionPool } from './sshConnection';
import { ResolvedHost, SshConfigError, hostForListing, listConfiguredHosts, resolveHost } from './sshConfig';
import { SNAPSHOT_KEY, TabRecord, decodeSnapshot, encodeSnapshot, parseDirectories } from './tabSnapshot';
import { TetherPty } from './tetherPty';

/** What closing a tab by hand does; cross-device sessions replace the default (kill if the host allows). */
export interface ClosePolicy {
  /** The ✕ on a tab: kill only if this is the last user, else detach. */
  close(session: PersistentSession, record: TabRecord): Promise<unknown>;
  /** The deliberate kill; true when the host confirmed it. */
  kill(session: PersistentSession, record: TabRecord): Promise<boolean>;
  /** A probe found the session gone from its host. */
  gone?(record: TabRecord): void;
}

const hostOnlyPolicy: ClosePolicy = {
  close: (session) => session.kill(),
  kill: async (session) => (await session.kill()).killed,
};

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

/** Owns the open Tether tabs: opening, restoring, closing, and the snapshot that restore reads. */
export class TabManager implements vscode.Disposable {
  private readonly tabs = new Map<vscode.Terminal, Tab>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly changeEmitter = new vscode.EventEmitter<void>();
  readonly onDidChangeTabs = this.changeEmitter.event;
  private shuttingDown = false;
  private closePolicy: ClosePolicy = hostOnlyPolicy;
  private cwdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly pool: ConnectionPool,
    private readonly log: Logger,
  ) {
    this.disposables.push(
      vscode.window.onDidCloseTerminal((terminal) => this.onTerminalClosed(terminal)),
      vscode.window.onDidChangeActiveTerminal(() => void this.refreshDirectories()),
      this.changeEmitter,
    );
    this.cwdTimer = setInterval(() => void this.refreshDirectories(), CWD_REFRESH_MS);
  }

  setClosePolicy(policy: ClosePolicy): void {
    this.closePolicy = policy;
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

  configuredHosts(): string[] {
    try {
      return listConfiguredHosts(sshConfigOptions());
    } catch (error) {
      this.log.warn(`ssh config: ${(error as Error).message}`);
      return [];
    }
  }

  resolve(label: string): ResolvedHost {
    return resolveHost(label, sshConfigOptions());
  }

  /** ssh config hosts and the recently used ones, for the Hosts view. */
  knownHosts(): string[] {
    const recent = this.context.globalState.get<string[]>('tether.recentHosts', []).filter((label) => typeof label === 'string');
    return [...new Set([...this.configuredHosts(), ...recent])];
  }

  /** How to reach a session a manifest describes, even on a device without that Host entry. */
  hostFor(entry: Pick<TabRecord, 'hostLabel' | 'user' | 'hostName' | 'port'>): ResolvedHost {
    return this.hostForRecord(entry);
  }

  /** Opens a new persistent tab on a host. */
  open(hostLabel: string, cwd?: string): vscode.Terminal | undefined {
    const host = this.resolveOrReport(hostLabel);
    if (!host) return undefined;
    return this.createTab(host, { id: newSessionId(), mode: 'create', cwd });
  }

  /** Attaches a tab to an existing session (restore, join); never creates one. */
  attach(record: Omit<TabRecord, 'name' | 'location'> & Partial<Pick<TabRecord, 'name' | 'location'>>, replayLines: number): vscode.Terminal | undefined {
    if (this.hasSession(record.id)) {
      const tab = [...this.tabs.values()].find((candidate) => candidate.record.id === record.id);
      tab?.terminal.show();
      return tab?.terminal;
    }
    const host = this.hostForRecord(record);
    return this.createTab(host, { id: record.id, mode: 'attach', multiplexer: record.multiplexer, cwd: record.cwd, startedAt: record.startedAt, name: record.name, location: record.location, replayLines });
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

  /** Closes a tab and leaves its session running on the host. */
  detach(terminal: vscode.Terminal): boolean {
    const tab = this.tabs.get(terminal);
    if (!tab) return false;
    tab.detaching = true;
    tab.session.detach();
    terminal.dispose();
    return true;
  }

  /** Kills a tab's session on purpose; still believed only on the host's sentinel. */
  async kill(terminal: vscode.Terminal): Promise<boolean> {
    const tab = this.tabs.get(terminal);
    if (!tab) return false;
    const killed = await this.closePolicy.kill(tab.session, tab.record);
    if (killed) {
      tab.detaching = true;
      terminal.dispose();
    }
    return killed;
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

  /** Recreates the tabs of the last snapshot, in order, each attaching by its original ID. */
  restore(replayLines: number): number {
    const decoded = decodeSnapshot(this.context.workspaceState.get(SNAPSHOT_KEY));
    if (decoded.corrupt) this.log.warn('snapshot: stored tab snapshot was unreadable; starting with no tabs');
    if (decoded.dropped > 0) this.log.warn(`snapshot: ${decoded.dropped} unreadable tab record(s) left out`);
    for (const record of decoded.tabs) this.attach(record, replayLines);
    this.log.info(`restore: ${decoded.tabs.length} tab(s) from the snapshot`);
    return decoded.tabs.length;
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
      return this.resolve(hostLabel);
    } catch (error) {
      const message = SshConfigError.is(error) ? error.message : `cannot use host ${hostLabel}: ${(error as Error).message}`;
      this.log.error(message);
      void vscode.window.showErrorMessage(`Tether: ${message}`);
      return undefined;
    }
  }

  private hostForRecord(record: Pick<TabRecord, 'hostLabel' | 'user' | 'hostName' | 'port'>): ResolvedHost {
    let base: ResolvedHost;
    try {
      base = this.resolve(record.hostLabel);
    } catch {
      // A label this device cannot resolve (another device's alias): the record carries enough.
      base = this.resolve(`${record.user}@${record.hostName.includes(':') ? `[${record.hostName}]` : record.hostName}:${record.port}`);
    }
    const host = hostForListing(base, record);
    if (base.proxyCommand !== undefined && host.proxyCommand === undefined) {
      this.log.warn(`${record.hostLabel}: the listed session is on ${record.user}@${record.hostName}:${record.port}, not where your ssh config's ProxyCommand for it leads; connecting without the ProxyCommand`);
    }
    return host;
  }

  private createTab(host: ResolvedHost, spec: SessionSpec): vscode.Terminal {
    const { pty, name, adopt } = this.prepare(host, spec);
    const location = spec.location === 'editor' || (!spec.location && setting<string>('terminalLocation', 'panel') === 'editor')
      ? vscode.TerminalLocation.Editor
      : vscode.TerminalLocation.Panel;
    const terminal = vscode.window.createTerminal({ name, pty, isTransient: true, iconPath: new vscode.ThemeIcon('remote'), location });
    adopt(terminal);
    terminal.show(spec.mode === 'attach');
    return terminal;
  }

  private prepare(host: ResolvedHost, spec: SessionSpec): { pty: TetherPty; name: string; adopt: (terminal: vscode.Terminal) => void } {
    const name = spec.name ?? `${host.label} · ${shortId(spec.id)}`;
    const session = new PersistentSession({
      id: spec.id,
      host,
      pool: this.pool,
      log: this.log,
      mode: spec.mode,
      preference: setting<MultiplexerPreference>('multiplexer', 'auto'),
      multiplexer: spec.multiplexer,
      cwd: spec.cwd,
      historyLimit: setting<number>('historyLimit', 50_000),
      replayLines: spec.replayLines ?? 0,
      tmuxMode: setting<'control' | 'attach'>('tmux.mode', 'control'),
      controlHistoryLines: setting<number>('scrollback.replayLines', 2000),
    });
    const record: TabRecord = {
      id: spec.id,
      hostLabel: host.label,
      user: host.user,
      hostName: host.hostName,
      port: host.port,
      multiplexer: spec.multiplexer ?? 'tmux',
      name,
      location: spec.location ?? (setting<string>('terminalLocation', 'panel') === 'editor' ? 'editor' : 'panel'),
      cwd: spec.cwd,
      startedAt: spec.startedAt ?? Date.now(),
    };
    let tab: Tab | undefined;
    const pty = new TetherPty(session, () => {
      /* onDidCloseTerminal carries the reason; the decision is made there */
    });
    session.on('multiplexer', (kind) => {
      record.multiplexer = kind;
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
      if (tab.record.multiplexer === 'none') tab.session.dispose();
      else await this.closePolicy.close(tab.session, tab.record);
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
            for (const tab of tabs) {
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
  cwd?: string;
  startedAt?: number;
  name?: string;
  location?: 'panel' | 'editor';
  replayLines?: number;
}

export function setting<T>(key: string, fallback: T): T {
  return vscode.workspace.getConfiguration('tether').get<T>(key, fallback);
}

export function sshConfigOptions(): { configPath: string; homeDir: string; localUser: string } {
  const homeDir = os.homedir();
  let localUser = process.env.USER ?? 'root';
  try {
    localUser = os.userInfo().username;
  } catch {
    /* keep $USER */
  }
  return { configPath: path.join(homeDir, '.ssh', 'config'), homeDir, localUser };
}
