/**
 * One device, one sync slot (docs/architecture.md, "The device model"), free of VS Code.
 *
 * A device is one VS Code installation: all its windows share one global storage folder, and every
 * window runs its own extension host with its own DeviceSync. Each window writes its *part* into
 * that folder: `part-<key>.json`, the sessions its workspace has open or will restore (a folder-less
 * window: its open tabs). A workspace that is not open keeps its part, so its sessions stay listed.
 * One window at a time holds the *writer lease* (`writer.lock`, the owner's pid, taken over when
 * that process is gone) and publishes the union of all parts to the device's one slot; the others
 * run a read-only sync client on the same slot and only contribute their part. The first writer
 * merges the per-window slots of older versions (slotLease.ts) into the device slot once and
 * deletes them from the server.
 */
import { newSessionId, isValidSessionId } from '../common/sessionId';
import type { Logger } from '../common/logger';
import { BLOB_FORMAT, pruneTombstones, type SessionEntry, type SyncBlob, type Tombstone, validateBlob } from './blob';
import type { DeviceFiles } from './deviceFiles';
import { Emitter, type Event } from '../common/emitter';
import { type RemoteSlotView, tombstonedIds } from './liveSessions';
import { processAlive } from './slotLease';
import type { RemoteState, SyncClient, SyncStateChange } from './syncClient';
import { ReasonError } from '../common/reasonError';

/** What closing and the views need from a sync connection; SyncClient and DeviceSync.port satisfy it. */
export type SyncPort = Pick<SyncClient, 'slotId' | 'state' | 'getRemoteState' | 'onDidChangeRemote' | 'onDidChangeState' | 'publish' | 'publishTombstone'>;

/** A sync client for the device slot; the writer publishes, a reader never does. */
export type DeviceClient = SyncPort & Pick<SyncClient, 'start' | 'stop' | 'deleteOwnSlot'> & Partial<Pick<SyncClient, 'flush'>>;
export type DeviceRole = 'writer' | 'reader';
export type DeviceClientFactory = (slotId: string, role: DeviceRole) => DeviceClient;

export interface WindowIdentity {
  /** `workspace`: the part outlives the window; `window` (no folder): it goes with the window. */
  readonly kind: 'workspace' | 'window';
  /** Lowercase letters, digits and dashes; stable for a workspace (a hash of its URI). */
  readonly key: string;
  /** For people: the workspace's name, or "window". */
  readonly label: string;
}

export type PartKind = 'workspace' | 'window' | 'legacy';

export interface DevicePart {
  readonly key: string;
  readonly kind: PartKind;
  readonly label: string;
  /** The extension host that wrote it last; 0 for the migrated part. */
  readonly pid: number;
  readonly updatedAt: number;
  readonly sessions: readonly SessionEntry[];
  readonly tombstones: readonly Tombstone[];
}

/** Another window or workspace of this device, for "Other windows on this device". */
export interface DeviceWindow {
  readonly key: string;
  readonly kind: PartKind;
  readonly label: string;
  /** True while a window has it open. */
  readonly open: boolean;
  readonly sessions: readonly SessionEntry[];
}

/** The per-window slots that versions before the device slot used (slotLease.ts). */
export interface LegacySlots {
  ids(): Promise<string[]>;
  /** The slot's listing on the server, undefined when it has none; throws when it cannot be read. */
  read(slotId: string): Promise<{ sessions: readonly SessionEntry[]; tombstones: readonly Tombstone[] } | undefined>;
  /** Deletes the slot on the server, then its local cache and lock. */
  remove(slotId: string): Promise<void>;
}

export interface DeviceSyncOptions {
  readonly files: DeviceFiles;
  readonly window: WindowIdentity;
  readonly log: Logger;
  readonly legacy?: LegacySlots;
  /** How often parts and the lease are looked at; default 1000 ms. */
  readonly pollMs?: number;
  readonly pid?: number;
  readonly isAlive?: (pid: number) => boolean;
  readonly now?: () => number;
}

const DEVICE_FILE = 'device.json';
const LOCK_FILE = 'writer.lock';
const LISTINGS_FILE = 'listings.json';
const LEGACY_KEY = 'legacy';
const FORMAT = 1;
const MAX_MIGRATED = 256;
/** The writer renews its lease this often; one not renewed for LEASE_STALE_MS is taken over. */
const LEASE_BEAT_MS = 10_000;
const LEASE_STALE_MS = 60_000;

export type DeviceSyncErrorReason = 'bad-window-key' | 'device-file';

export class DeviceSyncError extends ReasonError<DeviceSyncErrorReason> {
  override readonly name = 'DeviceSyncError';
}

const partName = (key: string): string => `part-${key}.json`;

/** Rebuilds a part from untrusted JSON with the blob validator; undefined when unusable. */
export function parsePart(text: string, now: number): DevicePart | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || raw.format !== FORMAT) return undefined;
  const { key, kind, label, pid, updatedAt } = raw;
  if (typeof key !== 'string' || !/^[a-z0-9-]{1,64}$/.test(key)) return undefined;
  if (kind !== 'workspace' && kind !== 'window' && kind !== 'legacy') return undefined;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 0) return undefined;
  if (typeof updatedAt !== 'number' || !Number.isFinite(updatedAt)) return undefined;
  try {
    const { blob } = validateBlob({ format: BLOB_FORMAT, slotId: newSessionId(), deviceName: 'part', seq: 0, writtenAt: now, sessions: raw.sessions, tombstones: raw.tombstones }, { now });
    return { key, kind, label: typeof label === 'string' ? label.slice(0, 128) : key, pid, updatedAt, sessions: blob.sessions, tombstones: blob.tombstones };
  } catch {
    return undefined;
  }
}

function serializePart(part: DevicePart): string {
  return JSON.stringify({ format: FORMAT, ...part });
}

/**
 * Every session of the device: the union of the parts, minus what any part or any other device
 * tombstoned. A session in two parts is listed once (the newer part's entry).
 */
export function unionOfParts(parts: readonly DevicePart[], remoteDead: ReadonlySet<string> = new Set()): SessionEntry[] {
  const dead = new Set(remoteDead);
  for (const part of parts) for (const tombstone of part.tombstones) dead.add(tombstone.id);
  const byId = new Map<string, { entry: SessionEntry; at: number }>();
  for (const part of parts) {
    for (const entry of part.sessions) {
      if (dead.has(entry.id)) continue;
      const seen = byId.get(entry.id);
      if (!seen || part.updatedAt > seen.at) byId.set(entry.id, { entry, at: part.updatedAt });
    }
  }
  return [...byId.values()].map((value) => value.entry).sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
}

/** The newest tombstone per session across parts, pruned like a blob's. */
export function tombstonesOfParts(parts: ReadonlyArray<Pick<DevicePart, 'tombstones'>>, now: number): Tombstone[] {
  const byId = new Map<string, number>();
  for (const part of parts) for (const t of part.tombstones) byId.set(t.id, Math.max(byId.get(t.id) ?? 0, t.killedAt));
  return pruneTombstones([...byId].map(([id, killedAt]) => ({ id, killedAt })).sort((a, b) => a.killedAt - b.killedAt), now);
}

/** What other devices listed when sync last ran, so a close can respect them with sync off (issue 12, item 9). */
interface SavedListings {
  format: typeof FORMAT;
  savedAt: number;
  slots: Array<{ slotId: string; deviceName: string; online?: boolean; lastSeen?: number; blob: SyncBlob }>;
}

export class DeviceSync {
  private readonly pid: number;
  private readonly isAlive: (pid: number) => boolean;
  private readonly now: () => number;
  private own: { sessions: readonly SessionEntry[]; tombstones: Tombstone[] } = { sessions: [], tombstones: [] };
  private ownKnown = false;
  private parts = new Map<string, DevicePart>();
  private partsText = '';
  private writeChain: Promise<void> = Promise.resolve();
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private slotIdValue: string | undefined;
  private client: DeviceClient | undefined;
  private clientRole: DeviceRole | undefined;
  private factory: DeviceClientFactory | undefined;
  private clientListeners: Array<{ dispose(): void }> = [];
  private lastPublished: string | undefined;
  private readonly publishedTombstones = new Set<string>();
  private savedListings: SavedListings | undefined;
  private switching: Promise<void> | undefined;
  private disposed = false;
  private legacy: LegacySlots | undefined;
  private lastBeat = 0;
  private readonly stateEmitter = new Emitter<SyncStateChange>();
  private readonly remoteEmitter = new Emitter<RemoteState>();
  private readonly partsEmitter = new Emitter<void>();
  private readonly roleEmitter = new Emitter<DeviceRole | undefined>();
  /** Other windows' or workspaces' parts changed. */
  readonly onDidChangeParts: Event<void> = this.partsEmitter.event;
  /** This window became (or stopped being) the one that writes the device slot. */
  readonly onDidChangeRole: Event<DeviceRole | undefined> = this.roleEmitter.event;

  constructor(private readonly options: DeviceSyncOptions) {
    if (!/^[a-z0-9-]{1,64}$/.test(options.window.key) || options.window.key === LEGACY_KEY) {
      throw new DeviceSyncError('bad-window-key', `window key ${JSON.stringify(options.window.key.slice(0, 40))} is not usable`);
    }
    this.pid = options.pid ?? process.pid;
    this.isAlive = options.isAlive ?? processAlive;
    this.now = options.now ?? Date.now;
  }

  get role(): DeviceRole | undefined {
    return this.clientRole;
  }

  get window(): WindowIdentity {
    return this.options.window;
  }

  /** The device's slot ID, created once per global storage folder (not synced). */
  async deviceSlotId(): Promise<string> {
    if (this.slotIdValue) return this.slotIdValue;
    for (let attempt = 0; attempt < 3; attempt++) {
      const device = await this.readDevice();
      if (device) return (this.slotIdValue = device.slotId);
      const slotId = newSessionId();
      if (await this.options.files.createExclusive(DEVICE_FILE, JSON.stringify({ format: FORMAT, slotId, migrated: [] }))) {
        this.options.log.info(`device: this device's sync slot is ${slotId} (new)`);
        return (this.slotIdValue = slotId);
      }
    }
    throw new DeviceSyncError('device-file', `${DEVICE_FILE} in global storage is unreadable; delete it to start a new device slot`);
  }

  /** Starts following the other parts (and the lease, once connected). Idempotent. */
  async open(): Promise<void> {
    if (this.pollTimer || this.disposed) return;
    this.savedListings = await this.readListings();
    await this.poll();
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs ?? 1000);
    this.pollTimer.unref?.();
  }

  /** This window's sessions (its open tabs, which its snapshot restores). */
  setWindowSessions(sessions: readonly SessionEntry[]): void {
    const dead = new Set(this.own.tombstones.map((t) => t.id));
    this.own = { ...this.own, sessions: sessions.filter((s) => !dead.has(s.id)) };
    this.ownKnown = true;
    void this.writeOwnPart();
  }

  /** A kill confirmed by the host (or a probe found the session gone): every device drops it. */
  recordTombstone(id: string, killedAt: number = this.now()): void {
    if (!isValidSessionId(id)) return;
    this.own = {
      sessions: this.own.sessions.filter((s) => s.id !== id),
      tombstones: pruneTombstones([...this.own.tombstones.filter((t) => t.id !== id), { id, killedAt }], this.now()),
    };
    void this.writeOwnPart();
  }

  /** Writes the part now (and publishes, when this window is the writer); for tests and shutdown. */
  async flush(): Promise<void> {
    await this.writeChain;
    await this.poll();
  }

  /** Labels of this device's other windows and workspaces that list a session (the close rule). */
  holders(id: string): string[] {
    const result: string[] = [];
    for (const part of this.parts.values()) {
      if (part.key === this.options.window.key || !part.sessions.some((s) => s.id === id)) continue;
      if (part.tombstones.some((t) => t.id === id) || this.own.tombstones.some((t) => t.id === id)) continue;
      result.push(describePart(part, this.partOpen(part)));
    }
    return result;
  }

  /** The other windows and workspaces of this device with their sessions. */
  otherWindows(): DeviceWindow[] {
    const dead = new Set(tombstonesOfParts([...this.parts.values()], this.now()).map((t) => t.id));
    return [...this.parts.values()]
      .filter((part) => part.key !== this.options.window.key)
      .map((part) => ({ key: part.key, kind: part.kind, label: part.label, open: this.partOpen(part), sessions: part.sessions.filter((s) => !dead.has(s.id)) }))
      .filter((window) => window.sessions.length > 0)
      .sort((a, b) => Number(b.open) - Number(a.open) || a.label.localeCompare(b.label));
  }

  /** Other devices' listings as last seen while sync ran (kept on disk), for a close with sync off. */
  lastKnownSlots(): { savedAt: number; slots: RemoteSlotView[] } | undefined {
    return this.savedListings ? { savedAt: this.savedListings.savedAt, slots: this.savedListings.slots } : undefined;
  }

  /** The stable port CrossDeviceSessions and the views use; it follows role changes. */
  readonly port: SyncPort = (() => {
    const self = this;
    return {
      get slotId() {
        return self.slotIdValue ?? '';
      },
      get state() {
        return self.client?.state ?? { state: 'off' as const };
      },
      getRemoteState: () => self.client?.getRemoteState() ?? { slots: [] },
      onDidChangeRemote: this.remoteEmitter.event,
      onDidChangeState: this.stateEmitter.event,
      // Parts follow the tabs (setWindowSessions); the union is published by the writer.
      publish: () => undefined,
      publishTombstone: (id: string, killedAt?: number) => self.recordTombstone(id, killedAt),
    };
  })();

  /** Runs a sync client on the device slot: the writer if the lease is free, else a reader. */
  async connect(factory: DeviceClientFactory, legacy?: LegacySlots): Promise<void> {
    await this.disconnect();
    this.factory = factory;
    this.legacy = legacy ?? this.options.legacy;
    await this.deviceSlotId();
    await this.open();
    const role = (await this.tryLease()) ? 'writer' : 'reader';
    await this.startClient(role);
  }

  /** Stops the client and gives up the lease; parts keep being written. */
  async disconnect(): Promise<void> {
    this.factory = undefined;
    await this.switching;
    await this.stopClient();
    await this.releaseLease();
  }

  /** Deletes the device slot from the server (sign-out, sharing turned off). */
  async deleteDeviceSlot(): Promise<void> {
    await this.client?.deleteOwnSlot();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.disconnect();
    this.disposed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    await this.writeChain;
    // A folder-less window's tabs are not restored by anything: its part ends with it.
    if (this.options.window.kind === 'window') await this.options.files.remove(partName(this.options.window.key)).catch(() => undefined);
    for (const emitter of [this.stateEmitter, this.remoteEmitter, this.partsEmitter, this.roleEmitter]) emitter.dispose();
  }

  // ---- the client and the lease ------------------------------------------------------------

  private async startClient(role: DeviceRole): Promise<void> {
    if (!this.factory || this.disposed) return;
    const client = this.factory(this.slotIdValue!, role);
    this.client = client;
    this.clientRole = role;
    this.lastPublished = undefined;
    this.publishedTombstones.clear();
    this.clientListeners = [
      client.onDidChangeState((state) => this.stateEmitter.fire(state)),
      client.onDidChangeRemote((remote) => {
        this.remoteEmitter.fire(remote);
        void this.saveListings(remote);
        if (this.clientRole === 'writer') void this.publishUnion();
      }),
    ];
    this.options.log.info(`device: this window ${role === 'writer' ? 'writes' : 'reads'} the device slot ${this.slotIdValue}`);
    this.roleEmitter.fire(role);
    if (role === 'writer') {
      await this.migrateLegacy();
      await this.publishUnion(true);
    }
    await client.start();
    this.stateEmitter.fire(client.state);
    this.remoteEmitter.fire(client.getRemoteState());
  }

  private async stopClient(): Promise<void> {
    const client = this.client;
    const wasWriter = this.clientRole === 'writer';
    this.client = undefined;
    this.clientRole = undefined;
    this.clientListeners.forEach((listener) => listener.dispose());
    this.clientListeners = [];
    if (!client) return;
    // The writer's last change (a window closing its tabs) gets a short chance to reach the server.
    if (wasWriter && client.flush) {
      await Promise.race([client.flush().catch(() => false), new Promise((resolve) => setTimeout(resolve, 1500).unref?.())]);
    }
    await client.stop();
    this.roleEmitter.fire(undefined);
    this.stateEmitter.fire({ state: 'off' });
  }

  private async tryLease(): Promise<boolean> {
    const files = this.options.files;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await files.createExclusive(LOCK_FILE, this.lockText())) {
        this.lastBeat = this.now();
        return true;
      }
      const lock = await this.readLock();
      if (lock?.pid === this.pid) return true;
      // A live owner that still beats keeps it. A pid that is gone, or one that has not beaten for a
      // minute (a pid reused after a reboot, a hung window), loses it.
      if (lock && this.isAlive(lock.pid) && this.now() - lock.beat < LEASE_STALE_MS) return false;
      await files.remove(LOCK_FILE);
    }
    return false;
  }

  private lockText(): string {
    return JSON.stringify({ pid: this.pid, beat: this.now() });
  }

  private async readLock(): Promise<{ pid: number; beat: number } | undefined> {
    try {
      const parsed = JSON.parse((await this.options.files.read(LOCK_FILE)) ?? '{}') as { pid?: unknown; beat?: unknown; since?: unknown };
      const pid = Number(parsed.pid);
      const beat = Number(parsed.beat ?? parsed.since);
      return Number.isSafeInteger(pid) && pid > 0 ? { pid, beat: Number.isFinite(beat) ? beat : 0 } : undefined;
    } catch {
      return undefined;
    }
  }

  private async lockOwner(): Promise<number | undefined> {
    return (await this.readLock())?.pid;
  }

  /** The writer renews its lease; if another window took it meanwhile (we hung), it steps down. */
  private async keepLease(): Promise<boolean> {
    const lock = await this.readLock();
    if (lock?.pid !== this.pid) {
      this.options.log.warn('device: another window took over writing the device slot; this window reads it now');
      await this.stopClient();
      await this.startClient('reader');
      return false;
    }
    if (this.now() - this.lastBeat >= LEASE_BEAT_MS) {
      this.lastBeat = this.now();
      await this.options.files.write(LOCK_FILE, this.lockText());
    }
    return true;
  }

  private async releaseLease(): Promise<void> {
    if ((await this.lockOwner()) === this.pid) await this.options.files.remove(LOCK_FILE);
  }

  // ---- parts -------------------------------------------------------------------------------

  private ownPart(): DevicePart {
    const { kind, key, label } = this.options.window;
    return { key, kind, label, pid: this.pid, updatedAt: this.now(), sessions: this.own.sessions, tombstones: pruneTombstones(this.own.tombstones, this.now()) };
  }

  private writeOwnPart(): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.disposed || (!this.ownKnown && this.own.tombstones.length === 0)) return;
      let part = this.ownPart();
      if (!this.ownKnown) {
        // A tombstone before the restore finished: keep the sessions the part already lists.
        const dead = new Set(part.tombstones.map((t) => t.id));
        const existing = parsePart((await this.options.files.read(partName(part.key))) ?? '', this.now());
        part = { ...part, sessions: (existing?.sessions ?? []).filter((s) => !dead.has(s.id)) };
      }
      await this.options.files.write(partName(part.key), serializePart(part));
      this.parts.set(part.key, part);
      if (this.clientRole === 'writer') await this.publishUnion();
    };
    this.writeChain = this.writeChain.then(run).catch((error: unknown) => this.options.log.warn(`device: cannot write this window's part: ${(error as Error).message}`));
    return this.writeChain;
  }

  private partOpen(part: DevicePart): boolean {
    return part.kind !== 'legacy' && (part.pid === this.pid ? part.key === this.options.window.key : this.isAlive(part.pid));
  }

  private poll(): Promise<void> {
    if (!this.polling) {
      this.polling = this.doPoll()
        .catch((error: unknown) => this.options.log.warn(`device: ${(error as Error).message}`))
        .finally(() => (this.polling = undefined));
    }
    return this.polling;
  }

  private async doPoll(): Promise<void> {
    if (this.disposed) return;
    const now = this.now();
    const next = new Map<string, DevicePart>();
    for (const name of await this.options.files.list()) {
      const match = /^part-([a-z0-9-]{1,64})\.json$/.exec(name);
      if (!match) continue;
      const text = await this.options.files.read(name);
      const part = text === undefined ? undefined : parsePart(text, now);
      if (!part || part.key !== match[1]) continue;
      if (part.kind === 'window' && part.pid !== this.pid && !this.isAlive(part.pid)) {
        // A folder-less window that ended without cleaning up: nothing will restore its tabs.
        await this.options.files.remove(name);
        continue;
      }
      next.set(part.key, part);
    }
    if (this.ownKnown) next.set(this.options.window.key, { ...this.ownPart(), updatedAt: next.get(this.options.window.key)?.updatedAt ?? now });
    else if (this.parts.has(this.options.window.key) && !next.has(this.options.window.key)) next.set(this.options.window.key, this.parts.get(this.options.window.key)!);
    const text = JSON.stringify([...next.values()].filter((p) => p.key !== this.options.window.key).map((p) => [p.key, p.pid, p.sessions.map((s) => s.id), p.tombstones.map((t) => t.id), this.partOpen(p)]));
    this.parts = next;
    if (text !== this.partsText) {
      this.partsText = text;
      this.partsEmitter.fire();
    }
    if (this.factory && this.clientRole === 'reader' && !this.switching && (await this.tryLease())) {
      this.switching = this.takeOver().finally(() => (this.switching = undefined));
      await this.switching;
    } else if (this.clientRole === 'writer' && !this.switching && (await this.keepLease())) {
      await this.publishUnion();
    }
  }

  private async takeOver(): Promise<void> {
    this.options.log.info('device: the window that wrote the device slot is gone; this window takes over');
    await this.stopClient();
    await this.startClient('writer');
  }

  /** The writer publishes the union of all parts (and their tombstones) when it changed. */
  private async publishUnion(force = false): Promise<void> {
    const client = this.client;
    if (!client || this.clientRole !== 'writer') return;
    const parts = [...this.parts.values()];
    for (const tombstone of tombstonesOfParts(parts, this.now())) {
      if (this.publishedTombstones.has(tombstone.id)) continue;
      this.publishedTombstones.add(tombstone.id);
      client.publishTombstone(tombstone.id, tombstone.killedAt);
    }
    const union = unionOfParts(parts, new Set(tombstonedIds(client.getRemoteState().slots).keys()));
    const text = JSON.stringify(union);
    if (!force && text === this.lastPublished) return;
    this.lastPublished = text;
    client.publish(union);
  }

  // ---- device.json, migration, saved listings ---------------------------------------------

  private async readDevice(): Promise<{ slotId: string; migrated: string[] } | undefined> {
    const text = await this.options.files.read(DEVICE_FILE);
    if (text === undefined) return undefined;
    try {
      const parsed = JSON.parse(text) as { slotId?: unknown; migrated?: unknown };
      if (!isValidSessionId(parsed.slotId)) return undefined;
      const migrated = Array.isArray(parsed.migrated) ? parsed.migrated.filter((id): id is string => isValidSessionId(id)) : [];
      return { slotId: parsed.slotId, migrated };
    } catch {
      return undefined;
    }
  }

  /** Once per old slot: its sessions join the device (as the "earlier windows" part), then it is deleted. */
  private async migrateLegacy(): Promise<void> {
    const legacy = this.legacy;
    const device = await this.readDevice();
    if (!legacy || !device) return;
    const done = new Set(device.migrated);
    let ids: string[];
    try {
      ids = (await legacy.ids()).filter((id) => id !== device.slotId && !done.has(id));
    } catch (error) {
      this.options.log.warn(`device: cannot list earlier window slots: ${(error as Error).message}`);
      return;
    }
    if (ids.length === 0) return;
    const existing = parsePart((await this.options.files.read(partName(LEGACY_KEY))) ?? '', this.now());
    let sessions = [...(existing?.sessions ?? [])];
    let tombstones = [...(existing?.tombstones ?? [])];
    for (const id of ids) {
      try {
        const listing = await legacy.read(id);
        if (listing) {
          sessions = [...sessions.filter((s) => !listing.sessions.some((n) => n.id === s.id)), ...listing.sessions];
          tombstones = [...tombstones, ...listing.tombstones];
          const part: DevicePart = { key: LEGACY_KEY, kind: 'legacy', label: 'earlier windows', pid: 0, updatedAt: this.now(), sessions, tombstones: tombstonesOfParts([{ tombstones }], this.now()) };
          await this.options.files.write(partName(LEGACY_KEY), serializePart(part));
          this.parts.set(LEGACY_KEY, part);
        }
        await legacy.remove(id);
        done.add(id);
        this.options.log.info(`device: merged the earlier window slot ${id} (${listing?.sessions.length ?? 0} session(s)) into the device slot and deleted it`);
      } catch (error) {
        // The server is unreachable: try again when this window next becomes the writer.
        this.options.log.warn(`device: could not merge the earlier window slot ${id}: ${(error as Error).message}`);
        break;
      }
    }
    await this.options.files.write(DEVICE_FILE, JSON.stringify({ format: FORMAT, slotId: device.slotId, migrated: [...done].slice(-MAX_MIGRATED) }));
  }

  private async readListings(): Promise<SavedListings | undefined> {
    try {
      const parsed = JSON.parse((await this.options.files.read(LISTINGS_FILE)) ?? 'null') as SavedListings | null;
      if (!parsed || parsed.format !== FORMAT || !Array.isArray(parsed.slots) || typeof parsed.savedAt !== 'number') return undefined;
      const now = this.now();
      const slots: SavedListings['slots'] = [];
      for (const slot of parsed.slots) {
        try {
          const { blob } = validateBlob(slot.blob, { now });
          slots.push({ slotId: blob.slotId, deviceName: blob.deviceName, blob, ...(typeof slot.lastSeen === 'number' ? { lastSeen: slot.lastSeen } : {}) });
        } catch {
          // A damaged entry only shortens what a close with sync off respects.
        }
      }
      return { format: FORMAT, savedAt: parsed.savedAt, slots };
    } catch {
      return undefined;
    }
  }

  private async saveListings(remote: RemoteState): Promise<void> {
    const saved: SavedListings = {
      format: FORMAT,
      savedAt: this.now(),
      slots: remote.slots.map((slot) => ({ slotId: slot.slotId, deviceName: slot.deviceName, blob: slot.blob, ...(slot.lastSeen !== undefined ? { lastSeen: slot.lastSeen } : {}) })),
    };
    this.savedListings = saved;
    await this.options.files.write(LISTINGS_FILE, JSON.stringify(saved)).catch((error: unknown) => this.options.log.debug(`device: cannot save listings: ${(error as Error).message}`));
  }
}

function describePart(part: DevicePart, open: boolean): string {
  if (part.kind === 'legacy') return 'an earlier window on this device';
  if (part.kind === 'window') return 'another window on this device';
  return open ? `window "${part.label}" on this device` : `workspace "${part.label}" on this device, which will restore it`;
}
