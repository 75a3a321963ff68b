/**
 * The sync client's life in one window, free of VS Code: it runs while sync is set up (a key, a
 * server URL) and sharing is on; restarts are serialized, so quick changes of settings or key never
 * race; it knows why it is off (so "sync is set up" is a state, not a reading of the status text);
 * and it carries the state and remote listing that the status bar and the views show.
 * src/editor/syncController.ts reads the settings and SecretStorage, runs the commands and draws
 * the status bar around it.
 */
import { Emitter, type Event } from '../common/emitter';
import type { Logger } from '../common/logger';
import type { DeviceClientFactory, DeviceSync, LegacySlots, SyncPort } from './deviceSync';
import type { RemoteState, SyncStateChange } from './syncClient';

/** Why sync is off when it is off on purpose. */
export type SyncOffReason = 'no-key' | 'no-server' | 'cross-device-off';

/** The status bar's text for each reason. */
export const SYNC_OFF_TEXT: Readonly<Record<SyncOffReason, string>> = {
  'no-key': 'no sync key on this device',
  'no-server': 'tether.sync.serverUrl is empty',
  'cross-device-off': 'tether.crossDeviceSessions is off',
};

/** What a running client needs for a server URL and key: the account's slot API and a client per role. */
export interface SyncConnection {
  readonly account: { deleteSlot(slotId: string): Promise<void> };
  readonly clients: DeviceClientFactory;
  /** The per-window slots of older versions, merged into the device slot once. */
  readonly legacy?: LegacySlots;
}

export interface SyncRunnerOptions {
  readonly device: Pick<DeviceSync, 'port' | 'connect' | 'disconnect' | 'deleteDeviceSlot' | 'dispose'>;
  readonly log: Logger;
  /** The stored sync key; undefined when there is none or it is unusable (the caller logs why). */
  readKey(): Promise<Uint8Array | undefined>;
  /** The server URL (trimmed; empty for none) and this device's name, read at each start. */
  settings(): { serverUrl: string; deviceName: string };
  /** tether.crossDeviceSessions when the runner is built; later changes come through `settingsChanged`. */
  readonly crossDevice: boolean;
  /** The account and clients for a server URL; throws (with a message for people) when it cannot be used. */
  connection(serverUrl: string, syncKey: Uint8Array, deviceName: string): SyncConnection;
  /** Drops the account's local caches (the key is going away). */
  forgetCaches?(): Promise<void>;
}

export class SyncRunner {
  private stateValue: SyncStateChange = { state: 'off' };
  private offReason: SyncOffReason | undefined;
  private remoteValue: RemoteState = { slots: [] };
  private clientValue: SyncPort | undefined;
  private clientSubscriptions: Array<{ dispose(): void }> = [];
  private account: SyncConnection['account'] | undefined;
  private crossDeviceValue: boolean;
  private disposed = false;
  private chain: Promise<void> = Promise.resolve();
  private restartPending = false;
  private readonly stateEmitter = new Emitter<SyncStateChange>();
  private readonly remoteEmitter = new Emitter<RemoteState>();
  private readonly clientEmitter = new Emitter<SyncPort | undefined>();
  private readonly crossDeviceEmitter = new Emitter<boolean>();
  readonly onDidChangeState: Event<SyncStateChange> = this.stateEmitter.event;
  readonly onDidChangeRemote: Event<RemoteState> = this.remoteEmitter.event;
  /** The running client came or went (CrossDeviceSessions.useClient follows it). */
  readonly onDidChangeClient: Event<SyncPort | undefined> = this.clientEmitter.event;
  /** `crossDevice` changed, told before the client restarts. */
  readonly onDidChangeCrossDevice: Event<boolean> = this.crossDeviceEmitter.event;

  constructor(private readonly options: SyncRunnerOptions) {
    this.crossDeviceValue = options.crossDevice;
  }

  get state(): SyncStateChange {
    return this.stateValue;
  }

  get remote(): RemoteState {
    return this.remoteValue;
  }

  /** The running client (the device's port), undefined while sync is off. */
  get client(): SyncPort | undefined {
    return this.clientValue;
  }

  get crossDevice(): boolean {
    return this.crossDeviceValue;
  }

  /** Sync is set up (a key and a server URL), whether or not it runs: it runs, or only sharing is off. */
  get configured(): boolean {
    return this.stateValue.state !== 'off' || this.offReason === 'cross-device-off';
  }

  /** Settings changed (the server URL, the device name or sharing): apply them. Turning sharing off deletes this device's slot. */
  settingsChanged(crossDevice: boolean): Promise<void> {
    const deleteSlot = this.crossDeviceValue && !crossDevice;
    const changed = this.crossDeviceValue !== crossDevice;
    this.crossDeviceValue = crossDevice;
    if (changed) this.crossDeviceEmitter.fire(crossDevice);
    return this.restart({ deleteSlot });
  }

  /** Applies the current settings and key; serialized so that quick changes never race. */
  restart(options: { deleteSlot?: boolean } = {}): Promise<void> {
    // A restart that has not begun yet will read the newest settings and key anyway.
    if (this.restartPending && !options.deleteSlot) return this.chain;
    this.restartPending = true;
    this.chain = this.chain
      .then(async () => {
        this.restartPending = false;
        await this.stop({ deleteSlot: options.deleteSlot ?? false });
        if (!this.disposed) await this.start();
      })
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        this.options.log.error(`sync: ${message}`);
        this.setState({ state: 'error', detail: message });
      });
    return this.chain;
  }

  /** Runs `work` inside the restart chain (a key change, a sign-out), then applies the resulting settings. */
  restartAfter(work: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(work).catch((error: unknown) => this.options.log.error(`sync: ${String(error)}`));
    return this.restart();
  }

  /**
   * Stops the client. `deleteSlot` removes the device slot from the server; `forget` also drops the
   * local caches (the key is going away). Call it inside `restartAfter`.
   */
  async stop(options: { deleteSlot: boolean; forget?: boolean }): Promise<void> {
    const current = this.clientValue;
    this.clientValue = undefined;
    this.account = undefined;
    this.clientSubscriptions.forEach((subscription) => subscription.dispose());
    this.clientSubscriptions = [];
    if (!current) return;
    this.clientEmitter.fire(undefined);
    if (options.deleteSlot) {
      // Other devices stop listing this one's sessions; failure only leaves a stale listing.
      await this.options.device.deleteDeviceSlot().catch((error: unknown) => this.options.log.warn(`sync: could not remove this device's slot from the server: ${String(error)}`));
    }
    await this.options.device.disconnect();
    if (options.forget) await this.options.forgetCaches?.();
  }

  /** Deletes another device's slot from the server (Forget Device). */
  async forgetDevice(slotId: string): Promise<void> {
    if (!this.account) throw new Error('sync is not running on this device');
    await this.account.deleteSlot(slotId);
  }

  /** Stops the client and the device; resolves when done. Nothing restarts afterwards. */
  dispose(): Promise<void> {
    this.disposed = true;
    // Nobody listens any more: the stop below tells no one, as when the editor's emitters went first.
    for (const emitter of [this.stateEmitter, this.remoteEmitter, this.clientEmitter, this.crossDeviceEmitter]) emitter.dispose();
    this.chain = this.chain.then(() => this.stop({ deleteSlot: false })).finally(() => this.options.device.dispose());
    return this.chain;
  }

  private async start(): Promise<void> {
    const { serverUrl, deviceName } = this.options.settings();
    const key = await this.options.readKey();
    const off: SyncOffReason | undefined = !key ? 'no-key' : !serverUrl ? 'no-server' : !this.crossDeviceValue ? 'cross-device-off' : undefined;
    this.offReason = off;
    if (off || !key || this.disposed) {
      this.setRemote({ slots: [] });
      this.setState({ state: 'off', ...(off ? { detail: SYNC_OFF_TEXT[off] } : {}) });
      return;
    }
    let connection: SyncConnection;
    try {
      connection = this.options.connection(serverUrl, key, deviceName);
    } catch (error) {
      this.setState({ state: 'error', detail: error instanceof Error ? error.message : String(error) });
      return;
    }
    this.account = connection.account;
    const port = this.options.device.port;
    this.clientValue = port;
    this.clientSubscriptions = [port.onDidChangeState((change) => this.setState(change)), port.onDidChangeRemote((remote) => this.setRemote(remote))];
    this.clientEmitter.fire(port);
    await this.options.device.connect(connection.clients, connection.legacy);
  }

  private setState(next: SyncStateChange): void {
    this.stateValue = next;
    this.stateEmitter.fire(next);
  }

  private setRemote(next: RemoteState): void {
    this.remoteValue = next;
    this.remoteEmitter.fire(next);
  }
}
