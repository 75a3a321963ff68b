import * as vscode from 'vscode';
import { HostSessionRow, describeHostSession } from './hostSessionText';

export type { HostSessionRow } from './hostSessionText';

export interface HostsViewSource {
  hosts(): string[];
  /** One batched command per host; rejects with a readable message when the host cannot be asked. */
  sessionsOn(host: string): Promise<HostSessionRow[]>;
}

type Node = { kind: 'host'; host: string } | { kind: 'session'; host: string; row: HostSessionRow } | { kind: 'message'; text: string };

/** "Hosts": ssh config and recent hosts; expanding one asks it for every Tether session it runs. */
export class HostsView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;

  constructor(
    private readonly source: HostsViewSource,
    private readonly now: () => number = Date.now,
  ) {}

  private readonly lastRows = new Map<string, HostSessionRow[]>();
  private relabelUntil = 0;

  refresh(): void {
    this.relabelUntil = 0;
    this.changeEmitter.fire(undefined);
  }

  /** Re-renders rows from what the hosts last said (no new command), so relative times stay true. */
  refreshLabels(): void {
    this.relabelUntil = Date.now() + 2000;
    this.changeEmitter.fire(undefined);
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!node) return this.source.hosts().map((host) => ({ kind: 'host', host }));
    if (node.kind !== 'host') return [];
    const cached = Date.now() < this.relabelUntil ? this.lastRows.get(node.host) : undefined;
    if (cached) return cached.length === 0 ? [{ kind: 'message', text: 'No Tether sessions on this host' }] : cached.map((row) => ({ kind: 'session', host: node.host, row }));
    try {
      const rows = await this.source.sessionsOn(node.host);
      this.lastRows.set(node.host, rows);
      if (rows.length === 0) return [{ kind: 'message', text: 'No Tether sessions on this host' }];
      return rows.map((row) => ({ kind: 'session', host: node.host, row }));
    } catch (error) {
      return [{ kind: 'message', text: (error as Error).message }];
    }
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'host') {
      const item = new vscode.TreeItem(node.host, vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `host:${node.host}`;
      item.iconPath = new vscode.ThemeIcon('server');
      item.contextValue = 'tether.host';
      return item;
    }
    if (node.kind === 'message') {
      const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
      item.iconPath = new vscode.ThemeIcon('info');
      return item;
    }
    const { row } = node;
    const text = describeHostSession(row, node.host, this.now());
    const item = new vscode.TreeItem(text.label, vscode.TreeItemCollapsibleState.None);
    item.id = `host-session:${node.host}:${row.id}`;
    item.description = text.description;
    item.tooltip = text.tooltip;
    item.iconPath = new vscode.ThemeIcon(text.orphan ? 'warning' : 'terminal');
    item.contextValue = row.usedBy ? 'tether.hostSession' : 'tether.orphanSession';
    return item;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }
}
