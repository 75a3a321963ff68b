import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isValidSessionId } from '../common/sessionId';
import { type Logger, silentLogger } from '../common/logger';
import { writeFileAtomic } from './atomicFile';
import { Backoff } from './backoff';
import { BLOB_FORMAT, BlobError, cleanDisplayString, LIMITS, pruneTombstones, type SessionEntry, type SyncBlob, type Tombstone, validateBlob } from './blob';
import { Emitter, type Event } from '../common/emitter';
import { EnvelopeError, openEnvelope, sealEnvelope, SeqGuard } from './envelope';
import { deriveSyncKeys } from './syncKey';
import { frameState, unframeState } from './stateFile';
import { HttpSyncTransport } from './httpTransport';
import { type PresenceEntry, parseStoredBlob, type StoredBlob, SyncHttpError } from './syncHttp';
import type { SyncTransport } from './syncTransport';
import { type WriteOutcome, WriteScheduler } from './writeScheduler';
import { ReasonError } from '../common/reasonError';

/**
 * The sync client for one slot (docs/architecture.md, Sync key, envelope and blob; docs/protocol.md). It keeps the latest valid blob
 * of every other slot in memory and on disk, follows the server's event stream (polling while the
 * stream is down), and writes this slot's blob when the local sessions change. It never imports
 * vscode; src/editor/syncController.ts adapts it to the editor.
 */

export type SyncState = 'off' | 'connecting' | 'live' | 'offline' | 'error';

/**
 * A local change after a quiet moment is written at once; changes that follow within this long of
 * the last write's start (or while it runs) are grouped into one follow-up write (writeScheduler.ts).
 */
export const DEFAULT_WRITE_DEBOUNCE_MS = 100;

/**
 * Saves of the on-disk cache (other slots' blobs, seq floors, our own counters) are batched: at most
 * one per this interval, without fsync. Tombstones and stop() save at once, with fsync.
 */
export const DEFAULT_STATE_SAVE_DELAY_MS = 1000;

export interface RemoteSlot {
  readonly slotId: string;
  readonly deviceName: string;
  readonly blob: SyncBlob;
  /** The server's version of the slot. */
  readonly version: number;
  /** From presence events: undefined until the server has said. */
  readonly online?: boolean;
  /** Epoch milliseconds. */
  readonly lastSeen?: number;
}

export interface RemoteState {
  /** Every other slot's latest valid blob, sorted by device name. */
  readonly slots: readonly RemoteSlot[];
}

export interface SyncStateChange {
  readonly state: SyncState;
  /** Why, for the log and the status bar tooltip. */
  readonly detail?: string;
}

export interface SyncClientOptions {
  /** The sync server (http/https); ignored when `transport` is given. */
  readonly serverUrl: string;
  /** Where the blobs live when it is not the HTTP server at `serverUrl` (e.g. an SSH host, sshTransport.ts). */
  readonly transport?: SyncTransport;
  /** The 32-byte account sync key. */
  readonly syncKey: Uint8Array;
  readonly slotId: string;
  readonly deviceName: string;
  /** Where the cache and the slot's own counters live; one file per slot. */
  readonly stateDir: string;
  readonly log?: Logger;
  readonly fetch?: typeof fetch;
  /** The coalescing window for follow-up changes (not a delay on the first change). */
  readonly writeDebounceMs?: number;
  /** How long the on-disk cache may lag behind memory (it is saved in batches). */
  readonly stateSaveDelayMs?: number;
  /** How often to poll GET /v1/blobs while the stream is down. */
  readonly pollIntervalMs?: number;
  readonly reconnectInitialMs?: number;
  readonly reconnectMaxMs?: number;
  /** The stream is treated as dead after this long without a byte (the server sends heartbeats). */
  readonly streamIdleTimeoutMs?: number;
  /** Cap on one SSE event, so an endless event cannot exhaust memory. */
  readonly maxEventBytes?: number;
  /** How long the server keeps this device's stream (and presence) without a renewal; see httpTransport.ts. */
  readonly streamLeaseSeconds?: number;
  readonly maxResponseBytes?: number;
  readonly requestTimeoutMs?: number;
  readonly now?: () => number;
}

export type SyncClientErrorReason = 'bad-slot-id' | 'stopped';

export class SyncClientError extends ReasonError<SyncClientErrorReason> {
  override readonly name = 'SyncClientError';
}

const STATE_FORMAT = 1;
const MAX_CONFLICT_RETRIES = 3;

interface CachedSlot {
  readonly stored: StoredBlob;
  readonly blob: SyncBlob;
  /** When it was taken in (see SyncClient.intake); 0 for what the cache file held. */
  readonly intake?: number;
}

interface PersistedState {
  format: typeof STATE_FORMAT;
  ownSeq: number;
  ownVersion?: number;
  tombstones: Tombstone[];
  seqFloor: Record<string, number>;
  remote: Array<{ slotId: string; version: number; updatedAt?: string; data: string }>;
}


function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SyncClient {
  private readonly log: Logger;
  private readonly api: SyncTransport;
  private readonly encryptionKey: Uint8Array;
  private readonly guard = new SeqGuard();
  private readonly statePath: string;
  private readonly now: () => number;
  private readonly deviceName: string;

  private readonly remote = new Map<string, CachedSlot>();
  /** Counts slots taken in, so a list can tell the slots it can speak for (older than its start). */
  private intake = 0;
  private readonly presence = new Map<string, PresenceEntry>();
  private ownSeq = 0;
  private ownVersion: number | undefined;
  /** Successful writes of this slot so far: a list that began before the latest one cannot show it. */
  private ownWrites = 0;
  private tombstones: Tombstone[] = [];

  private localSessions: readonly SessionEntry[] | undefined;
  private localRevision = 0;
  private writtenRevision = 0;
  private readonly writes: WriteScheduler;
  private readonly writeBackoff: Backoff;

  private source: { close(): void } | undefined;
  private streamOpen = false;
  private streamGeneration = 0;
  private lastActivity = 0;
  private readonly streamBackoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private etag: string | undefined;
  private refreshing: Promise<boolean> | undefined;

  private persistChain: Promise<void> = Promise.resolve();
  private persistQueued = false;
  private persistDurable = false;
  private saveTimer: NodeJS.Timeout | undefined;

  private started = false;
  private stopped = false;
  private forgotten = false;
  private currentState: SyncStateChange = { state: 'off' };

  private readonly remoteEmitter: Emitter<RemoteState>;
  private readonly stateEmitter: Emitter<SyncStateChange>;
  /** Fires with every other slot's validated blob and presence whenever any of it changes. */
  readonly onDidChangeRemote: Event<RemoteState>;
  readonly onDidChangeState: Event<SyncStateChange>;

  constructor(private readonly options: SyncClientOptions) {
    if (!isValidSessionId(options.slotId)) throw new SyncClientError('bad-slot-id', `slot ID ${JSON.stringify(String(options.slotId).slice(0, 40))} is not a valid ID`);
    this.log = options.log ?? silentLogger;
    const keys = deriveSyncKeys(options.syncKey);
    this.encryptionKey = keys.encryptionKey;
    this.api =
      options.transport ??
      new HttpSyncTransport({
        serverUrl: options.serverUrl,
        token: keys.token,
        fetch: options.fetch,
        requestTimeoutMs: options.requestTimeoutMs,
        maxResponseBytes: options.maxResponseBytes,
        maxEventBytes: options.maxEventBytes,
        streamLeaseSeconds: options.streamLeaseSeconds,
      });
    this.statePath = path.join(options.stateDir, `sync-${options.slotId}.json`);
    this.now = options.now ?? Date.now;
    this.deviceName = cleanDisplayString(String(options.deviceName).slice(0, LIMITS.deviceName), LIMITS.deviceName) ?? 'unnamed device';
    this.writeBackoff = new Backoff({ initialMs: options.reconnectInitialMs ?? 1000, maxMs: options.reconnectMaxMs ?? 60_000 });
    this.streamBackoff = new Backoff({ initialMs: options.reconnectInitialMs ?? 1000, maxMs: options.reconnectMaxMs ?? 60_000 });
    this.writes = new WriteScheduler(() => this.doWrite(), { windowMs: options.writeDebounceMs ?? DEFAULT_WRITE_DEBOUNCE_MS });
    const onListenerError = (error: unknown): void => this.log.error(`sync listener failed: ${errorText(error)}`);
    this.remoteEmitter = new Emitter(onListenerError);
    this.stateEmitter = new Emitter(onListenerError);
    this.onDidChangeRemote = this.remoteEmitter.event;
    this.onDidChangeState = this.stateEmitter.event;
  }

  get slotId(): string {
    return this.options.slotId;
  }

  get state(): SyncStateChange {
    return this.currentState;
  }

  getRemoteState(): RemoteState {
    const slots: RemoteSlot[] = [];
    for (const [slotId, cached] of this.remote) {
      const presence = this.presence.get(slotId);
      slots.push({
        slotId,
        deviceName: cached.blob.deviceName,
        blob: cached.blob,
        version: cached.stored.version,
        ...(presence ? { online: presence.online } : {}),
        ...(presence?.lastSeen !== undefined ? { lastSeen: presence.lastSeen } : {}),
      });
    }
    slots.sort((a, b) => a.deviceName.localeCompare(b.deviceName) || a.slotId.localeCompare(b.slotId));
    return { slots };
  }

  /** Loads the on-disk cache (emitting it at once, so the list works with the server down), then connects. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.loadState();
    if (this.stopped) return;
    if (this.remote.size > 0) this.emitRemote();
    this.setState('connecting');
    this.connect();
    if (this.localRevision !== this.writtenRevision) this.writes.retryIn(0);
  }

  /** Replaces this slot's published sessions; written at once after a quiet moment, else grouped. */
  publish(sessions: readonly SessionEntry[]): void {
    if (this.stopped) return;
    this.localSessions = sessions.slice();
    this.localRevision++;
    if (this.started) this.writes.changed();
  }

  /** Records that this device killed a session, so every device drops it from its list (docs/architecture.md, Sessions). */
  publishTombstone(id: string, killedAt: number = this.now()): void {
    if (this.stopped || !isValidSessionId(id)) return;
    this.tombstones = pruneTombstones([...this.tombstones.filter((t) => t.id !== id), { id, killedAt }], this.now());
    this.localSessions = this.localSessions?.filter((s) => s.id !== id);
    this.localRevision++;
    // Only this device knows its tombstones until they are written: saved at once, with fsync.
    void this.persist(true);
    if (this.started) this.writes.changed();
  }

  /** Writes any pending change now and waits for it (and for the state save); true if nothing is left unwritten. */
  async flush(): Promise<boolean> {
    if (this.started && !this.stopped) await this.writes.flush();
    await this.persist();
    return this.localRevision === this.writtenRevision;
  }

  /** Removes this slot from the server (sign-out, or cross-device sessions turned off). */
  async deleteOwnSlot(): Promise<void> {
    await this.api.deleteBlob(this.options.slotId);
    this.ownVersion = undefined;
    this.writtenRevision = this.localRevision;
    await this.persist(true);
  }

  /** Stops, then deletes this slot's cache and counters from disk (sign-out, or a new sync key). */
  async stopAndForget(): Promise<void> {
    this.forgotten = true; // a write or refresh still in flight must not save it back
    await this.stop();
    await fs.rm(this.statePath, { force: true });
  }

  /** Closes the stream and timers. The cache stays on disk for the next start. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.writes.dispose();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const timer of [this.pollTimer, this.watchdogTimer]) if (timer) clearInterval(timer);
    this.reconnectTimer = this.pollTimer = this.watchdogTimer = undefined;
    this.closeStream();
    this.setState('off');
    await Promise.resolve(this.api.dispose?.()).catch((error: unknown) => this.log.warn(`sync: closing the transport failed: ${errorText(error)}`));
    // The batched cache save, if one is waiting, happens now (with fsync: a clean stop is rare).
    if (this.saveTimer || this.persistQueued) await this.persist(true);
    await this.persistChain;
    this.remoteEmitter.dispose();
    this.stateEmitter.dispose();
  }

  private setState(state: SyncState, detail?: string): void {
    if (this.stopped && state !== 'off') return;
    if (this.currentState.state === state && this.currentState.detail === detail) return;
    this.currentState = detail === undefined ? { state } : { state, detail };
    this.log.info(`sync: ${state}${detail ? ` (${detail})` : ''}`);
    this.stateEmitter.fire(this.currentState);
  }

  private emitRemote(): void {
    if (!this.stopped) this.remoteEmitter.fire(this.getRemoteState());
  }

  // ---- the on-disk state -------------------------------------------------------------------

  private async loadState(): Promise<void> {
    let text: string;
    try {
      text = await fs.readFile(this.statePath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn(`sync: cannot read ${this.statePath}: ${errorText(error)}`);
      return;
    }
    const framed = unframeState(text);
    if (!framed.ok) {
      this.log.warn(`sync: ${this.statePath} is ${framed.reason === 'torn' ? 'torn (a save was cut short)' : 'in an unknown format'}; starting with an empty cache`);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(framed.body);
    } catch {
      this.log.warn(`sync: ${this.statePath} is corrupt; starting with an empty cache`);
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || (parsed as { format?: unknown }).format !== STATE_FORMAT) return;
    const state = parsed as Partial<PersistedState>;
    if (typeof state.ownSeq === 'number' && Number.isSafeInteger(state.ownSeq) && state.ownSeq >= 0) this.ownSeq = state.ownSeq;
    if (typeof state.ownVersion === 'number' && Number.isSafeInteger(state.ownVersion) && state.ownVersion >= 0) this.ownVersion = state.ownVersion;
    if (Array.isArray(state.tombstones)) {
      // Our own tombstones go through the same validator as anyone else's.
      try {
        const { blob } = validateBlob(
          { format: BLOB_FORMAT, slotId: this.options.slotId, deviceName: 'x', seq: 0, writtenAt: this.now(), sessions: [], tombstones: state.tombstones },
          { now: this.now() },
        );
        this.tombstones = [...blob.tombstones];
      } catch {
        // Unusable tombstones are simply forgotten; they only shorten a listing.
      }
    }
    if (state.seqFloor && typeof state.seqFloor === 'object') {
      this.guard.restore(Object.fromEntries(Object.entries(state.seqFloor).filter(([slotId]) => isValidSessionId(slotId))));
    }
    if (Array.isArray(state.remote)) {
      for (const entry of state.remote) {
        const stored = parseStoredBlob(entry);
        if (!stored || stored.slotId === this.options.slotId) continue;
        // The cache holds ciphertext, so it is checked exactly like a blob from the server.
        const blob = this.openStored(stored, true);
        if (blob) this.remote.set(stored.slotId, { stored, blob });
      }
    }
    this.log.debug(`sync: loaded ${this.remote.size} cached slot(s)`);
  }

  private snapshot(): PersistedState {
    const state: PersistedState = {
      format: STATE_FORMAT,
      ownSeq: this.ownSeq,
      tombstones: this.tombstones,
      seqFloor: this.guard.snapshot(),
      remote: [...this.remote.values()].map(({ stored }) => ({
        slotId: stored.slotId,
        version: stored.version,
        ...(stored.updatedAt ? { updatedAt: stored.updatedAt } : {}),
        data: Buffer.from(stored.data).toString('base64'),
      })),
    };
    if (this.ownVersion !== undefined) state.ownVersion = this.ownVersion;
    return state;
  }

  /**
   * Saves the latest state now; calls made while a save is queued share it. `durable` adds the
   * fsyncs (tombstones, a deleted slot, stop); every other save relies on the frame (stateFile.ts).
   */
  private persist(durable = false): Promise<void> {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (durable) this.persistDurable = true;
    if (!this.persistQueued) {
      this.persistQueued = true;
      this.persistChain = this.persistChain
        .then(async () => {
          this.persistQueued = false;
          const fsync = this.persistDurable;
          this.persistDurable = false;
          if (this.forgotten) return;
          await writeFileAtomic(this.statePath, frameState(JSON.stringify(this.snapshot())), { fsync });
        })
        .catch((error: unknown) => {
          this.persistQueued = false;
          this.log.warn(`sync: cannot save ${this.statePath}: ${errorText(error)}`);
        });
    }
    return this.persistChain;
  }

  /** Saves the state within the batching interval: many changes (a busy account) make one save. */
  private persistSoon(): void {
    if (this.saveTimer || this.stopped) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.persist();
    }, this.options.stateSaveDelayMs ?? DEFAULT_STATE_SAVE_DELAY_MS);
    this.saveTimer.unref?.();
  }

  // ---- reading other slots -----------------------------------------------------------------

  /** Decrypts and validates a stored blob; undefined (and a log line) if anything is off. */
  private openStored(stored: StoredBlob, fromCache = false): SyncBlob | undefined {
    try {
      const plaintext = openEnvelope(this.encryptionKey, stored.data, stored.slotId);
      if (!fromCache) this.guard.check(stored.slotId, plaintext.seq);
      else if ((this.guard.highestSeen(stored.slotId) ?? -1) > plaintext.seq) return undefined;
      const { blob, dropped } = validateBlob(plaintext, { expectedSlotId: stored.slotId, now: this.now() });
      if (dropped > 0) this.log.warn(`sync: dropped ${dropped} malformed entr${dropped === 1 ? 'y' : 'ies'} from slot ${stored.slotId}`);
      this.guard.accept(stored.slotId, blob.seq);
      return blob;
    } catch (error) {
      if (EnvelopeError.is(error) && error.reason === 'replay') {
        this.log.debug(`sync: slot ${stored.slotId} unchanged`);
      } else if (EnvelopeError.is(error) || BlobError.is(error)) {
        this.log.warn(`sync: ignored the blob of slot ${stored.slotId}: ${error.message}`);
      } else {
        this.log.error(`sync: unexpected error reading slot ${stored.slotId}: ${errorText(error)}`);
      }
      return undefined;
    }
  }

  /** Takes a blob from the server into the cache; true if it changed anything. */
  private acceptStored(stored: StoredBlob): boolean {
    if (stored.slotId === this.options.slotId) return false;
    const blob = this.openStored(stored);
    if (!blob) {
      // Same content under a new server version (the server rewrote it): remember the version only.
      const cached = this.remote.get(stored.slotId);
      if (cached && stored.version > cached.stored.version && Buffer.compare(Buffer.from(stored.data), Buffer.from(cached.stored.data)) === 0) {
        this.remote.set(stored.slotId, { stored, blob: cached.blob, intake: ++this.intake });
      }
      return false;
    }
    this.remote.set(stored.slotId, { stored, blob, intake: ++this.intake });
    this.log.debug(`sync: slot ${stored.slotId} (${blob.deviceName}) now at seq ${blob.seq}, ${blob.sessions.length} session(s)`);
    return true;
  }

  /** Full refetch of GET /v1/blobs (with ETag). Concurrent calls share one request. */
  private refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = undefined;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    let result;
    const ownWritesBefore = this.ownWrites;
    const intakeBefore = this.intake;
    try {
      // Keep only our own slot and blobs that open with our key: a token holder can fill the account
      // with junk, which must not crowd out (or, by size, block) the devices that are real.
      result = await this.api.listBlobs(this.etag, (stored) => stored.slotId === this.options.slotId || this.opensWithOurKey(stored));
    } catch (error) {
      this.noteServerError('refresh', error);
      return false;
    }
    if (this.stopped) return false;
    if (result.notModified) return true;
    if (result.junk > 0) this.log.warn(`sync: skipped ${result.junk} slot(s) on the server that do not open with this sync key`);
    let changed = false;
    for (const stored of result.blobs) {
      if (stored.slotId === this.options.slotId) this.adoptOwnSlot(stored);
      else if (this.acceptStored(stored)) changed = true;
    }
    // A slot missing from a clean, complete list was deleted. With any unparseable entry, the
    // list is not trusted to say what is missing, so nothing is removed. Nor is a slot the stream
    // brought in after the list began: the list cannot show it (and its seq, now seen, would make
    // the next list's copy look like a replay, losing the slot until its device writes again).
    if (result.skipped === 0) {
      for (const [slotId, cached] of [...this.remote]) {
        if (!result.listedSlotIds.has(slotId) && (cached.intake ?? 0) <= intakeBefore) {
          this.remote.delete(slotId);
          this.presence.delete(slotId);
          changed = true;
        }
      }
      // Only a list that began after our latest write can say the server lost it.
      if (!result.listedSlotIds.has(this.options.slotId) && this.ownVersion !== undefined && this.ownWrites === ownWritesBefore) {
        // The server lost our slot (or it was deleted): write it again.
        this.log.info('sync: this slot is missing on the server; writing it again');
        this.ownVersion = undefined;
        if (this.localSessions) this.localRevision++;
        this.writes.retryIn(0);
      }
    } else {
      this.log.warn(
        result.complete
          ? `sync: the server's blob list had ${result.skipped} malformed entr${result.skipped === 1 ? 'y' : 'ies'}`
          : `sync: the server's blob list was cut off (too long or broken); kept the ${result.blobs.length} valid entries read, removed nothing`,
      );
    }
    // Keep the ETag only for a list we fully took in, so a bad answer is fetched again.
    if (result.skipped === 0) this.etag = result.etag;
    this.persistSoon();
    if (changed) this.emitRemote();
    // A good answer over an open stream clears an earlier error.
    if (this.streamOpen) this.setState('live');
    return true;
  }

  /** Whether a listed blob is sealed with our key (authenticity only; replay and content checks come later). */
  private opensWithOurKey(stored: StoredBlob): boolean {
    try {
      openEnvelope(this.encryptionKey, stored.data, stored.slotId);
      return true;
    } catch {
      return false;
    }
  }

  /** Our own slot as the server has it: learn its version and make sure our seq stays above it. */
  private adoptOwnSlot(stored: StoredBlob): void {
    try {
      const plaintext = openEnvelope(this.encryptionKey, stored.data, stored.slotId);
      if (plaintext.seq > this.ownSeq) this.ownSeq = plaintext.seq;
      if (this.ownVersion === undefined || stored.version > this.ownVersion) this.ownVersion = stored.version;
    } catch (error) {
      this.log.warn(`sync: this slot's blob on the server does not open (${errorText(error)}); it will be overwritten`);
      this.ownVersion = stored.version;
    }
  }

  private noteServerError(what: string, error: unknown): void {
    if (SyncHttpError.is(error) && error.transient) {
      this.log.info(`sync: ${what} failed: ${error.message}`);
      if (!this.streamOpen) this.setState('offline', error.message);
    } else {
      this.log.warn(`sync: ${what} failed: ${errorText(error)}`);
      this.setState('error', errorText(error));
    }
  }

  // ---- the event stream --------------------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    this.closeStream();
    const generation = ++this.streamGeneration;
    const current = (): boolean => generation === this.streamGeneration && !this.stopped;
    this.source = this.api.openStream(this.options.slotId, {
      activity: () => {
        if (current()) this.lastActivity = performance.now();
      },
      open: () => {
        if (!current()) return;
        this.streamOpen = true;
        this.streamBackoff.reset();
        this.stopPolling();
        this.startWatchdog();
        this.log.info('sync: event stream open');
        // Close the gap between the last thing we saw and the stream, then we are live.
        void this.refresh().then((ok) => {
          if (ok && current() && this.streamOpen) this.setState('live');
        });
        // The server is back: a write that was waiting on backoff can go now.
        if (this.localRevision !== this.writtenRevision) {
          this.writeBackoff.reset();
          this.writes.retryIn(0);
        }
      },
      blob: (stored) => {
        if (!current() || stored.slotId === this.options.slotId) return;
        if (this.acceptStored(stored)) {
          this.persistSoon();
          this.emitRemote();
        }
      },
      delete: (slotId) => {
        if (!current() || !this.remote.has(slotId)) return;
        this.remote.delete(slotId);
        this.persistSoon();
        this.emitRemote();
      },
      presence: (entries) => {
        if (!current()) return;
        this.presence.clear();
        for (const entry of entries) if (entry.slotId !== this.options.slotId) this.presence.set(entry.slotId, entry);
        this.emitRemote();
      },
      reset: () => {
        if (!current()) return;
        this.etag = undefined;
        void this.refresh();
      },
      error: (code, message) => {
        if (current()) this.streamDown(code, message);
      },
    });
  }

  private streamDown(code: number | undefined, message: string | undefined): void {
    const wasOpen = this.streamOpen;
    this.closeStream();
    const detail = code !== undefined ? `event stream answered ${code}` : `event stream: ${message ?? 'connection lost'}`;
    // A status below 500 (other than 408/429) means the server answered and refused: an error the user
    // should see. That includes a 200 that is not an event stream.
    if (code !== undefined && code < 500 && code !== 408 && code !== 429) this.setState('error', detail);
    else this.setState('offline', detail);
    const delay = this.streamBackoff.next();
    this.log.info(`sync: ${detail}${wasOpen ? '' : ' (not connected)'}; reconnecting in ${delay} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
    this.startPolling();
  }

  private closeStream(): void {
    this.streamGeneration++;
    this.streamOpen = false;
    this.source?.close();
    this.source = undefined;
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  private startWatchdog(): void {
    const idle = this.options.streamIdleTimeoutMs ?? 45_000;
    this.lastActivity = performance.now();
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = setInterval(() => {
      // Monotonic time: the injectable wall clock (`now`) is for seq and validation only.
      if (this.streamOpen && performance.now() - this.lastActivity > idle) this.streamDown(undefined, `silent for over ${idle} ms`);
    }, Math.max(250, Math.floor(idle / 3)));
    this.watchdogTimer.unref();
  }

  private startPolling(): void {
    if (this.pollTimer || this.stopped) return;
    const poll = (): void => {
      if (this.streamOpen || this.stopped) return;
      void this.refresh().then((ok) => {
        // The server answers again: try the stream now rather than after the backoff.
        if (ok && !this.streamOpen && !this.stopped && this.reconnectTimer) this.connect();
      });
    };
    this.pollTimer = setInterval(poll, this.options.pollIntervalMs ?? 30_000);
    poll();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  // ---- writing our own slot ----------------------------------------------------------------

  private buildBlob(seq: number): SyncBlob {
    const now = this.now();
    const { blob, dropped } = validateBlob(
      {
        format: BLOB_FORMAT,
        slotId: this.options.slotId,
        deviceName: this.deviceName,
        seq,
        writtenAt: now,
        sessions: this.localSessions ?? [],
        tombstones: pruneTombstones(this.tombstones, now),
      },
      { now },
    );
    // Our own data passes the same validator a reader will apply, so we never publish what they'd drop.
    if (dropped > 0) this.log.warn(`sync: ${dropped} local entr${dropped === 1 ? 'y was' : 'ies were'} not publishable and left out`);
    return blob;
  }

  /**
   * Writes this slot's blob if anything changed (one at a time: the WriteScheduler runs it). No
   * save sits in front of the PUT: the server's version precondition makes a lost counter harmless.
   * After a crash the saved (ownSeq, ownVersion) pair may be older than what the server holds; then
   * the first PUT fails its precondition (412), we read our own slot back and go above its seq. The
   * server's copy bounds every seq a reader can have seen, so seq never goes down for a reader.
   */
  private async doWrite(): Promise<WriteOutcome | undefined> {
    if (this.stopped || !this.started || this.localRevision === this.writtenRevision) return undefined;
    try {
      for (let conflicts = 0; ; conflicts++) {
        const revision = this.localRevision;
        // A clock-based floor keeps seq rising even if this state file is lost.
        const seq = Math.max(this.ownSeq + 1, this.now());
        this.ownSeq = seq;
        // No await between here and the PUT, so seq and version are one consistent snapshot.
        const envelope = sealEnvelope(this.encryptionKey, this.buildBlob(seq));
        const result = await this.api.putBlob(this.options.slotId, envelope, this.ownVersion);
        if (result.ok) {
          this.ownVersion = result.version;
          this.ownWrites++;
          this.writtenRevision = revision;
          this.writeBackoff.reset();
          if (this.streamOpen) this.setState('live');
          this.persistSoon();
          this.log.debug(`sync: wrote slot version ${result.version}, seq ${seq}`);
          return undefined;
        }
        if (conflicts >= MAX_CONFLICT_RETRIES) throw new SyncHttpError('status', 'the server kept refusing our slot version (412)', 412);
        // Someone else's version is current: learn it, keep our seq above it, write again.
        const current = await this.api.getBlob(this.options.slotId);
        if (current) this.adoptOwnSlot(current);
        this.ownVersion = current?.version;
        this.log.info(`sync: slot version conflict; retrying over version ${this.ownVersion ?? 'none'}`);
      }
    } catch (error) {
      if (this.stopped) return undefined;
      this.noteServerError('write', error);
      const retryAfter = SyncHttpError.is(error) ? error.retryAfterMs ?? 0 : 0;
      return { retryInMs: Math.max(retryAfter, this.writeBackoff.next()) };
    }
  }
}
