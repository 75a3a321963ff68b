import * as vscode from 'vscode';
import { type HostFailure, HostSessionRow, describeHostFailure, describeHostSession, hostFailure } from './hostSessionText';

import { ViewItems } from './contributions';

export type { HostSessionRow } from './hostSessionText';

export interface HostsViewSource {
  hosts(): string[];
  /** One batched command per host; rejects with a readable message when the host cannot be asked. */
  sessionsOn(host: string): Promise<HostSessionRow[]>;
}

type Node =
  | { kind: 'host'; host: string }
  | { kind: 'session'; host: string; row: HostSessionRow }
  | { kind: 'message'; text: string; tooltip?: string; failed?: boolean };

/** "Hosts": ssh config and recent hosts; expanding one asks it for every Tether session it runs. */
export class HostsView implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changeEmitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changeEmitter.event;

  constructor(
    private readonly source: HostsViewSource,
    private readonly now: () => number = Date.now,
  ) {}

  private readonly lastRows = new Map<string, HostSessionRow[]>();
  /** Why a host could not be listed the last time it was asked (shown on its row). */
  private readonly failures = new Map<string, HostFailure>();
  /** One node per host, so a host's row can be refreshed alone. */
  private readonly hostNodes = new Map<string, Node & { kind: 'host' }>();
  /** Hosts whose row is being re-rendered after a change of listing state, until when (a collapsed
   * row is not asked again; its next expansion then asks the host). */
  private readonly rerendering = new Map<string, number>();
  private relabelUntil = 0;

  refresh(): void {
    this.relabelUntil = 0;
    this.changeEmitter.fire(undefined);
  }

  /** The reason a host could not be listed, if it could not the last time. */
  failureOf(host: string): HostFailure | undefined {
    return this.failures.get(host);
  }

  /** Records a host's listing outcome; re-renders its row only when it went from listed to failed or back. */
  private setFailure(host: string, failure: HostFailure | undefined): void {
    const had = this.failures.has(host);
    if (failure === undefined) this.failures.delete(host);
    else this.failures.set(host, failure);
    // Only on a change of state: a re-rendered expanded row asks the host again, and a message
    // that differs each time (a timeout's milliseconds) would otherwise loop.
    const node = this.hostNodes.get(host);
    if (had !== (failure !== undefined) && node) {
      // The re-render asks for the host's children again: answer from this outcome, not a new connection.
      this.rerendering.set(host, Date.now() + 2000);
      this.changeEmitter.fire(node);
    }
  }

  private failureRow(failure: HostFailure): Node {
    return { kind: 'message', text: failure.message, tooltip: describeHostFailure(failure).tooltip, failed: true };
  }

  private hostNode(host: string): Node & { kind: 'host' } {
    let node = this.hostNodes.get(host);
    if (!node) {
      node = { kind: 'host', host };
      this.hostNodes.set(host, node);
    }
    return node;
  }

  /** Re-renders rows from what the hosts last said (no new command), so relative times stay true. */
  refreshLabels(): void {
    this.relabelUntil = Date.now() + 2000;
    this.changeEmitter.fire(undefined);
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!node) return this.source.hosts().map((host) => this.hostNode(host));
    if (node.kind !== 'host') return [];
    const rerendering = (this.rerendering.get(node.host) ?? 0) > Date.now();
    this.rerendering.delete(node.host);
    const failure = this.failures.get(node.host);
    if (rerendering && failure !== undefined) return [this.failureRow(failure)];
    const cached = Date.now() < this.relabelUntil || rerendering ? this.lastRows.get(node.host) : undefined;
    if (cached) return cached.length === 0 ? [{ kind: 'message', text: 'No Tether sessions on this host' }] : cached.map((row) => ({ kind: 'session', host: node.host, row }));
    try {
      const rows = await this.source.sessionsOn(node.host);
      this.lastRows.set(node.host, rows);
      this.setFailure(node.host, undefined);
      if (rows.length === 0) return [{ kind: 'message', text: 'No Tether sessions on this host' }];
      return rows.map((row) => ({ kind: 'session', host: node.host, row }));
    } catch (error) {
      const failure = hostFailure(error);
      this.setFailure(node.host, failure);
      return [this.failureRow(failure)];
    }
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'host') {
      const item = new vscode.TreeItem(node.host, vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `host:${node.host}`;
      item.iconPath = new vscode.ThemeIcon('server');
      item.contextValue = ViewItems.Host;
      const failure = this.failures.get(node.host);
      if (failure !== undefined) {
        const text = describeHostFailure(failure);
        item.description = text.description;
        item.tooltip = text.tooltip;
        item.iconPath = new vscode.ThemeIcon('warning');
      }
      return item;
    }
    if (node.kind === 'message') {
      const item = new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
      item.iconPath = new vscode.ThemeIcon(node.failed ? 'error' : 'info');
      if (node.tooltip) item.tooltip = node.tooltip;
      return item;
    }
    const { row } = node;
    const text = describeHostSession(row, node.host, this.now());
    const item = new vscode.TreeItem(text.label, vscode.TreeItemCollapsibleState.None);
    item.id = `host-session:${node.host}:${row.id}`;
    item.description = text.description;
    item.tooltip = text.tooltip;
    item.iconPath = new vscode.ThemeIcon(text.orphan ? 'warning' : 'terminal');
    item.contextValue = row.usedBy ? ViewItems.HostSession : ViewItems.OrphanSession;
    return item;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }
}
