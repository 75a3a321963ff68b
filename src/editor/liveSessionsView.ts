import * as vscode from 'vscode';
import { sessionName } from '../common/sessionId';
import { DeviceGroup, LiveSession, ago, duration } from '../sync/liveSessions';
import { Commands, ViewItems } from './contributions';
import { asCommand } from './contributionApi';

/** Sessions of this device's other windows and workspaces ("Other windows on this device"). */
export interface LocalWindowGroup {
  readonly label: string;
  /** A window has it open now (else: a workspace that will restore it when opened). */
  readonly open: boolean;
  readonly sessions: readonly LiveSession[];
}

type Node =
  | { kind: 'device'; group: DeviceGroup }
  | { kind: 'thisDevice'; windows: readonly LocalWindowGroup[] }
  | { kind: 'session'; session: LiveSession; local?: LocalWindowGroup };

/**
 * "Live on other devices": sessions that the user's other devices have open, grouped by device,
 * including devices that are switched off (greyed once stale), and this device's other windows
 * in a group of their own. Refreshed on every sync event, and its relative times once a minute.
 */
export class LiveSessionsView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;
  private groups: DeviceGroup[] = [];
  private windows: LocalWindowGroup[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  update(groups: DeviceGroup[], windows: LocalWindowGroup[] = []): void {
    this.groups = groups;
    this.windows = windows.filter((window) => window.sessions.length > 0);
    this.changeEmitter.fire(undefined);
  }

  /** Re-renders the rows so "5 min ago" stays true. */
  refreshLabels(): void {
    this.changeEmitter.fire(undefined);
  }

  /** Sessions on other devices (joinable, and what the stale-listing probe checks). */
  sessions(): LiveSession[] {
    return this.groups.flatMap((group) => group.sessions);
  }

  /** Sessions of this device's other windows and workspaces. */
  localSessions(): LiveSession[] {
    return this.windows.flatMap((window) => window.sessions);
  }

  devices(): DeviceGroup[] {
    return this.groups;
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      const roots: Node[] = this.groups.map((group) => ({ kind: 'device', group }));
      if (this.windows.length > 0) roots.push({ kind: 'thisDevice', windows: this.windows });
      return roots;
    }
    if (node.kind === 'device') return node.group.sessions.map((session) => ({ kind: 'session', session }));
    if (node.kind === 'thisDevice') return node.windows.flatMap((local) => local.sessions.map((session): Node => ({ kind: 'session', session, local })));
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'device') {
      const { group } = node;
      const item = new vscode.TreeItem(group.deviceName, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `device:${group.slotId}`;
      const now = this.now();
      item.description = group.stale && group.lastSeen
        ? `not seen for ${duration(now - group.lastSeen)}`
        : group.online ? 'online' : group.lastSeen ? `last seen ${ago(group.lastSeen, now)}` : 'offline';
      item.iconPath = group.stale
        ? new vscode.ThemeIcon('vm-outline', new vscode.ThemeColor('disabledForeground'))
        : new vscode.ThemeIcon(group.online ? 'vm-running' : 'vm-outline');
      if (group.stale) item.tooltip = `${group.deviceName} has not been seen for a long time (tether.sync.staleDeviceDays): closing a session no longer waits for it. Its sessions stay joinable; "Forget Device…" removes its listing.`;
      item.contextValue = group.stale ? ViewItems.StaleDevice : ViewItems.Device;
      return item;
    }
    if (node.kind === 'thisDevice') {
      const item = new vscode.TreeItem('Other windows on this device', vscode.TreeItemCollapsibleState.Expanded);
      item.id = 'this-device';
      item.iconPath = new vscode.ThemeIcon('window');
      item.tooltip = 'Sessions that this device’s other windows have open, or that a workspace will restore when it opens. They count as this device: closing them elsewhere never waits for these.';
      item.contextValue = ViewItems.ThisDevice;
      return item;
    }
    const { session, local } = node;
    const item = new vscode.TreeItem(session.title ?? session.hostLabel, vscode.TreeItemCollapsibleState.None);
    item.id = `session:${local ? 'local' : session.slotId}:${session.id}`;
    const where = local ? `${local.label}${local.open ? '' : ' (not open)'} · ` : '';
    item.description = `${where}${session.cwd} · ${session.multiplexer} · started ${ago(session.startedAt, this.now())}`;
    const tooltip = new vscode.MarkdownString(undefined, false);
    tooltip.appendText(`${session.hostLabel} (${session.user}@${session.hostName}:${session.port})\n`);
    tooltip.appendText(`Directory: ${session.cwd}\nMultiplexer: ${session.multiplexer}\n${local ? `Window: ${local.label}` : `Device: ${session.deviceName}`}\n`);
    tooltip.appendText(`Started: ${new Date(session.startedAt).toLocaleString()}\nSession: ${sessionName(session.id)}`);
    item.tooltip = tooltip;
    item.iconPath = new vscode.ThemeIcon('terminal');
    item.contextValue = local ? ViewItems.LocalSession : ViewItems.LiveSession;
    item.command = asCommand({ command: Commands.JoinSession, title: 'Join', arguments: [session] });
    return item;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }
}
