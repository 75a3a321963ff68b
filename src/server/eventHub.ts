import type { PresenceRecord, RemotePresence, StoreChange } from './blobStore';
import { EventLog } from './eventLog';
import { formatComment, formatEvent } from './sse';

/** Where a stream's bytes go; the HTTP layer adapts a ServerResponse to this. */
export interface StreamSink {
  send(chunk: string): void;
  end(): void;
  /** Drops the connection without a goodbye (its peer is presumed gone). */
  destroy(): void;
}

export type ResumeFrom = { kind: 'none' } | { kind: 'invalid' } | { kind: 'id'; id: number };

export interface EventHubOptions {
  eventLogSize: number;
  /** The first event id this process can vouch for (see BlobStore.initialEventId). */
  initialEventId: number;
  /** Accounts whose logs are kept while nobody streams; the least recently used beyond this are dropped. */
  maxIdleAccounts?: number;
  /** Payload bytes kept per account log (default 4 MiB). */
  eventLogBytes?: number;
  /** Payload bytes kept across all logs (default 256 MiB); idle accounts go first, then the oldest logs. */
  totalLogBytes?: number;
  /** How long another process's "online" holds without being repeated (it may have died). */
  remotePresenceTtlMs?: number;
  now?: () => Date;
  loadLastSeen(account: string): Promise<PresenceRecord[]>;
  saveLastSeen(account: string, records: PresenceRecord[]): Promise<void>;
  /** Tells other processes that a slot came online here or left (see announceOnline()). */
  announce?(account: string, slotId: string, online: boolean, lastSeen: string): void;
  onError?(error: unknown, account: string): void;
}

interface PresenceEntry {
  /** Streams of this slot on this process. */
  streams: number;
  lastSeen: string;
  /** Other processes that hold a stream of this slot, with when their word expires (ms). */
  remote: Map<string, number>;
}

interface AccountState {
  log: EventLog;
  streams: Set<StreamHandle>;
  presence: Map<string, PresenceEntry>;
  presenceLoaded?: Promise<void>;
}

export class StreamHandle {
  closed = false;
  online = false;
  /** When the lease runs out unless the slot renews it (ms since the epoch); leased streams only. */
  leaseExpiresAt: number | undefined;
  constructor(
    readonly account: string,
    readonly slotId: string | undefined,
    readonly sink: StreamSink,
    /** The stream's lease (see renew()); undefined for clients that do not renew. */
    readonly leaseMs?: number,
  ) {}
}

/**
 * Fans committed changes out to every open stream of an account, keeps each account's bounded event
 * log for Last-Event-ID resume, and tracks presence (which slots hold a stream). No sockets here.
 *
 * Ids: `blob` and `delete` events carry the store's rising event id. `presence` and `reset` carry the
 * id of the latest change the stream has been sent, so a client always holds a valid resume point.
 */
export class EventHub {
  private readonly accounts = new Map<string, AccountState>();
  private lastObservedId: number;
  private readonly now: () => Date;
  private readonly maxIdleAccounts: number;
  private readonly remoteTtlMs: number;
  private readonly totalLogBudget: number;
  private logBytes = 0;

  constructor(private readonly options: EventHubOptions) {
    this.lastObservedId = options.initialEventId;
    this.now = options.now ?? (() => new Date());
    this.maxIdleAccounts = options.maxIdleAccounts ?? 10_000;
    this.remoteTtlMs = options.remotePresenceTtlMs ?? 30_000;
    this.totalLogBudget = options.totalLogBytes ?? 256 * 1024 * 1024;
  }

  /** Payload bytes held by all event logs together. */
  get heldLogBytes(): number {
    return this.logBytes;
  }

  streamCount(account: string): number {
    return this.accounts.get(account)?.streams.size ?? 0;
  }

  get totalStreams(): number {
    let total = 0;
    for (const state of this.accounts.values()) total += state.streams.size;
    return total;
  }

  /** A committed change from the store. */
  publish(change: StoreChange): void {
    const state = this.state(change.account, change.eventId - 1);
    this.lastObservedId = Math.max(this.lastObservedId, change.eventId);
    const payload =
      change.kind === 'put'
        ? { event: 'blob' as const, data: JSON.stringify(change.blob) }
        : { event: 'delete' as const, data: JSON.stringify({ slotId: change.slotId }) };
    const before = state.log.bytes;
    if (!state.log.append({ id: change.eventId, ...payload })) {
      // Out of order (possible across accounts under PostgreSQL): we can no longer vouch for the
      // past of this log, so anyone resuming from before now gets a reset instead of a gap.
      state.log.truncate(Math.max(state.log.latestId, change.eventId));
    }
    this.logBytes += state.log.bytes - before;
    this.enforceLogBudget(change.account);
    const frame = formatEvent({ id: change.eventId, ...payload });
    for (const stream of state.streams) stream.sink.send(frame);
    if (change.kind === 'delete') {
      const entry = state.presence.get(change.slotId);
      if (entry && !this.isOnline(entry) && state.presence.delete(change.slotId)) this.broadcastPresence(change.account, state);
    }
  }

  /** The change feed had a gap: no log can vouch for its past, and every stream must refetch. */
  gap(resumableFrom: number): void {
    this.lastObservedId = Math.max(this.lastObservedId, resumableFrom);
    this.logBytes = 0;
    for (const state of this.accounts.values()) {
      state.log.truncate(this.lastObservedId);
      const frame = formatEvent({ id: state.log.latestId, event: 'reset', data: '{}' });
      for (const stream of state.streams) stream.sink.send(frame);
    }
  }

  /**
   * Opens a stream: replays what the client missed (or sends `reset`), then joins the live fan-out in
   * the same tick so nothing falls between the two. Presence follows once last-seen times are loaded.
   */
  open(account: string, slotId: string | undefined, resume: ResumeFrom, sink: StreamSink, leaseMs?: number): StreamHandle {
    const state = this.state(account, this.lastObservedId);
    const handle = new StreamHandle(account, slotId, sink, leaseMs);
    if (leaseMs !== undefined) handle.leaseExpiresAt = this.now().getTime() + leaseMs;
    if (resume.kind === 'invalid') {
      sink.send(formatEvent({ id: state.log.latestId, event: 'reset', data: '{}' }));
    } else if (resume.kind === 'id') {
      const result = state.log.since(resume.id);
      if (result.kind === 'reset') sink.send(formatEvent({ id: state.log.latestId, event: 'reset', data: '{}' }));
      else for (const event of result.events) sink.send(formatEvent(event));
    }
    state.streams.add(handle);
    void this.comeOnline(state, handle);
    return handle;
  }

  close(handle: StreamHandle): void {
    if (handle.closed) return;
    handle.closed = true;
    const state = this.accounts.get(handle.account);
    if (!state) return;
    state.streams.delete(handle);
    if (!handle.online || handle.slotId === undefined) return;
    const entry = state.presence.get(handle.slotId);
    if (!entry) return;
    entry.streams -= 1;
    entry.lastSeen = this.now().toISOString();
    if (entry.streams === 0) {
      this.broadcastPresence(handle.account, state);
      this.options.announce?.(handle.account, handle.slotId, false, entry.lastSeen);
      this.options
        .saveLastSeen(handle.account, [{ slotId: handle.slotId, lastSeen: entry.lastSeen }])
        .catch((error: unknown) => this.options.onError?.(error, handle.account));
    }
    this.evictIdle();
  }

  /**
   * The slot's device is still there: extends the lease of each of its streams on this process.
   * Returns whether this process holds a stream of the slot at all (leased or not).
   */
  renew(account: string, slotId: string): boolean {
    const state = this.accounts.get(account);
    if (!state) return false;
    const now = this.now().getTime();
    let here = false;
    for (const stream of state.streams) {
      if (stream.slotId !== slotId) continue;
      here = true;
      if (stream.leaseMs !== undefined) stream.leaseExpiresAt = now + stream.leaseMs;
    }
    return here;
  }

  /**
   * Ends every stream whose lease ran out: its device stopped renewing, so its network is presumed
   * gone (a vanished peer sends no FIN, and TCP would take many minutes to notice). The slot goes
   * offline as if the stream had closed. Returns the streams ended.
   */
  expireLeases(): StreamHandle[] {
    const now = this.now().getTime();
    const expired: StreamHandle[] = [];
    for (const state of this.accounts.values()) {
      for (const stream of state.streams) if (stream.leaseExpiresAt !== undefined && stream.leaseExpiresAt <= now) expired.push(stream);
    }
    for (const stream of expired) {
      this.close(stream);
      stream.sink.destroy();
    }
    return expired;
  }

  /** Another process reports a slot online (repeated while it lasts) or gone. */
  remotePresence(report: RemotePresence): void {
    const state = this.state(report.account, this.lastObservedId);
    const entry = state.presence.get(report.slotId) ?? { streams: 0, lastSeen: report.lastSeen, remote: new Map<string, number>() };
    state.presence.set(report.slotId, entry);
    const before = this.isOnline(entry);
    if (report.online) entry.remote.set(report.origin, this.now().getTime() + this.remoteTtlMs);
    else entry.remote.delete(report.origin);
    if (report.lastSeen > entry.lastSeen) entry.lastSeen = report.lastSeen;
    // Only transitions matter to clients; repeats of "still online" stay quiet.
    if (before !== this.isOnline(entry) || (!report.online && !before)) this.broadcastPresence(report.account, state);
  }

  /** Repeats "online" for every slot streaming here, so other processes keep (or learn) it. */
  announceOnline(): void {
    if (!this.options.announce) return;
    const at = this.now().toISOString();
    for (const [account, state] of this.accounts) {
      for (const [slotId, entry] of state.presence) if (entry.streams > 0) this.options.announce(account, slotId, true, at);
    }
  }

  heartbeat(): void {
    this.expireRemote();
    const frame = formatComment('heartbeat');
    for (const state of this.accounts.values()) for (const stream of state.streams) stream.sink.send(frame);
  }

  /** Shutdown: record when every online slot was last seen, then end every stream. */
  async endAll(): Promise<void> {
    const saves: Promise<void>[] = [];
    const at = this.now().toISOString();
    for (const [account, state] of this.accounts) {
      const online = [...state.presence].filter(([, entry]) => entry.streams > 0).map(([slotId]) => ({ slotId, lastSeen: at }));
      for (const stream of state.streams) {
        stream.closed = true;
        stream.sink.end();
      }
      state.streams.clear();
      for (const record of online) this.options.announce?.(account, record.slotId, false, at);
      if (online.length > 0) saves.push(this.options.saveLastSeen(account, online).catch((error: unknown) => this.options.onError?.(error, account)));
    }
    await Promise.all(saves);
  }

  /** The presence payload for an account, as sent on the stream. */
  presenceSnapshot(account: string): { slots: { slotId: string; online: boolean; lastSeen: string }[] } {
    const state = this.accounts.get(account);
    const now = this.now().toISOString();
    const slots = [...(state?.presence ?? new Map<string, PresenceEntry>())]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([slotId, entry]) => {
        const online = this.isOnline(entry);
        return { slotId, online, lastSeen: online ? now : entry.lastSeen };
      });
    return { slots };
  }

  private isOnline(entry: PresenceEntry): boolean {
    if (entry.streams > 0) return true;
    const now = this.now().getTime();
    for (const expires of entry.remote.values()) if (expires > now) return true;
    return false;
  }

  /** Drops remote "online" reports that were not repeated in time (their process may have died). */
  private expireRemote(): void {
    const now = this.now().getTime();
    for (const [account, state] of this.accounts) {
      let changed = false;
      for (const entry of state.presence.values()) {
        for (const [origin, expires] of entry.remote) {
          if (expires <= now) {
            entry.remote.delete(origin);
            changed = true;
          }
        }
      }
      if (changed) this.broadcastPresence(account, state);
    }
  }

  private async comeOnline(state: AccountState, handle: StreamHandle): Promise<void> {
    state.presenceLoaded ??= this.options
      .loadLastSeen(handle.account)
      .then((records) => {
        for (const record of records) {
          const entry = state.presence.get(record.slotId);
          if (!entry) state.presence.set(record.slotId, { streams: 0, lastSeen: record.lastSeen, remote: new Map() });
          else if (record.lastSeen > entry.lastSeen) entry.lastSeen = record.lastSeen;
        }
      })
      .catch((error: unknown) => this.options.onError?.(error, handle.account));
    await state.presenceLoaded;
    if (handle.closed) return;
    if (handle.slotId !== undefined) {
      const entry = state.presence.get(handle.slotId) ?? { streams: 0, lastSeen: this.now().toISOString(), remote: new Map<string, number>() };
      entry.streams += 1;
      state.presence.set(handle.slotId, entry);
      handle.online = true;
      this.broadcastPresence(handle.account, state);
      if (entry.streams === 1) this.options.announce?.(handle.account, handle.slotId, true, this.now().toISOString());
    } else {
      handle.sink.send(this.presenceFrame(handle.account, state));
    }
  }

  private presenceFrame(account: string, state: AccountState): string {
    return formatEvent({ id: state.log.latestId, event: 'presence', data: JSON.stringify(this.presenceSnapshot(account)) });
  }

  private broadcastPresence(account: string, state: AccountState): void {
    if (state.streams.size === 0) return;
    const frame = this.presenceFrame(account, state);
    for (const stream of state.streams) stream.sink.send(frame);
  }

  private state(account: string, floor: number): AccountState {
    let state = this.accounts.get(account);
    if (state) {
      // Refresh recency for eviction.
      this.accounts.delete(account);
    } else {
      state = {
        log: new EventLog(floor, this.options.eventLogSize, this.options.eventLogBytes ?? 4 * 1024 * 1024),
        streams: new Set(),
        presence: new Map(),
      };
    }
    this.accounts.set(account, state);
    this.evictIdle(account);
    return state;
  }

  private evictIdle(keep?: string): void {
    if (this.accounts.size <= this.maxIdleAccounts) return;
    for (const [account, state] of this.accounts) {
      if (this.accounts.size <= this.maxIdleAccounts) break;
      if (state.streams.size === 0 && account !== keep) this.forget(account, state);
    }
  }

  private forget(account: string, state: AccountState): void {
    this.logBytes -= state.log.bytes;
    this.accounts.delete(account);
  }

  /** Keeps all logs within the global budget: forget idle accounts first, then empty the oldest logs. */
  private enforceLogBudget(keep: string): void {
    if (this.logBytes <= this.totalLogBudget) return;
    for (const [account, state] of this.accounts) {
      if (this.logBytes <= this.totalLogBudget) return;
      if (account !== keep && state.streams.size === 0) this.forget(account, state);
    }
    for (const [account, state] of this.accounts) {
      if (this.logBytes <= this.totalLogBudget) return;
      if (account === keep) continue;
      this.logBytes -= state.log.bytes;
      state.log.truncate(state.log.latestId);
    }
  }
}
