/**
 * The cross-device half of a tab's life, free of VS Code: publishing this slot's manifest,
 * listing what other devices have open, deciding whether a close may kill, and publishing the
 * tombstone once the host confirmed a kill (docs/architecture.md, Closing and the last device).
 */
import type { KillOutcome } from '../multiplexer/multiplexer';
import type { Logger } from '../common/logger';
import type { SessionEntry } from './blob';
import { Emitter, type Event } from '../common/emitter';
import { DeviceGroup, LastDeviceVerdict, listText, liveOnOtherDevices, manifestAllowsKill, type RemoteSlotView, slotsListing, tombstonedIds } from './liveSessions';
import type { RemoteState, SyncClient, SyncState } from './syncClient';

/** The part of a sync client that cross-device sessions use (SyncClient satisfies it). */
export type SyncPort = Pick<SyncClient, 'slotId' | 'state' | 'getRemoteState' | 'onDidChangeRemote' | 'onDidChangeState' | 'publish' | 'publishTombstone'>;

/** What closing needs from a tab's session: the kill that the host confirms with a sentinel. */
export interface KillableSession {
  readonly id: string;
  kill(options?: { force?: boolean }): Promise<KillOutcome>;
  detach(): void;
}

export type CloseResult =
  | { readonly action: 'killed' }
  | {
      readonly action: 'detached';
      readonly why: string;
      /** The host refused the kill: another client is attached (the manifest check passed). */
      readonly refused?: boolean;
      /** Devices (or windows of this device) that still use the session, for the message. */
      readonly devices?: readonly string[];
    };

export interface RemoteTombstone {
  readonly id: string;
  readonly deviceName: string;
}

export interface CrossDeviceOptions {
  log: Logger;
  /** A handle that can kill a session no tab here holds (maxClients 0 on the host). */
  detachedSession?: (entry: SessionEntry) => KillableSession;
  /** Remote knowledge older than this cannot clear a kill while the stream is down. */
  maxStalenessMs?: number;
  now?: () => number;
  /** This device's other windows and workspaces that list a session (DeviceSync.holders). */
  localHolders?: (id: string) => readonly string[];
  /** Devices not seen for longer than this no longer block a close (tether.sync.staleDeviceDays). */
  staleAfterMs?: () => number | undefined;
  /** With cross-device sessions off: what other devices listed when sync last ran (DeviceSync). */
  lastKnown?: () => { savedAt: number; slots: readonly RemoteSlotView[] } | undefined;
}

export class CrossDeviceSessions {
  private client: SyncPort | undefined;
  private clientListeners: { dispose(): void }[] = [];
  private enabled = true;
  private lastFreshAt: number | undefined;
  private local: readonly SessionEntry[] = [];
  private readonly ownTombstones = new Map<string, number>();
  private seenTombstones = new Set<string>();
  /** Sessions we detached from because another device used them: whoever leaves last kills. */
  private readonly watched = new Map<string, { entry: SessionEntry; busy: boolean }>();
  private readonly changeEmitter = new Emitter<void>();
  private readonly tombstoneEmitter = new Emitter<RemoteTombstone>();
  /** Fires when the listing, presence or sync state changes. */
  readonly onDidChange: Event<void> = this.changeEmitter.event;
  /** Fires once for each session another device ended (or found gone). */
  readonly onRemoteTombstone: Event<RemoteTombstone> = this.tombstoneEmitter.event;
  private readonly now: () => number;

  constructor(private readonly options: CrossDeviceOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Connects to a (started or starting) sync client, or to none when sync is off. */
  useClient(client: SyncPort | undefined): void {
    for (const listener of this.clientListeners) listener.dispose();
    this.clientListeners = [];
    this.client = client;
    this.lastFreshAt = undefined;
    this.seenTombstones = new Set();
    if (client) {
      this.clientListeners.push(
        client.onDidChangeRemote((state) => this.remoteChanged(state)),
        client.onDidChangeState((change) => {
          if (change.state === 'live') {
            this.lastFreshAt = this.now();
            this.recheckWatched();
          }
          this.changeEmitter.fire();
        }),
      );
      if (client.state.state === 'live') this.lastFreshAt = this.now();
      this.remoteChanged(client.getRemoteState(), true);
      this.republish();
    }
    this.changeEmitter.fire();
  }

  get syncState(): SyncState {
    return this.client?.state.state ?? 'off';
  }

  get isEnabled(): boolean {
    return this.enabled;
  }

  get slotId(): string | undefined {
    return this.client?.slotId;
  }

  /** The Cross-Device Sessions toggle: off publishes nothing (withdrawing what was there). */
  setEnabled(enabled: boolean): void {
    if (this.enabled === enabled) return;
    this.enabled = enabled;
    this.republish();
    this.changeEmitter.fire();
  }

  /**
   * This slot's live persistent sessions, including ones whose window is closed but expects them back.
   * Returns what is published: `sessions` minus the ones this device ended (the manifest's one filter).
   */
  publish(sessions: readonly SessionEntry[]): readonly SessionEntry[] {
    const local = sessions.filter((session) => !this.ownTombstones.has(session.id));
    // Called on every tab event (a reattach, a cwd refresh that found the same directories): an equal
    // list writes nothing. The forced paths (a new client, the toggle) call republish() themselves.
    if (JSON.stringify(local) === JSON.stringify(this.local)) return this.local;
    this.local = local;
    this.republish();
    return this.local;
  }

  liveOnOtherDevices(openHere: ReadonlySet<string>): DeviceGroup[] {
    if (!this.client || !this.enabled) return [];
    const own = [...this.ownTombstones.keys()].map((id) => ({ id }));
    return liveOnOtherDevices(this.client.getRemoteState().slots, this.client.slotId, openHere, own);
  }

  closeVerdict(id: string): LastDeviceVerdict {
    const live = this.syncState === 'live';
    return manifestAllowsKill({
      crossDevice: this.enabled,
      syncConfigured: this.client !== undefined,
      syncHealth: this.syncState,
      remoteFreshAt: live ? this.now() : this.lastFreshAt,
      now: this.now(),
      maxStalenessMs: this.options.maxStalenessMs ?? 30_000,
      slots: this.client?.getRemoteState().slots ?? [],
      ownSlotId: this.client?.slotId ?? '',
      id,
      localHolders: this.options.localHolders?.(id) ?? [],
      staleAfterMs: this.options.staleAfterMs?.(),
      lastKnown: this.enabled ? undefined : this.options.lastKnown?.(),
    });
  }

  /**
   * Closes a tab's session: kills it only when no other device lists it and the host reports no
   * other client (checked by the kill itself); otherwise, or on any doubt, only detaches.
   */
  async close(session: KillableSession, entry?: SessionEntry): Promise<CloseResult> {
    const verdict = this.closeVerdict(session.id);
    let result: CloseResult;
    if (!verdict.kill) {
      session.detach();
      this.options.log.info(`close: detached from ${session.id}: ${verdict.why}`);
      result = { action: 'detached', why: verdict.why, ...(verdict.devices ? { devices: verdict.devices } : {}) };
    } else {
      result = await this.kill(session);
    }
    if (result.action === 'detached') {
      // We no longer use it: withdraw it now, so the other device's last-device check can pass.
      this.local = this.local.filter((candidate) => candidate.id !== session.id);
      this.republish();
      if (entry) this.watch(entry);
    }
    return result;
  }

  /**
   * The deliberate kill: still believed only on the host's sentinel. `force` kills even with other
   * clients attached (the user confirmed "Kill anyway"); it still needs the sentinel.
   */
  async kill(session: KillableSession, options: { force?: boolean } = {}): Promise<CloseResult> {
    const outcome = await session.kill(options.force ? { force: true } : undefined);
    if (!outcome.killed) {
      const devices = outcome.reason === 'in-use' ? this.attachedDevices(session.id, outcome) : [];
      const why =
        outcome.reason !== 'in-use'
          ? 'the host did not confirm the kill'
          : devices.length > 0
            ? `it is attached on ${listText(devices)}`
            : `${outcome.clients && outcome.clients > 1 ? `${outcome.clients} other clients are` : 'another client is'} attached on the host`;
      this.options.log.info(`close: detached from ${session.id}: ${why}`);
      return { action: 'detached', why, refused: outcome.reason === 'in-use', devices };
    }
    this.ended(session.id);
    return { action: 'killed' };
  }

  /** Who holds a session the host refused to kill: the host's own answer, else the listings. */
  private attachedDevices(id: string, outcome: KillOutcome): string[] {
    const fromHost = (outcome as { attachedDevices?: unknown }).attachedDevices;
    if (Array.isArray(fromHost) && fromHost.length > 0) return fromHost.filter((name): name is string => typeof name === 'string');
    const listed = this.client ? slotsListing(this.client.getRemoteState().slots, this.client.slotId, id).map((slot) => slot.deviceName) : [];
    return [...listed, ...(this.options.localHolders?.(id) ?? [])];
  }

  /** A probe or a sentinel confirmed that a session is gone: every device drops it. */
  ended(id: string): void {
    this.ownTombstones.set(id, this.now());
    this.local = this.local.filter((session) => session.id !== id);
    this.client?.publishTombstone(id);
    this.republish();
    this.changeEmitter.fire();
  }

  /**
   * Two devices that close at once each see the other's listing and both detach. Each remembers the
   * session, and when the last listing of it disappears without a tombstone, it runs the kill again
   * (host-checked with no client of ours attached), so nothing is left running with no device listing it.
   */
  private watch(entry: SessionEntry): void {
    if (!this.options.detachedSession || !this.client || !this.enabled) return;
    this.watched.set(entry.id, { entry, busy: false });
    this.recheckWatched();
  }

  private recheckWatched(): void {
    if (!this.client) return;
    const slots = this.client.getRemoteState().slots;
    const dead = tombstonedIds(slots);
    for (const [id, watch] of this.watched) {
      if (dead.has(id) || this.ownTombstones.has(id) || this.local.some((session) => session.id === id)) {
        this.watched.delete(id);
        continue;
      }
      if (watch.busy || !this.closeVerdict(id).kill) continue;
      watch.busy = true;
      void this.options.detachedSession!(watch.entry).kill().then(
        (outcome) => {
          this.watched.delete(id);
          if (outcome.killed) {
            this.options.log.info(`close: ${id} killed after the last device let go`);
            this.ended(id);
          }
        },
        () => this.watched.delete(id),
      );
    }
  }

  dispose(): void {
    this.watched.clear();
    this.useClient(undefined);
    this.changeEmitter.dispose();
    this.tombstoneEmitter.dispose();
  }

  private republish(): void {
    this.client?.publish(this.enabled ? this.local : []);
  }

  private remoteChanged(state: RemoteState, initial = false): void {
    if (this.client?.state.state === 'live') this.lastFreshAt = this.now();
    for (const [id, deviceName] of tombstonedIds(state.slots)) {
      if (this.seenTombstones.has(id)) continue;
      this.seenTombstones.add(id);
      // Tombstones already on the server when we start still close matching tabs (restored ones).
      if (!this.ownTombstones.has(id)) this.tombstoneEmitter.fire({ id, deviceName });
    }
    this.recheckWatched();
    if (!initial) this.changeEmitter.fire();
  }
}
