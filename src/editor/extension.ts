import * as path from 'node:path';
import * as vscode from 'vscode';
import { registerCrossDevice } from './crossDeviceController';
import { openSshConfig, pickHost } from './hostPicker';
import { registerReportProblem } from './reportProblemCommand';
import { registerSync } from './syncController';
import { ConnectionPool } from '../ssh/sshConnection';
import { TabManager } from './tabManager';
import { Commands, TerminalProfiles } from './contributions';
import { readSetting, registerCommand } from './contributionApi';
import { TrustStore } from '../ssh/trustStore';
import { VscodePrompter, confirmUnknownHostKey } from './vscodePrompter';

let tabs: TabManager | undefined;

const NOT_TETHER = 'Tether: the active terminal is not a Tether terminal. Click a Tether tab (its icon is the remote icon) first, or open one with "Tether: New Persistent Terminal…".';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Tether', { log: true });
  const pool = new ConnectionPool({
    prompter: new VscodePrompter(context.secrets),
    trustStore: new TrustStore(path.join(context.globalStorageUri.fsPath, 'known_hosts')),
    confirmUnknownHostKey,
    log,
    keepaliveIntervalMs: readSetting('tether.keepaliveInterval'),
    keepaliveCountMax: 3,
    forwardAgent: readSetting('tether.forwardAgent'),
  });
  tabs = new TabManager(context, pool, log);
  context.subscriptions.push(log, tabs, { dispose: () => pool.dispose() });

  const register: typeof registerCommand = (id, run) => {
    const registration = registerCommand(id, run);
    context.subscriptions.push(registration);
    return registration;
  };
  register(Commands.NewTerminal, async (args) => {
    const given = args && typeof args === 'object' ? args : {};
    const host = typeof given.host === 'string' ? given.host : await pickHost(context, tabs!.configuredHosts());
    if (host) tabs!.open(host, typeof given.cwd === 'string' ? given.cwd : undefined);
  });
  register(Commands.DetachTerminal, () => {
    const terminal = vscode.window.activeTerminal;
    if (!terminal || !tabs!.detach(terminal)) void vscode.window.showInformationMessage(NOT_TETHER);
  });
  register(Commands.RenameSession, async (arg) => {
    // From the tab's context menu VS Code may pass the terminal; from the palette, the active one.
    const terminal = arg && tabs!.tabFor(arg) ? arg : vscode.window.activeTerminal;
    const record = tabs!.tabFor(terminal);
    if (!terminal || !record) return void vscode.window.showInformationMessage(NOT_TETHER);
    const title = await vscode.window.showInputBox({
      title: 'Tether: Rename Session',
      prompt: `A name for session ${record.id.slice(0, 6)} on ${record.hostLabel}, shown on every device. Empty for the default name.`,
      value: record.title ?? '',
      validateInput: (value) => (value.length > 100 ? 'At most 100 characters' : undefined),
    });
    if (title === undefined) return;
    if (!(await tabs!.rename(terminal, title))) {
      void vscode.window.showWarningMessage(`Tether: renamed here, but ${record.hostLabel} could not store the name, so other devices will not see it. Rename again once the host is reachable; "Tether: Show Log" has the reason.`);
    }
  });
  register(Commands.ShowLog, () => log.show());
  register(Commands.OpenSshConfig, () => openSshConfig());

  context.subscriptions.push(
    vscode.window.registerTerminalProfileProvider(TerminalProfiles.Ssh, {
      provideTerminalProfile: async () => {
        const host = await pickHost(context, tabs!.configuredHosts());
        return host ? tabs!.profile(host) : undefined;
      },
    }),
  );

  const sync = registerSync(context, log, {
    pool,
    resolve: (label) => tabs!.resolve(label),
    configuredHosts: () => tabs!.configuredHosts(),
  });
  const crossDevice = registerCrossDevice(context, tabs, pool, sync, log);
  registerReportProblem(context, tabs, pool, sync, log);

  if (readSetting('tether.restoreOnStartup')) tabs.restore(readSetting('tether.scrollback.replayLines'));
  // Only now: a part written before the restore would drop this workspace's sessions for a moment.
  crossDevice.restored();
}

export function deactivate(): void {
  // Quitting kills nothing: sessions stay on their hosts and the snapshot stays as last written.
  tabs?.markShuttingDown();
}
