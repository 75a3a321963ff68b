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
import { isSshSyncUrl, parseSshSyncUrl, type SshSyncLocation, SshSyncUrlError } from '../sync/sshSyncUrl';
import { poolConnector, SshSyncTransport } from '../sync/sshTransport';
import type { ConnectionPool } from '../ssh/sshConnection';
import type { ResolvedHost } from '../ssh/sshConfig';
import { deriveSyncKeys, formatSyncKey, generateSyncKey, parseSyncKey, SyncKeyError } from '../sync/syncKey';

/**
 * The thin VS Code layer over DeviceSync and SyncClient: the sync key in SecretStorage, settings,
 * the sync commands and the status bar item. The device model (one slot per VS Code installation,
 * windows merged through global storage) lives in deviceSync.ts, vscode-free.
 */

/** SecretStorage only: never settings, never the log. */
const SECRET_SYNC_KEY = 'tether.sync.key';
/** Per-window slot IDs of versions before the device slot (slotLease.ts); merged once, then deleted. */
const LEGACY_SLOT_IDS_STATE = 'tether.sync.slotIds';
/** Why sync is off, when it is off on purpose; the status bar shows the text. */
type OffReason = 'no-key' | 'no-server' | 'cross-device-off';
const OFF_TEXT: Record<OffReason, string> = {
  'no-key': 'no sync key on this device',
  'no-server': 'tether.sync.serverUrl is empty',
  'cross-device-off': 'tether.crossDeviceSessions is off',
};
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
  readonly onDidChangeState: vscode.Event<SyncStateChange>;
  /** Every other slot's validated blob, with presence. Empty while sync is off. */
  readonly remote: RemoteState;
  readonly onDidChangeRemote: vscode.Event<RemoteState>;
  /**
   * `tether.crossDeviceSessions` (read here only): share this device's sessions and list the others'.
   * Off stops the sync client; this window's part of the device listing is kept either way.
   */
  readonly crossDevice: boolean;
  /** Fires when `crossDevice` changes, before the client restarts. */
  readonly onDidChangeCrossDevice: vscode.Event<boolean>;
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
  readonly onDidChangeClient: vscode.Event<SyncPort | undefined>;
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
  const stateEmitter = new vscode.EventEmitter<SyncStateChange>();
  const remoteEmitter = new vscode.EventEmitter<RemoteState>();
  const clientEmitter = new vscode.EventEmitter<SyncPort | undefined>();
  const crossDeviceEmitter = new vscode.EventEmitter<boolean>();
  /** The one read of tether.crossDeviceSessions; everything else asks `sync.crossDevice`. */
  const readCrossDevice = (): boolean => readSetting('tether.crossDeviceSessions');
  let crossDevice = readCrossDevice();
  let client: SyncPort | undefined;
  let clientSubscriptions: Array<{ dispose(): void }> = [];
  let account: AccountSlots | undefined;
  let state: SyncStateChange = { state: 'off' };
  let offReason: OffReason | undefined;
  let remote: RemoteState = { slots: [] };
  let disposed = false;
  let chain: Promise<void> = Promise.resolve();
  let restartPending = false;

  const setState = (next: SyncStateChange): void => {
    state = next;
    statusBar.update(state, remote.slots.length);
    stateEmitter.fire(state);
  };
  const setRemote = (next: RemoteState): void => {
    remote = next;
    statusBar.update(state, remote.slots.length);
    remoteEmitter.fire(remote);
  };
  const settings = (): { serverUrl: string; deviceName: string } => ({
    serverUrl: readSetting('tether.sync.serverUrl').trim(),
    deviceName: deviceName(),
  });

  /** `deleteSlot` removes the device slot from the server; `forget` also drops the local caches (the key is going away). */
  async function stopClient(deleteSlot: boolean, forget = false): Promise<void> {
    const current = client;
    client = undefined;
    account = undefined;
    clientSubscriptions.forEach((s) => s.dispose());
    clientSubscriptions = [];
    if (!current) return;
    clientEmitter.fire(undefined);
    if (deleteSlot) {
      // Other devices stop listing this one's sessions; failure only leaves a stale listing.
      await device.deleteDeviceSlot().catch((error: unknown) => log.warn(`sync: could not remove this device's slot from the server: ${String(error)}`));
    }
    await device.disconnect();
    if (forget) for (const role of ['writer', 'reader'] as const) await fs.rm(clientDir(role), { recursive: true, force: true });
  }

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

  async function start(): Promise<void> {
    const { serverUrl, deviceName } = settings();
    const key = await readKey();
    const off: OffReason | undefined = !key ? 'no-key' : !serverUrl ? 'no-server' : !crossDevice ? 'cross-device-off' : undefined;
    offReason = off;
    if (off || !key || disposed) {
      setRemote({ slots: [] });
      setState({ state: 'off', ...(off ? { detail: OFF_TEXT[off] } : {}) });
      return;
    }
    const syncKey = key;
    // ssh://host: the blobs live in files on an SSH host, over its shared connection (sshTransport.ts).
    let sshTransport: (() => SshSyncTransport) | undefined;
    try {
      if (isSshSyncUrl(serverUrl)) {
        if (!sshHosts) throw new Error('sync through an SSH host is not available here');
        const location: SshSyncLocation = parseSshSyncUrl(serverUrl);
        const resolved = sshHosts.resolve(location.hostLabel);
        const { token } = deriveSyncKeys(syncKey);
        sshTransport = () => new SshSyncTransport({ location, token, ...poolConnector(sshHosts.pool, () => resolved), log });
      }
      account = new AccountSlots({ serverUrl, syncKey, ...(sshTransport ? { api: sshTransport() } : {}) });
    } catch (error) {
      setState({ state: 'error', detail: error instanceof Error ? error.message : String(error) });
      return;
    }
    const port = device.port;
    client = port;
    clientSubscriptions = [port.onDidChangeState(setState), port.onDidChangeRemote(setRemote)];
    clientEmitter.fire(port);
    await device.connect(
      (slotId, role) => new SyncClient({ serverUrl, syncKey, slotId, deviceName, stateDir: clientDir(role), log, ...(sshTransport ? { transport: sshTransport() } : {}) }),
      account.legacySlots(legacyDir, () => context.globalState.get<string[]>(LEGACY_SLOT_IDS_STATE, [])),
    );
  }

  /** Applies the current settings and key; serialized so that quick changes never race. */
  function restart(options: { deleteSlot?: boolean } = {}): Promise<void> {
    // A restart that has not begun yet will read the newest settings and key anyway.
    if (restartPending && !options.deleteSlot) return chain;
    restartPending = true;
    chain = chain
      .then(async () => {
        restartPending = false;
        await stopClient(options.deleteSlot ?? false);
        if (!disposed) await start();
      })
      .catch((error: unknown) => {
        log.error(`sync: ${error instanceof Error ? error.message : String(error)}`);
        setState({ state: 'error', detail: error instanceof Error ? error.message : String(error) });
      });
    return chain;
  }

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

    const current = settings().serverUrl;
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
      await restartAfter(async () => {
        await stopClient(existing !== undefined, true);
        await context.secrets.store(SECRET_SYNC_KEY, keyText);
      });
    }
    await writeSetting('tether.sync.serverUrl', serverUrl.trim());
    const where = isSshSyncUrl(serverUrl) ? parseSshSyncUrl(serverUrl).display : `server ${new URL(serverUrl.trim()).origin}`;
    log.info(`sync: set up with ${where}${picked.action === 'create' ? ' and a new sync key' : ''}`);
    await restart();
    if (!crossDevice) {
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
    await restartAfter(async () => {
      await stopClient(true, true);
      await context.secrets.delete(SECRET_SYNC_KEY);
    });
    log.info('sync: signed out on this device');
  }

  /** Runs `work` inside the restart chain, then applies the resulting settings. */
  function restartAfter(work: () => Promise<void>): Promise<void> {
    chain = chain.then(work).catch((error: unknown) => log.error(`sync: ${String(error)}`));
    return restart();
  }

  context.subscriptions.push(
    statusBar,
    stateEmitter,
    remoteEmitter,
    clientEmitter,
    crossDeviceEmitter,
    registerCommand(Commands.SetUpSync, setUpSync),
    registerCommand(Commands.ShowSyncKey, showSyncKey),
    registerCommand(Commands.SignOutSync, signOutSync),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!affectsSetting(event, ...WATCHED_SETTINGS)) return;
      const nowCrossDevice = readCrossDevice();
      // Turning sharing off removes this device's listing from the others.
      const deleteSlot = crossDevice && !nowCrossDevice;
      const changed = crossDevice !== nowCrossDevice;
      crossDevice = nowCrossDevice;
      if (changed) crossDeviceEmitter.fire(crossDevice);
      void restart({ deleteSlot });
    }),
    // Another window of this machine set up or signed out.
    context.secrets.onDidChange((event) => {
      if (event.key === SECRET_SYNC_KEY) void restart();
    }),
  );

  const sync: TetherSync = {
    get state() {
      return state;
    },
    get remote() {
      return remote;
    },
    get configured() {
      return state.state !== 'off' || offReason === 'cross-device-off';
    },
    onDidChangeState: stateEmitter.event,
    onDidChangeRemote: remoteEmitter.event,
    get crossDevice() {
      return crossDevice;
    },
    onDidChangeCrossDevice: crossDeviceEmitter.event,
    device,
    forgetDevice: async (slotId) => {
      if (!account) throw new Error('sync is not running on this device');
      await account.deleteSlot(slotId);
    },
    publishTombstone: (sessionId, killedAt) => device.recordTombstone(sessionId, killedAt),
    get client() {
      return client;
    },
    onDidChangeClient: clientEmitter.event,
    // Returns a promise (vscode.Disposable allows any) so a deactivate() can wait for the stop.
    dispose: () => {
      disposed = true;
      chain = chain.then(() => stopClient(false)).finally(() => device.dispose());
      return chain;
    },
  };
  context.subscriptions.push(sync);
  void restart();
  return sync;
}
