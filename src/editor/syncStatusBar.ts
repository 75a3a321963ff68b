import * as vscode from 'vscode';
import type { SyncState, SyncStateChange } from '../sync/syncClient';
import { transportSecurity } from '../sync/transportSecurity';
import { Commands } from './contributions';
import { readSetting } from './contributionApi';

const PRESENTATION: Record<SyncState, { text: string; tooltip: string }> = {
  off: { text: '$(sync-ignored) Sync off', tooltip: 'Tether sync is off. Run "Tether: Set Up Sync…" to share sessions across your devices.' },
  connecting: { text: '$(sync~spin) Sync', tooltip: 'Tether sync is connecting to the server.' },
  live: { text: '$(cloud) Sync', tooltip: 'Tether sync is live: changes on your other devices arrive as they happen.' },
  offline: { text: '$(debug-disconnect) Sync offline', tooltip: 'Tether cannot reach the sync server. The last known sessions stay listed; sync catches up when the server returns.' },
  error: { text: '$(error) Sync error', tooltip: 'Tether sync hit an error.' },
};

/** The status bar item for the sync state; clicking it opens Tether's log. */
export class SyncStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;

  constructor() {
    this.item = vscode.window.createStatusBarItem('tether.syncStatus', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Tether Sync';
    this.item.command = Commands.ShowLog;
    this.update({ state: 'off' }, 0);
    this.item.show();
  }

  update(change: SyncStateChange, otherDevices: number): void {
    const presentation = PRESENTATION[change.state];
    this.item.text = presentation.text;
    const devices = change.state === 'off' ? '' : `\n\n${otherDevices} other device${otherDevices === 1 ? '' : 's'} listed.`;
    const detail = change.detail ? `\n\n${change.detail}` : '';
    // Read here rather than passed in: the controller restarts (and so updates us) on every change of it.
    const security = transportSecurity(readSetting('tether.sync.serverUrl'));
    const plain = change.state !== 'off' && security?.kind === 'plain';
    if (plain) this.item.text += ' $(unlock)';
    const transport = plain
      ? `\n\nNot encrypted in transit: ${security.host} is reached over plain http://. Your sessions are still end-to-end encrypted; the account token and traffic timing are not protected. Use an https:// server URL.`
      : '';
    this.item.tooltip = `${presentation.tooltip}${detail}${transport}${devices}\n\nClick to open the Tether log.`;
    this.item.backgroundColor = change.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
