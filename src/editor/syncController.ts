import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { SyncStatusBar } from './syncStatusBar';
import { Commands, type SettingKey } from './contributions';
import { affectsSetting, deviceName, executeCommand, readSetting, registerCommand, writeSetting } from './contributionApi';
import { AccountSlots } from '../sync/accountSlots';
import { confirmPlainHttp } from './plainHttpConfirm';
import { FolderDeviceFiles } from '../sync/deviceFiles';
import { DeviceSync, type SyncPort, type WindowIdentity } from '../sync/deviceSync';
import { type RemoteState, SyncClient, type SyncStateChange } from '../sync/syncClient';
import { type SyncConnection, SyncRunner } from '../sync/syncRunner';
import type { Event } from '../common/emitter';
import { isSshSyncUrl, parseSshSyncUrl, type SshSyncLocation, SshSyncUrlError } from '../sync/sshSyncUrl';
import { poolConnector, SshSyncTransport } from '../sync/sshTransport';
import type { ConnectionPool } from '../ssh/sshConnection';
import type { ResolvedHost } from '../ssh/sshConfig';
import { deriveSyncKeys, formatSyncKey, generateSyncKey, parseSyncKey, SyncKeyError } from '../sync/syncKey';

/**
 * The thin VS Code layer over SyncRunner, DeviceSync and SyncClient: the sync key in SecretStorage,
 * settings, the sync commands and the status bar item. When the client runs, restarts and why sync
 * is off live in syncRunner.ts; the device model (one slot per VS Code installation, windows merged
 * through global storage) in deviceSync.ts; both vscode-free.
 */

/** SecretStorage only: never settings, never the log. */
const SECRET_SYNC_KEY = 'tether.sync.key';
/** Per-window slot IDs of versions before the device slot (slotLease.ts); merged once, then deleted. */
const LEGACY_SLOT_IDS_STATE = 'tether.sync.slotIds';
const WATCHED_SETTINGS = ['tether.sync.serverUrl', 'tether.deviceName', 'tether.crossDeviceSessions'] as const satisfies readonly SettingKey[];

export interface TetherSync {
  /** Stops the client and releases the slot; resolves when done. */
  dispose(): Promise<void>;
  /** The current sync state, as shown in the status bar. */
  readonly state: SyncStateChange;
  /**
   * Sync is set up on this device (a key and a server URL), whether or not it runs: it runs, or it is
   * off only because tether.crossDeviceSessions is. Up to date when `onDidChangeState` fires.
   */
  readonly configured: boolean;
  readonly onDidChangeState: Event<SyncStateChange>;
  /** Every other slot's validated blob, with presence. Empty while sync is off. */
  readonly remote: RemoteState;
  readonly onDidChangeRemote: Event<RemoteState>;
  /**
   * `tether.crossDeviceSessions` (read here only): share this device's sessions and list the others'.
   * Off stops the sync client; this window's part of the device listing is kept either way.
   */
  readonly crossDevice: boolean;
  /** Fires when `crossDevice` changes, before the client restarts. */
  readonly onDidChangeCrossDevice: Event<boolean>;
  /** This device's windows and workspaces, merged into its one slot. */
  readonly device: DeviceSync;
  /** Deletes another device's slot from the server (Forget Device). */
  forgetDevice(slotId: string): Promise<void>;
  /** Tells every device that a session was killed; call only after the kill was confirmed on the host. */
  publishTombstone(sessionId: string, killedAt?: number): void;
  /**
   * The running client (undefined while sync is off), for code that drives it directly, such as
   * CrossDeviceSessions.useClient in crossDevice.ts. It is replaced whenever settings or the key change.
   */
  readonly client: SyncPort | undefined;
  readonly onDidChangeClient: Event<SyncPort | undefined>;
}

/** A workspace's part outlives its window; a folder-less window's part goes with it. */
export function windowIdentity(): WindowIdentity {
  const uri = vscode.workspace.workspaceFile ?? vscode.workspace.workspaceFolders?.[0]?.uri;
  if (!uri) return { kind: 'window', key: `win-${process.pid}`, label: 'window without a folder' };
  return { kind: 'workspace', key: `ws-${createHash('sha256').update(uri.toString()).digest('hex').slice(0, 16)}`, label: vscode.workspace.name ?? path.basename(uri.path) };
}

/** What sync through an SSH host needs from the extension: the shared pool and ssh config. */
export interface SyncSshHosts {
  readonly pool: Pick<ConnectionPool, 'peek' | 'acquire'>;
  /** Resolves an alias or `user@host[:port]` through ssh config (throws when it cannot). */
  resolve(label: string): ResolvedHost;
  /** Concrete Host aliases of ~/.ssh/config, for the picker. */
  configuredHosts(): string[];
}

function validateServerUrl(text: string): string | undefined {
  if (isSshSyncUrl(text)) {
    try {
      parseSshSyncUrl(text);
      return undefined;
    } catch (error) {
      return SshSyncUrlError.is(error) ? `${error.message.charAt(0).toUpperCase()}${error.message.slice(1)}.` : 'Enter ssh://host or ssh://user@host:port';
    }
  }
  try {
    const url = new URL(text.trim());
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'Use an http://, https:// or ssh:// URL.';
    return undefined;
  } catch {
    return 'Enter a URL such as http://127.0.0.1:8787';
  }
}

/**
 * Registers the sync commands and the status bar item, and runs the sync client while sync is
 * set up (a key in SecretStorage, `tether.sync.serverUrl` set, `tether.crossDeviceSessions` on).
 * The returned object is disposed with the extension through `context.subscriptions`.
 */
export function registerSync(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, sshHosts?: SyncSshHosts): TetherSync {
  const legacyDir = path.join(context.globalStorageUri.fsPath, 'sync');
  const clientDir = (role: 'writer' | 'reader'): string => path.join(legacyDir, role === 'writer' ? 'device' : 'device-reader');
  const device = new DeviceSync({ files: new FolderDeviceFiles(path.join(context.globalStorageUri.fsPath, 'device')), window: windowIdentity(), log });
  void device.open().catch((error: unknown) => log.warn(`device: ${String(error)}`));
  const statusBar = new SyncStatusBar();

  async function readKey(): Promise<Uint8Array | undefined> {
    const text = await context.secrets.get(SECRET_SYNC_KEY);
    if (!text) return undefined;
    try {
      return parseSyncKey(text);
    } catch (error) {
      log.error(`sync: the stored sync key is unusable (${SyncKeyError.is(error) ? error.reason : 'unknown'}); run "Tether: Set Up Sync…" again`);
      return undefined;
    }
  }

  /** The account and clients for a server URL: an HTTP server, or ssh://host (files on an SSH host over its shared connection). */
  function connection(serverUrl: string, syncKey: Uint8Array, name: string): SyncConnection {
    let sshTransport: (() => SshSyncTransport) | undefined;
    if (isSshSyncUrl(serverUrl)) {
      if (!sshHosts) throw new Error('sync through an SSH host is not available here');
      const location: SshSyncLocation = parseSshSyncUrl(serverUrl);
      const resolved = sshHosts.resolve(location.hostLabel);
      const { token } = deriveSyncKeys(syncKey);
      sshTransport = () => new SshSyncTransport({ location, token, ...poolConnector(sshHosts.pool, () => resolved), log });
    }
    const account = new AccountSlots({ serverUrl, syncKey, ...(sshTransport ? { api: sshTransport() } : {}) });
    return {
      account,
      clients: (slotId, role) => new SyncClient({ serverUrl, syncKey, slotId, deviceName: name, stateDir: clientDir(role), log, ...(sshTransport ? { transport: sshTransport() } : {}) }),
      legacy: account.legacySlots(legacyDir, () => context.globalState.get<string[]>(LEGACY_SLOT_IDS_STATE, [])),
    };
  }

  /** The one read of tether.crossDeviceSessions; everything else asks `sync.crossDevice`. */
  const readCrossDevice = (): boolean => readSetting('tether.crossDeviceSessions');
  const runner = new SyncRunner({
    device,
    log,
    readKey,
    settings: () => ({ serverUrl: readSetting('tether.sync.serverUrl').trim(), deviceName: deviceName() }),
    crossDevice: readCrossDevice(),
    connection,
    forgetCaches: async () => {
      for (const role of ['writer', 'reader'] as const) await fs.rm(clientDir(role), { recursive: true, force: true });
    },
  });
  const updateStatusBar = (): void => statusBar.update(runner.state, runner.remote.slots.length);

  async function showKey(keyText: string, intro: string): Promise<void> {
    const choice = await vscode.window.showInformationMessage(intro, { modal: true, detail: keyText }, 'Copy');
    if (choice === 'Copy') {
      await vscode.env.clipboard.writeText(keyText);
      void vscode.window.showInformationMessage('Sync key copied. Paste it on your other device with "Tether: Set Up Sync…".');
    }
  }

  async function setUpSync(): Promise<void> {
    const existing = await context.secrets.get(SECRET_SYNC_KEY);
    type Pick = vscode.QuickPickItem & { action: 'create' | 'paste' | 'server' | 'ssh' };
    const keyItems: Pick[] = [
      { label: '$(add) Create a new sync key', detail: 'For your first device. You will paste the key on the others.', action: 'create' },
      { label: '$(key) Paste a sync key from another device', detail: 'Run "Tether: Show Sync Key" on a device that is already set up.', action: 'paste' },
    ];
    const items: Pick[] = [...keyItems];
    if (existing) items.push({ label: '$(server) Keep this device\'s key, change the server URL', action: 'server' });
    if (sshHosts) items.push({ label: '$(terminal) Sync through an SSH host', detail: 'No server: your devices meet in files on an SSH host they all reach (nothing is installed there).', action: 'ssh' });
    let picked = await vscode.window.showQuickPick(items, { title: 'Tether: Set Up Sync', ignoreFocusOut: true });
    if (!picked) return;
    const viaSsh = picked.action === 'ssh';
    if (viaSsh) {
      const keep: Pick[] = existing ? [{ label: '$(check) Keep this device\'s sync key', action: 'server' }] : [];
      picked = await vscode.window.showQuickPick([...keep, ...keyItems], { title: 'Tether: Sync Through an SSH Host: the sync key', ignoreFocusOut: true });
      if (!picked) return;
    }

    let keyText: string | undefined;
    if (picked.action === 'paste') {
      const pasted = await vscode.window.showInputBox({
        title: 'Paste the sync key from your other device',
        placeHolder: 'tether1-…',
        ignoreFocusOut: true,
        validateInput: (text) => {
          try {
            parseSyncKey(text);
            return undefined;
          } catch (error) {
            return SyncKeyError.is(error) ? error.message : 'This is not a sync key.';
          }
        },
      });
      if (!pasted) return;
      keyText = formatSyncKey(parseSyncKey(pasted));
    } else if (picked.action === 'create') {
      if (existing) {
        const confirm = await vscode.window.showWarningMessage(
          'Replace this device\'s sync key?',
          { modal: true, detail: 'This device leaves its current sync account; devices that keep the old key will no longer see it.' },
          'Replace',
        );
        if (confirm !== 'Replace') return;
      }
      keyText = formatSyncKey(generateSyncKey());
    }

    const current = readSetting('tether.sync.serverUrl').trim();
    const serverUrl = viaSsh
      ? await pickSshSyncHost(current)
      : await vscode.window.showInputBox({
          title: 'Sync server URL',
          prompt: 'The Tether sync server all your devices use (it stores only encrypted data), or ssh://host to sync through an SSH host.',
          value: current || 'http://127.0.0.1:8787',
          ignoreFocusOut: true,
          validateInput: validateServerUrl,
        });
    if (serverUrl === undefined) return;
    if (!isSshSyncUrl(serverUrl) && !(await confirmPlainHttp(serverUrl))) return;

    if (keyText && keyText !== existing) {
      // The cache belongs to the old account: leave its server slot and drop it before switching.
      await runner.restartAfter(async () => {
        await runner.stop({ deleteSlot: existing !== undefined, forget: true });
        await context.secrets.store(SECRET_SYNC_KEY, keyText);
      });
    }
    await writeSetting('tether.sync.serverUrl', serverUrl.trim());
    const where = isSshSyncUrl(serverUrl) ? parseSshSyncUrl(serverUrl).display : `server ${new URL(serverUrl.trim()).origin}`;
    log.info(`sync: set up with ${where}${picked.action === 'create' ? ' and a new sync key' : ''}`);
    await runner.restart();
    if (!runner.crossDevice) {
      void vscode.window.showWarningMessage('Sync is set up, but "Tether: Cross-Device Sessions" is off, so nothing is shared yet.');
    }
    if (picked.action === 'create' && keyText) {
      await showKey(keyText, 'Sync is set up. On each of your other devices, run "Tether: Set Up Sync…", choose "Paste a sync key", and paste this key. Anyone with it can read your session list, so keep it private.');
    }
  }

  /** The SSH host to sync through: one of ~/.ssh/config's hosts, or typed user@host[:port]. */
  async function pickSshSyncHost(current: string): Promise<string | undefined> {
    type HostPick = vscode.QuickPickItem & { host?: string };
    const configured = (() => {
      try {
        return sshHosts?.configuredHosts() ?? [];
      } catch {
        return [];
      }
    })();
    const currentHost = isSshSyncUrl(current) ? (() => { try { return parseSshSyncUrl(current).hostLabel; } catch { return undefined; } })() : undefined;
    const items: HostPick[] = [
      ...configured.map((host) => ({ label: `$(remote) ${host}`, host, ...(host === currentHost ? { description: 'current' } : {}) })),
      { label: '$(edit) Type user@host[:port]…', alwaysShow: true },
    ];
    const chosen = await vscode.window.showQuickPick(items, {
      title: 'Tether: Sync Through an SSH Host',
      placeHolder: 'A host all your devices reach. Sync data goes to ~/.tether/sync there, encrypted.',
      ignoreFocusOut: true,
    });
    if (!chosen) return undefined;
    if (chosen.host) return `ssh://${chosen.host}`;
    const typed = await vscode.window.showInputBox({
      title: 'Sync through an SSH host',
      prompt: 'user@host[:port] or an ssh config alias; optionally /~/folder (default ~/.tether/sync).',
      value: currentHost ?? '',
      ignoreFocusOut: true,
      validateInput: (text) => (text.trim() === '' ? 'Enter a host' : validateServerUrl(`ssh://${text.trim().replace(/^ssh:\/\//i, '')}`)),
    });
    return typed === undefined ? undefined : `ssh://${typed.trim().replace(/^ssh:\/\//i, '')}`;
  }

  async function showSyncKey(): Promise<void> {
    const keyText = await context.secrets.get(SECRET_SYNC_KEY);
    if (!keyText) {
      const choice = await vscode.window.showInformationMessage('Sync is not set up on this device.', 'Set Up Sync…');
      if (choice) await executeCommand(Commands.SetUpSync);
      return;
    }
    await showKey(keyText, 'Your Tether sync key. Paste it on another device with "Tether: Set Up Sync…". Keep it private.');
  }

  async function signOutSync(): Promise<void> {
    if (!(await context.secrets.get(SECRET_SYNC_KEY))) {
      void vscode.window.showInformationMessage('Sync is not set up on this device.');
      return;
    }
    const choice = await vscode.window.showWarningMessage(
      'Sign out of Tether sync on this device?',
      { modal: true, detail: 'The sync key is removed from this device and its sessions stop being listed on your other devices. Your sessions keep running. To sign in again you need the key from another device.' },
      'Sign Out',
    );
    if (choice !== 'Sign Out') return;
    await runner.restartAfter(async () => {
      await runner.stop({ deleteSlot: true, forget: true });
      await context.secrets.delete(SECRET_SYNC_KEY);
    });
    log.info('sync: signed out on this device');
  }

  context.subscriptions.push(
    statusBar,
    runner.onDidChangeState(updateStatusBar),
    runner.onDidChangeRemote(updateStatusBar),
    registerCommand(Commands.SetUpSync, setUpSync),
    registerCommand(Commands.ShowSyncKey, showSyncKey),
    registerCommand(Commands.SignOutSync, signOutSync),
    vscode.workspace.onDidChangeConfiguration((event) => {
      // Turning sharing off removes this device's listing from the others (SyncRunner.settingsChanged).
      if (affectsSetting(event, ...WATCHED_SETTINGS)) void runner.settingsChanged(readCrossDevice());
    }),
    // Another window of this machine set up or signed out.
    context.secrets.onDidChange((event) => {
      if (event.key === SECRET_SYNC_KEY) void runner.restart();
    }),
  );

  const sync: TetherSync = {
    get state() {
      return runner.state;
    },
    get remote() {
      return runner.remote;
    },
    get configured() {
      return runner.configured;
    },
    onDidChangeState: runner.onDidChangeState,
    onDidChangeRemote: runner.onDidChangeRemote,
    get crossDevice() {
      return runner.crossDevice;
    },
    onDidChangeCrossDevice: runner.onDidChangeCrossDevice,
    device,
    forgetDevice: (slotId) => runner.forgetDevice(slotId),
    publishTombstone: (sessionId, killedAt) => device.recordTombstone(sessionId, killedAt),
    get client() {
      return runner.client;
    },
    onDidChangeClient: runner.onDidChangeClient,
    // Returns a promise (vscode.Disposable allows any) so a deactivate() can wait for the stop.
    dispose: () => runner.dispose(),
  };
  context.subscriptions.push(sync);
  void runner.restart();
  return sync;
}
