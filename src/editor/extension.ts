/**
 * The composition root: activate() builds the services in order, each from the ones before it, and
 * hands them to the thin editor adapters (commands, views, status bar). Nothing is wired after
 * construction and no service lives at module level.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { closePolicyOf, createCrossDeviceSessions, registerCrossDevice } from './crossDeviceController';
import { registerReportProblem } from './reportProblemCommand';
import { registerSync } from './syncController';
import { ConnectionPool } from '../ssh/sshConnection';
import { SshHosts } from './sshHosts';
import { TabManager } from './tabManager';
import { registerTerminalCommands } from './terminalCommands';
import { TrustStore } from '../ssh/trustStore';
import { VscodePrompter, confirmUnknownHostKey } from './vscodePrompter';
import { readSetting } from './contributionApi';

/**
 * What deactivate() does for the running window. VS Code calls deactivate() with no arguments, so
 * this hook is the one thing activate() leaves at module level.
 */
let onDeactivate: (() => void) | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Tether', { log: true });
  context.subscriptions.push(log);
  const hosts = new SshHosts(context.globalState, log);
  const pool = new ConnectionPool({
    prompter: new VscodePrompter(context.secrets),
    trustStore: new TrustStore(path.join(context.globalStorageUri.fsPath, 'known_hosts')),
    confirmUnknownHostKey,
    log,
    keepaliveIntervalMs: readSetting('tether.keepaliveInterval'),
    keepaliveCountMax: 3,
    forwardAgent: readSetting('tether.forwardAgent'),
  });
  const sync = registerSync(context, log, { pool, resolve: (label) => hosts.resolve(label), configuredHosts: () => hosts.configuredHosts() });
  const cross = createCrossDeviceSessions({ hosts, pool, sync, log });
  const tabs = new TabManager(context, pool, hosts, closePolicyOf(cross), log);
  // Disposed in this order: the tabs' sessions detach before the pool closes their connections.
  context.subscriptions.push(tabs, { dispose: () => pool.dispose() }, { dispose: () => cross.dispose() });

  registerTerminalCommands(context, { tabs, hosts, log });
  const crossDevice = registerCrossDevice(context, { tabs, hosts, pool, sync, cross, log });
  registerReportProblem(context, { tabs, hosts, pool, sync, log });

  onDeactivate = () => tabs.markShuttingDown();
  context.subscriptions.push({ dispose: () => (onDeactivate = undefined) });

  if (readSetting('tether.restoreOnStartup')) tabs.restore(readSetting('tether.scrollback.replayLines'));
  // Only now: a part written before the restore would drop this workspace's sessions for a moment.
  crossDevice.restored();
}

export function deactivate(): void {
  // Quitting kills nothing: sessions stay on their hosts and the snapshot stays as last written.
  // The subscriptions then stop sync and detach the sessions (TabManager.dispose).
  onDeactivate?.();
}
