import * as vscode from 'vscode';
import { DeviceGroup, LiveSession, ago } from '../sync/liveSessions';

type Node = { kind: 'device'; group: DeviceGroup } | { kind: 'session'; session: LiveSession };

/**
 * "Live on other devices": sessions that the user's other devices have open, grouped by device,
 * including devices that are switched off. Refreshed on every sync event; never polled.
 */
export class LiveSessionsView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;
  private groups: DeviceGroup[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  update(groups: DeviceGroup[]): void {
    this.groups = groups;
    this.changeEmitter.fire(undefined);
  }

  sessions(): LiveSession[] {
    return this.groups.flatMap((group) => group.sessions);
  }

  getChildren(node?: Node): Node[] {
    if (!node) return this.groups.map((group) => ({ kind: 'device', group }));
    if (node.kind === 'device') return node.group.sessions.map((session) => ({ kind: 'session', session }));
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'device') {
      const { group } = node;
      const item = new vscode.TreeItem(group.deviceName, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `device:${group.slotId}`;
      item.description = group.online ? 'online' : group.lastSeen ? `last seen ${ago(group.lastSeen, this.now())}` : 'offline';
      item.iconPath = new vscode.ThemeIcon(group.online ? 'vm-running' : 'vm-outline');
      item.contextValue = 'tether.device';
      return item;
    }
    const { session } = node;
    const item = new vscode.TreeItem(session.title ?? session.hostLabel, vscode.TreeItemCollapsibleState.None);
    item.id = `session:${session.slotId}:${session.id}`;
    item.description = `${session.cwd} · ${session.multiplexer} · started ${ago(session.startedAt, this.now())}`;
    const tooltip = new vscode.MarkdownString(undefined, false);
    tooltip.appendText(`${session.hostLabel} (${session.user}@${session.hostName}:${session.port})\n`);
    tooltip.appendText(`Directory: ${session.cwd}\nMultiplexer: ${session.multiplexer}\nDevice: ${session.deviceName}\n`);
    tooltip.appendText(`Started: ${new Date(session.startedAt).toLocaleString()}\nSession: tether_${session.id}`);
    item.tooltip = tooltip;
    item.iconPath = new vscode.ThemeIcon('terminal');
    item.contextValue = 'tether.liveSession';
    item.command = { command: 'tether.joinSession', title: 'Join', arguments: [session] };
    return item;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }
}
