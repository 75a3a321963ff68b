import * as vscode from 'vscode';
import type { SessionEntry } from '../sync/blob';
import { sessionName, shortSessionName } from '../common/sessionId';
import { type CloseResult, CrossDeviceSessions } from '../sync/crossDevice';
import { ago, LiveSession, slotLastSeen, usedBy, withStaleness } from '../sync/liveSessions';
import type { TetherSync } from './syncController';
import { PersistentSession } from '../session/persistentSession';
import { hostCapabilities } from '../multiplexer/hostCapabilities';
import { inventoryScript, parseInventory, provenGone } from '../multiplexer/hostInventory';
import type { ConnectionPool } from '../ssh/sshConnection';
import type { TabRecord } from '../session/tabSnapshot';
import type { ClosePolicy, KillResult, TabManager } from './tabManager';
import type { SshHosts } from './sshHosts';
import type { Logger } from '../common/logger';
import { type CommandArgs, Commands, ContextKeys, Views } from './contributions';
import { readSetting, registerCommand, setContext } from './contributionApi';
import { HostSessionRow, HostsView } from './hostsView';
import { type LocalWindowGroup, LiveSessionsView } from './liveSessionsView';

/** tether.sync.staleDeviceDays as milliseconds; 0 or less turns staleness off. */
export function staleAfterMs(): number | undefined {
  const days = readSetting('tether.sync.staleDeviceDays');
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
    ...(record.title === undefined ? {} : { title: record.title }),
  };
}

/** A handle on a session no tab here holds: its kill runs with no client of ours attached. */
function detachedSession(entry: SessionEntry, hosts: SshHosts, pool: ConnectionPool, log: Logger): PersistentSession {
  return new PersistentSession({ id: entry.id, host: hosts.hostFor(entry), pool, log, mode: 'attach', multiplexer: entry.multiplexer });
}

/** This window's CrossDeviceSessions: the close rule reads this device's other windows and the last known listings from `sync`. */
export function createCrossDeviceSessions({ hosts, pool, sync, log }: { hosts: SshHosts; pool: ConnectionPool; sync: TetherSync; log: Logger }): CrossDeviceSessions {
  return new CrossDeviceSessions({
    log,
    detachedSession: (entry) => detachedSession(entry, hosts, pool, log),
    localHolders: (id) => sync.device.holders(id),
    staleAfterMs: () => staleAfterMs(),
    lastKnown: () => sync.device.lastKnownSlots(),
  });
}

const killResult = (result: CloseResult): KillResult =>
  result.action === 'killed' ? { killed: true } : { killed: false, why: result.why, refused: result.refused, devices: result.devices };

/** How tabs close: by the last-device rule of CrossDeviceSessions. Given to the TabManager when it is built. */
export function closePolicyOf(cross: CrossDeviceSessions): ClosePolicy {
  return {
    close: (session, record) => cross.close(session, entryOf(record)),
    kill: async (session, _record, options) => killResult(await cross.kill(session, options)),
    gone: (record) => cross.ended(record.id),
  };
}

/** What the cross-device controller works with; activate() builds each and passes them in. */
export interface CrossDeviceServices {
  readonly tabs: TabManager;
  readonly hosts: SshHosts;
  readonly pool: ConnectionPool;
  readonly sync: TetherSync;
  readonly cross: CrossDeviceSessions;
  readonly log: vscode.LogOutputChannel;
}

export interface CrossDeviceEditor {
  /** The snapshot's tabs are back: from now on this window's part of the device listing follows its tabs. */
  restored(): void;
}

/**
 * Wires cross-device sessions into the editor: the manifest follows the tabs, a ✕ that only
 * detached says why, tombstones close tabs, and the two views stay current. Logic lives in
 * CrossDeviceSessions; this file only connects parts.
 */
export function registerCrossDevice(context: vscode.ExtensionContext, { tabs, hosts, pool, sync, cross, log }: CrossDeviceServices): CrossDeviceEditor {
  const detached = (entry: SessionEntry): PersistentSession => detachedSession(entry, hosts, pool, log);
  const liveView = new LiveSessionsView();
  const hostsView = new HostsView({
    hosts: () => hosts.knownHosts(),
    sessionsOn: async (label) => {
      const connection = await pool.acquire(hosts.resolve(label));
      const capabilities = await hostCapabilities(connection);
      const result = await connection.runScript(inventoryScript(capabilities), 15_000);
      const slots = sync.client?.getRemoteState().slots ?? [];
      const openHere = new Set(tabs.records().map((record) => record.id));
      // Other windows and workspaces of this device are in our own slot, not in `slots`: ask the parts.
      const onThisDevice = (id: string): string | undefined => {
        const holders = sync.device.holders(id);
        return holders.length > 0 ? `open in ${holders.join(', ')}` : undefined;
      };
      return parseInventory(result.output).map((session): HostSessionRow => ({ ...session, usedBy: usedBy(session.id, openHere, slots, sync.client?.slotId) ?? onThisDevice(session.id) }));
    },
  });

  const liveTree = vscode.window.createTreeView(Views.LiveSessions, { treeDataProvider: liveView });
  const hostsTree = vscode.window.createTreeView(Views.Hosts, { treeDataProvider: hostsView });
  // Relative times ("started 5 min ago", "last seen") stay true while a view is visible.
  const labelTimer = setInterval(() => {
    if (liveTree.visible) refreshLive();
    if (hostsTree.visible) hostsView.refreshLabels();
  }, 30_000);
  context.subscriptions.push({ dispose: () => clearInterval(labelTimer) });

  /** Any session: a tab here, another window's, another device's, or a Hosts row; else a quick pick. */
  const pickSessionToKill = async (arg: CommandArgs[typeof Commands.KillSession][0]): Promise<{ entry: SessionEntry; label: string } | undefined> => {
    const row = arg && typeof arg === 'object' && 'row' in arg ? arg : undefined;
    if (row?.host && row.row) {
      const host = hosts.resolve(row.host);
      return {
        entry: { id: row.row.id, hostLabel: row.host, user: host.user, hostName: host.hostName, port: host.port, multiplexer: row.row.multiplexer, cwd: '~', startedAt: row.row.createdAt ?? Date.now() },
        label: `session ${shortSessionName(row.row.id)} on ${row.host}`,
      };
    }
    const candidate = arg && typeof arg === 'object' && 'session' in arg ? arg.session : arg;
    if (isLiveSession(candidate)) return { entry: candidate, label: `"${candidate.title ?? candidate.hostLabel}" (${shortSessionName(candidate.id)})` };
    type Item = vscode.QuickPickItem & { entry?: SessionEntry };
    const items: Item[] = [];
    const records = tabs.records();
    const active = tabs.tabFor(vscode.window.activeTerminal);
    if (records.length > 0) items.push({ label: 'This window', kind: vscode.QuickPickItemKind.Separator });
    for (const record of [...records].sort((a, b) => Number(b.id === active?.id) - Number(a.id === active?.id))) {
      items.push({ label: record.name, description: `${record.hostLabel} · ${record.cwd ?? '~'}${record.id === active?.id ? ' · active' : ''}`, entry: entryOf(record) });
    }
    const local = liveView.localSessions();
    if (local.length > 0) items.push({ label: 'Other windows on this device', kind: vscode.QuickPickItemKind.Separator });
    for (const session of local) items.push({ label: session.title ?? session.hostLabel, description: `${session.deviceName} · ${session.cwd}`, entry: session });
    for (const group of liveView.devices()) {
      items.push({ label: group.deviceName, kind: vscode.QuickPickItemKind.Separator });
      for (const session of group.sessions) items.push({ label: session.title ?? session.hostLabel, description: `${group.deviceName} · ${session.cwd} · started ${ago(session.startedAt, Date.now())}`, entry: session });
    }
    if (!items.some((item) => item.entry)) return void vscode.window.showInformationMessage('Tether: there are no Tether sessions to kill.');
    const picked = await vscode.window.showQuickPick(items, { title: 'Tether: Kill Session', placeHolder: 'The session to end on every device' });
    if (!picked?.entry) return undefined;
    return { entry: picked.entry, label: `"${picked.label}" (${shortSessionName(picked.entry.id)})` };
  };

  /**
   * The one place this window's manifest is published: its tabs, minus the sessions this device
   * ended (CrossDeviceSessions.publish is the one filter), go to the sync client and, once the
   * snapshot's tabs are back, to this window's part of the device listing (kept with sharing on or
   * off: the part is local). Before the restore a part would drop this workspace's sessions for a moment.
   */
  let restored = false;
  const publish = (): void => {
    const sessions = cross.publish(tabs.records().map(entryOf));
    if (restored) sync.device.setWindowSessions(sessions);
  };
  const refreshLive = (): void => {
    const openHere = new Set(tabs.records().map((record) => record.id));
    const groups = withStaleness(cross.liveOnOtherDevices(openHere), sync.client?.getRemoteState().slots ?? [], Date.now(), staleAfterMs());
    const ownSlot = sync.client?.slotId ?? '';
    const windows = sync.device.otherWindows().map((window): LocalWindowGroup => ({
      label: window.label,
      open: window.open,
      sessions: window.sessions.filter((session) => !openHere.has(session.id)).map((session) => ({ ...session, slotId: ownSlot, deviceName: `this device (${window.label})` })),
    }));
    liveView.update(groups, windows);
    const optedOut = !sync.crossDevice;
    void setContext(ContextKeys.SyncConfigured, sync.configured);
    void setContext(ContextKeys.CrossDeviceOptedOut, optedOut);
  };

  /** "Kill anyway": the user confirmed in a modal; still needs the sentinel, still publishes a tombstone. */
  const killAnyway = async (entry: SessionEntry, label: string, why: string): Promise<void> => {
    const confirm = await vscode.window.showWarningMessage(
      `Kill ${label} anyway?`,
      { modal: true, detail: `It is in use: ${why}. Killing it ends its processes on every device, including those.` },
      'Kill Anyway',
    );
    if (confirm !== 'Kill Anyway') return;
    const terminal = tabs.terminalOf(entry.id);
    const result = terminal ? await tabs.kill(terminal, { force: true }) : killResult(await cross.kill(detached(entry), { force: true }));
    if (result.killed) void vscode.window.showInformationMessage(`Tether: ${label} was killed on every device.`);
    else void vscode.window.showWarningMessage(`Tether: ${label} was not killed: ${result.why ?? 'the host did not confirm the kill'}. It may still be running: check the Hosts view, and try again when the host is reachable.`);
    hostsView.refresh();
  };

  /** The deliberate kill of any session, with the refusal explained and "Kill anyway" offered. */
  const killSession = async (entry: SessionEntry, label: string): Promise<void> => {
    const confirm = await vscode.window.showWarningMessage(
      `Kill ${label}?`,
      { modal: true, detail: 'Its processes end on every device. If another device or window is attached, the host refuses and nothing is killed.' },
      'Kill Session',
    );
    if (confirm !== 'Kill Session') return;
    const terminal = tabs.terminalOf(entry.id);
    const result = terminal ? await tabs.kill(terminal) : killResult(await cross.kill(detached(entry)));
    hostsView.refresh();
    if (result.killed) return;
    if (result.refused) {
      await killAnyway(entry, label, result.why ?? 'another client is attached on the host');
      return;
    }
    void vscode.window.showWarningMessage(`Tether: ${label} was not killed: ${result.why ?? 'the host did not confirm the kill'}. It may still be running: check the Hosts view, and try again when the host is reachable.`);
  };

  context.subscriptions.push(
    tabs.onDidDetachOnClose(({ record, why }) => {
      // ✕ that only detaches says why, and offers the kill the user may have meant.
      void vscode.window.showInformationMessage(`Tether: "${record.name}" was detached, not killed: ${why}.`, 'Kill anyway…').then((choice) => {
        if (choice) void killAnyway(entryOf(record), `"${record.name}"`, why);
      });
    }),
  );
  cross.setEnabled(sync.crossDevice);
  cross.useClient(sync.client);
  publish();

  const joinRecord = (session: SessionEntry & { title?: string }): void => {
    tabs.attach({ ...session, cwd: session.cwd === '~' ? undefined : session.cwd }, readSetting('tether.scrollback.replayLines'));
  };

  context.subscriptions.push(
    liveView,
    hostsView,
    liveTree,
    hostsTree,
    sync.device.onDidChangeParts(refreshLive),
    registerCommand(Commands.KillSession, async (arg) => {
      const target = await pickSessionToKill(arg);
      if (target) await killSession(target.entry, target.label);
    }),
    registerCommand(Commands.ForgetDevice, async (arg) => {
      const node = arg && typeof arg === 'object' && 'group' in arg ? arg.group : undefined;
      const slots = sync.client?.getRemoteState().slots ?? [];
      if (!sync.client) return void vscode.window.showInformationMessage('Tether: sync is not running on this device, so there are no devices to forget.');
      let slot = slots.find((candidate) => candidate.slotId === node?.slotId);
      if (!slot) {
        if (slots.length === 0) return void vscode.window.showInformationMessage('Tether: no other devices are listed.');
        const now = Date.now();
        const picked = await vscode.window.showQuickPick(
          slots.map((candidate) => ({
            label: candidate.deviceName,
            description: `${candidate.blob.sessions.length} session(s) · ${candidate.online ? 'online' : `last seen ${ago(slotLastSeen(candidate, now), now)}`}`,
            candidate,
          })),
          { title: 'Tether: Forget Device', placeHolder: 'The device whose listing to delete from the sync server' },
        );
        slot = picked?.candidate;
      }
      if (!slot) return;
      const names = slot.blob.sessions.map((session) => `• ${session.title ?? session.hostLabel} (${shortSessionName(session.id)}, ${session.cwd})`);
      const confirm = await vscode.window.showWarningMessage(
        `Forget device "${slot.deviceName}"?`,
        {
          modal: true,
          detail: forgetDetail(names),
        },
        'Forget Device',
      );
      if (confirm !== 'Forget Device') return;
      try {
        await sync.forgetDevice(slot.slotId);
        log.info(`sync: forgot device ${slot.deviceName} (slot ${slot.slotId})`);
      } catch (error) {
        void vscode.window.showErrorMessage(`Tether: could not forget ${slot.deviceName}: ${(error as Error).message}. Try again when sync is online (the status bar shows Sync rather than Sync offline).`);
      }
    }),
    sync.onDidChangeClient((client) => {
      cross.useClient(client);
      publish();
    }),
    sync.onDidChangeState(refreshLive),
    tabs.onDidChangeTabs(() => {
      publish();
      refreshLive();
    }),
    sync.onDidChangeCrossDevice((enabled) => {
      cross.setEnabled(enabled);
      refreshLive();
    }),
    registerCommand(Commands.JoinSession, async (arg) => {
      // A row's inline action passes the tree node; the row's own click passes the session.
      const candidate = arg && typeof arg === 'object' && 'session' in arg ? arg.session : arg;
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
    registerCommand(Commands.RefreshHosts, () => hostsView.refresh()),
    registerCommand(Commands.NewTerminalOnHost, (node) => {
      if (node?.host) tabs.open(node.host);
    }),
    registerCommand(Commands.JoinHostSession, (node) => {
      if (!node?.host || !node.row) return;
      const host = hosts.resolve(node.host);
      joinRecord({ id: node.row.id, hostLabel: node.host, user: host.user, hostName: host.hostName, port: host.port, multiplexer: node.row.multiplexer, cwd: '~', startedAt: node.row.createdAt ?? Date.now(), title: node.row.meta?.title });
    }),
    registerCommand(Commands.KillHostSession, async (node) => {
      if (!node?.host || !node.row) return;
      const confirm = await vscode.window.showWarningMessage(`Kill orphaned session ${sessionName(node.row.id)} on ${node.host}?`, { modal: true }, 'Kill Session');
      if (confirm !== 'Kill Session') return;
      const host = hosts.resolve(node.host);
      const session = new PersistentSession({ id: node.row.id, host, pool, log, mode: 'attach', multiplexer: node.row.multiplexer });
      const result = await cross.kill(session);
      if (result.action !== 'killed') void vscode.window.showWarningMessage(`Tether: ${shortSessionName(node.row.id)} on ${node.host} was not killed: ${result.why}. Refresh the Hosts view to see whether it still runs, and try again when the host is reachable.`);
      hostsView.refresh();
    }),
  );
  // Stale listings leave every device's list once a host we are connected to proves them gone
  // (docs/architecture.md, Pitfalls we design for): one inventory per connected host, never a new connection or a prompt.
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
        const connection = pool.peek(hosts.hostFor(sessions[0]));
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
  return {
    restored: () => {
      restored = true;
      publish();
    },
  };
}

/** The Forget Device confirmation: what the listing names, and what forgetting does not do. */
function forgetDetail(names: readonly string[]): string {
  const list = names.length === 0
    ? ' (it lists no sessions)'
    : `, with ${names.length === 1 ? 'this session' : `these ${names.length} sessions`}:\n${names.slice(0, 20).join('\n')}${names.length > 20 ? `\n… and ${names.length - 20} more` : ''}`;
  return `Its listing is deleted from the sync server${list}.\n\nThe sessions keep running on their hosts (the Hosts view still shows them), and closing them no longer waits for this device. If the device is still in use, it lists its sessions again the next time it syncs.`;
}

function isLiveSession(value: unknown): value is LiveSession {
  return typeof value === 'object' && value !== null && typeof (value as LiveSession).id === 'string' && typeof (value as LiveSession).hostName === 'string';
}
