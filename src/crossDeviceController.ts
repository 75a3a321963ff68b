import * as vscode from 'vscode';
import type { SessionEntry } from './sync/blob';
import { CrossDeviceSessions } from './sync/crossDevice';
import { LiveSession, usedBy } from './sync/liveSessions';
import type { TetherSync } from './sync/syncController';
import { hostCapabilities, PersistentSession } from './terminal/persistentSession';
import { inventoryScript, parseInventory, provenGone } from './terminal/hostInventory';
import type { ConnectionPool } from './terminal/sshConnection';
import type { TabRecord } from './terminal/tabSnapshot';
import { TabManager, setting } from './terminal/tabManager';
import { HostSessionRow, HostsView } from './views/hostsView';
import { LiveSessionsView } from './views/liveSessionsView';

/** tether.sync.staleDeviceDays as milliseconds; 0 or less turns staleness off. */
export function staleAfterMs(): number | undefined {
  const days = setting<number>('sync.staleDeviceDays', 30);
  return typeof days === 'number' && days > 0 ? days * 24 * 60 * 60 * 1000 : undefined;
}

/** The manifest entry another device needs to find and join a tab's session. */
export function entryOf(record: TabRecord): SessionEntry {
  return {
    id: record.id,
    hostLabel: record.hostLabel,
    user: record.user,
    hostName: record.hostName,
    port: record.port,
    multiplexer: record.multiplexer === 'screen' ? 'screen' : 'tmux',
    cwd: record.cwd ?? '~',
    startedAt: record.startedAt,
  };
}

/**
 * Wires cross-device sessions into the editor: the manifest follows the tabs, closing follows the
 * last-device rule, tombstones close tabs, and the two views stay current. Logic lives in
 * CrossDeviceSessions; this file only connects parts.
 */
export function registerCrossDevice(context: vscode.ExtensionContext, tabs: TabManager, pool: ConnectionPool, sync: TetherSync, log: vscode.LogOutputChannel): CrossDeviceSessions {
  const cross = new CrossDeviceSessions({
    log,
    detachedSession: (entry) => new PersistentSession({ id: entry.id, host: tabs.hostFor(entry), pool, log, mode: 'attach', multiplexer: entry.multiplexer }),
    localHolders: (id) => sync.device.holders(id),
    staleAfterMs: () => staleAfterMs(),
    lastKnown: () => sync.device.lastKnownSlots(),
  });
  const liveView = new LiveSessionsView();
  const hostsView = new HostsView({
    hosts: () => tabs.knownHosts(),
    sessionsOn: async (label) => {
      const connection = await pool.acquire(tabs.resolve(label));
      const capabilities = await hostCapabilities(connection);
      const result = await connection.runScript(inventoryScript(capabilities), 15_000);
      const slots = sync.client?.getRemoteState().slots ?? [];
      const openHere = new Set(tabs.records().map((record) => record.id));
      return parseInventory(result.output).map((session): HostSessionRow => ({ ...session, usedBy: usedBy(session.id, openHere, slots, sync.client?.slotId) }));
    },
  });

  const publish = (): void => {
    cross.publish(tabs.records().map(entryOf));
    sync.publishLocalSessions();
  };
  const refreshLive = (): void => {
    liveView.update(cross.liveOnOtherDevices(new Set(tabs.records().map((record) => record.id))));
    const state = sync.state;
    const optedOut = !setting<boolean>('crossDeviceSessions', true);
    const configured = state.state !== 'off' || /crossDeviceSessions is off/.test(state.detail ?? '');
    void vscode.commands.executeCommand('setContext', 'tether.syncConfigured', configured);
    void vscode.commands.executeCommand('setContext', 'tether.crossDeviceOptedOut', optedOut);
  };

  tabs.setClosePolicy({
    close: (session, record) => cross.close(session, entryOf(record)),
    kill: async (session) => (await cross.kill(session)).action === 'killed',
    gone: (record) => cross.ended(record.id),
  });
  cross.setEnabled(setting<boolean>('crossDeviceSessions', true));
  cross.useClient(sync.client);
  publish();

  const joinRecord = (session: SessionEntry & { title?: string }): void => {
    tabs.attach({ ...session, cwd: session.cwd === '~' ? undefined : session.cwd, name: `${session.hostLabel} · ${session.id.slice(0, 6)}` }, setting<number>('scrollback.replayLines', 2000));
  };

  context.subscriptions.push(
    liveView,
    hostsView,
    { dispose: () => cross.dispose() },
    vscode.window.registerTreeDataProvider('tether.liveSessions', liveView),
    vscode.window.registerTreeDataProvider('tether.hosts', hostsView),
    sync.onDidChangeClient((client) => {
      cross.useClient(client);
      publish();
    }),
    sync.onDidChangeState(refreshLive),
    tabs.onDidChangeTabs(() => {
      publish();
      refreshLive();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration('tether.crossDeviceSessions')) return;
      cross.setEnabled(setting<boolean>('crossDeviceSessions', true));
      refreshLive();
    }),
    vscode.commands.registerCommand('tether.joinSession', async (arg?: unknown) => {
      // A row's inline action passes the tree node; the row's own click passes the session.
      const candidate = arg && typeof arg === 'object' && 'session' in arg ? (arg as { session: unknown }).session : arg;
      let session = isLiveSession(candidate) ? candidate : undefined;
      if (!session) {
        const choices = liveView.sessions();
        if (choices.length === 0) return void vscode.window.showInformationMessage('Tether: no sessions are open on your other devices.');
        const picked = await vscode.window.showQuickPick(
          choices.map((candidate) => ({ label: candidate.title ?? candidate.hostLabel, description: `${candidate.deviceName} · ${candidate.cwd}`, candidate })),
          { title: 'Tether: Join Session', placeHolder: 'A session open on another device' },
        );
        session = picked?.candidate;
      }
      if (session) joinRecord(session);
    }),
    vscode.commands.registerCommand('tether.refreshHosts', () => hostsView.refresh()),
    vscode.commands.registerCommand('tether.newTerminalOnHost', (node?: { host?: string }) => {
      if (node?.host) tabs.open(node.host);
    }),
    vscode.commands.registerCommand('tether.joinHostSession', (node?: { host?: string; row?: HostSessionRow }) => {
      if (!node?.host || !node.row) return;
      const host = tabs.resolve(node.host);
      joinRecord({ id: node.row.id, hostLabel: node.host, user: host.user, hostName: host.hostName, port: host.port, multiplexer: node.row.multiplexer, cwd: '~', startedAt: node.row.createdAt ?? Date.now() });
    }),
    vscode.commands.registerCommand('tether.killHostSession', async (node?: { host?: string; row?: HostSessionRow }) => {
      if (!node?.host || !node.row) return;
      const confirm = await vscode.window.showWarningMessage(`Kill orphaned session tether_${node.row.id} on ${node.host}?`, { modal: true }, 'Kill Session');
      if (confirm !== 'Kill Session') return;
      const host = tabs.resolve(node.host);
      const session = new PersistentSession({ id: node.row.id, host, pool, log, mode: 'attach', multiplexer: node.row.multiplexer });
      const result = await cross.kill(session);
      if (result.action !== 'killed') void vscode.window.showWarningMessage(`Tether: not killed: ${result.why}`);
      hostsView.refresh();
    }),
  );
  // Stale listings leave every device's list once a host we are connected to proves them gone
  // (DESIGN §7): one inventory per connected host, never a new connection or a prompt.
  let pruning = false;
  const pruneStale = async (): Promise<void> => {
    if (pruning) return;
    pruning = true;
    try {
      const byHost = new Map<string, LiveSession[]>();
      for (const session of liveView.sessions()) {
        const key = `${session.user}@${session.hostName}:${session.port}`;
        byHost.set(key, [...(byHost.get(key) ?? []), session]);
      }
      for (const sessions of byHost.values()) {
        const connection = pool.peek(tabs.hostFor(sessions[0]));
        if (!connection) continue;
        const output = (await connection.runScript(inventoryScript(await hostCapabilities(connection)), 15_000)).output;
        for (const id of provenGone(sessions, output)) {
          log.info(`sync: session ${id} is gone from ${sessions[0].hostLabel}; removing it from every device's list`);
          cross.ended(id);
        }
      }
    } catch (error) {
      log.debug(`stale listing check failed: ${(error as Error).message}`);
    } finally {
      pruning = false;
    }
  };
  const pruneTimer = setInterval(() => void pruneStale(), 60_000);
  context.subscriptions.push({ dispose: () => clearInterval(pruneTimer) });
  cross.onDidChange(refreshLive);
  cross.onRemoteTombstone(({ id, deviceName }) => tabs.endRemotelyKilled(id, deviceName));
  refreshLive();
  return cross;
}

function isLiveSession(value: unknown): value is LiveSession {
  return typeof value === 'object' && value !== null && typeof (value as LiveSession).id === 'string' && typeof (value as LiveSession).hostName === 'string';
}
