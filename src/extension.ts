import * as path from 'node:path';
import * as vscode from 'vscode';
import { entryOf, registerCrossDevice } from './crossDeviceController';
import { pickHost } from './hostPicker';
import { registerSync } from './sync/syncController';
import { ConnectionPool } from './terminal/sshConnection';
import { TabManager, setting } from './terminal/tabManager';
import { TrustStore } from './terminal/trustStore';
import { VscodePrompter, confirmUnknownHostKey } from './vscodePrompter';

let tabs: TabManager | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Tether', { log: true });
  const pool = new ConnectionPool({
    prompter: new VscodePrompter(context.secrets),
    trustStore: new TrustStore(path.join(context.globalStorageUri.fsPath, 'known_hosts')),
    confirmUnknownHostKey,
    log,
    keepaliveIntervalMs: setting<number>('keepaliveInterval', 5000),
    keepaliveCountMax: 3,
    forwardAgent: setting<boolean>('forwardAgent', false),
  });
  tabs = new TabManager(context, pool, log);
  context.subscriptions.push(log, tabs, { dispose: () => pool.dispose() });

  const register = (id: string, run: (...args: unknown[]) => unknown): void => {
    context.subscriptions.push(vscode.commands.registerCommand(id, run));
  };
  register('tether.newTerminal', async (args?: unknown) => {
    const given = args && typeof args === 'object' ? (args as { host?: unknown; cwd?: unknown }) : {};
    const host = typeof given.host === 'string' ? given.host : await pickHost(context, tabs!.configuredHosts());
    if (host) tabs!.open(host, typeof given.cwd === 'string' ? given.cwd : undefined);
  });
  register('tether.detachTerminal', () => {
    const terminal = vscode.window.activeTerminal;
    if (!terminal || !tabs!.detach(terminal)) void vscode.window.showInformationMessage('Tether: the active terminal is not a Tether terminal.');
  });
  register('tether.killSession', async () => {
    const terminal = vscode.window.activeTerminal;
    const record = tabs!.tabFor(terminal);
    if (!terminal || !record) return void vscode.window.showInformationMessage('Tether: the active terminal is not a Tether terminal.');
    const confirm = await vscode.window.showWarningMessage(`Kill session ${record.name} on ${record.hostLabel}? Its processes end on every device.`, { modal: true }, 'Kill Session');
    if (confirm !== 'Kill Session') return;
    if (!(await tabs!.kill(terminal))) void vscode.window.showWarningMessage('Tether: the host did not confirm the kill; the session may still be running.');
  });
  register('tether.showLog', () => log.show());

  context.subscriptions.push(
    vscode.window.registerTerminalProfileProvider('tether.sshProfile', {
      provideTerminalProfile: async () => {
        const host = await pickHost(context, tabs!.configuredHosts());
        return host ? tabs!.profile(host) : undefined;
      },
    }),
  );

  const sync = registerSync(context, log, () => (setting<boolean>('crossDeviceSessions', true) ? tabs!.records().map(entryOf) : []));
  registerCrossDevice(context, tabs, pool, sync, log);

  if (setting<boolean>('restoreOnStartup', true)) tabs.restore(setting<number>('scrollback.replayLines', 2000));
}

export function deactivate(): void {
  // Quitting kills nothing: sessions stay on their hosts and the snapshot stays as last written.
  tabs?.markShuttingDown();
}
