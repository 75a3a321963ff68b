/**
 * The terminal commands (New Persistent Terminal, Detach, Rename Session, Show Log, Open SSH Config)
 * and the "Tether: SSH" terminal profile: thin adapters over the TabManager.
 */
import * as vscode from 'vscode';
import { shortId } from '../common/sessionId';
import { Commands, TerminalProfiles } from './contributions';
import { registerCommand } from './contributionApi';
import { openSshConfig, pickHost } from './hostPicker';
import type { SshHosts } from './sshHosts';
import type { TabManager } from './tabManager';

const NOT_TETHER = 'Tether: the active terminal is not a Tether terminal. Click a Tether tab (its icon is the remote icon) first, or open one with "Tether: New Persistent Terminal…".';

export interface TerminalServices {
  readonly tabs: TabManager;
  readonly hosts: SshHosts;
  readonly log: vscode.LogOutputChannel;
}

export function registerTerminalCommands(context: vscode.ExtensionContext, { tabs, hosts, log }: TerminalServices): void {
  context.subscriptions.push(
    registerCommand(Commands.NewTerminal, async (args) => {
      const given = args && typeof args === 'object' ? args : {};
      const host = typeof given.host === 'string' ? given.host : await pickHost(context, hosts.configuredHosts());
      if (host) tabs.open(host, typeof given.cwd === 'string' ? given.cwd : undefined);
    }),
    registerCommand(Commands.DetachTerminal, () => {
      const terminal = vscode.window.activeTerminal;
      if (!terminal || !tabs.detach(terminal)) void vscode.window.showInformationMessage(NOT_TETHER);
    }),
    registerCommand(Commands.RenameSession, async (arg) => {
      // From the tab's context menu VS Code may pass the terminal; from the palette, the active one.
      const terminal = arg && tabs.tabFor(arg) ? arg : vscode.window.activeTerminal;
      const record = tabs.tabFor(terminal);
      if (!terminal || !record) return void vscode.window.showInformationMessage(NOT_TETHER);
      const title = await vscode.window.showInputBox({
        title: 'Tether: Rename Session',
        prompt: `A name for session ${shortId(record.id)} on ${record.hostLabel}, shown on every device. Empty for the default name.`,
        value: record.title ?? '',
        validateInput: (value) => (value.length > 100 ? 'At most 100 characters' : undefined),
      });
      if (title === undefined) return;
      if (!(await tabs.rename(terminal, title))) {
        void vscode.window.showWarningMessage(`Tether: renamed here, but ${record.hostLabel} could not store the name, so other devices will not see it. Rename again once the host is reachable; "Tether: Show Log" has the reason.`);
      }
    }),
    registerCommand(Commands.ShowLog, () => log.show()),
    registerCommand(Commands.OpenSshConfig, () => openSshConfig()),
    vscode.window.registerTerminalProfileProvider(TerminalProfiles.Ssh, {
      provideTerminalProfile: async () => {
        const host = await pickHost(context, hosts.configuredHosts());
        return host ? tabs.profile(host) : undefined;
      },
    }),
  );
}
