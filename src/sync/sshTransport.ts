import { createHash, randomBytes } from 'node:crypto';
import type { ClientChannel } from 'ssh2';
import { ConnectError, type ConnectionPool, isChannelRefusal, type SshConnection } from '../ssh/sshConnection';
import type { ResolvedHost } from '../ssh/sshConfig';
import { openScriptChannel, RemoteCommandError } from '../ssh/remoteExec';
import { lineReader, RemoteShell } from '../ssh/remoteShell';
import { isValidSessionId } from '../common/sessionId';
import {
  DEFAULT_WATCHER_TIMING,
  deleteScript,
  leaveScript,
  MAX_BLOB_FILE_BYTES,
  MAX_WATCH_SLOTS,
  parseReadLine,
  parseWatchLine,
  putScript,
  readScript,
  SSH_SYNC_LIMITS,
  type WatchState,
  type WatcherMode,
  type WatcherTiming,
  watcherScript,
} from './sshSyncScripts';
import type { SshSyncLocation } from './sshSyncUrl';
import { ListTally, type ListResult, type PresenceEntry, parseStoredBlob, type PutResult, type StoredBlob, SyncHttpError } from './syncHttp';
import type { SyncStream, SyncStreamHandlers, SyncTransport } from './syncTransport';

/**
 * The sync transport over an SSH host the user already has (issue 15): the account's blobs are
 * files on that host (sshSyncScripts.ts), written under a lock with the same version preconditions
 * and limits as the server, and followed by one watcher channel per client. It rides the host's
 * shared connection (host-key checks and auth included). Failures map onto the HTTP client's
 * errors, so the client's offline/backoff/error handling is the same for both transports:
 * unreachable or dropped is a transient "network" error, refused keys or auth a permanent one.
 */

export interface SshTransportOptions {
  readonly location: SshSyncLocation;
  /** The sync token (deriveSyncKeys); its sha256 names the account folder, as on the server. */
  readonly token: string;
  /** The host's shared connection (the pool's), connecting if needed. */
  readonly connect: () => Promise<SshConnection>;
  /** The open connection if there is one, without connecting (for the best-effort goodbye). */
  readonly peek?: () => SshConnection | undefined;
  readonly requestTimeoutMs?: number;
  /** Cap on the blobs a list keeps in memory (as SyncServerApi's maxResponseBytes). */
  readonly maxResponseBytes?: number;
  /** 'sh' forces the polling watcher even where inotifywait exists (tests, bench). */
  readonly watcher?: WatcherMode;
  readonly timing?: WatcherTiming;
  /** A heartbeat older than this many host seconds means the device is offline. */
  readonly presenceTimeoutSeconds?: number;
  readonly log?: { debug(message: string): void; info(message: string): void; warn(message: string): void };
}

/** The account folder's name: hex sha256 of the token, exactly the server's account ID. */
export function sshAccountId(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Any failure as the client's error type: unreachable/dropped are transient, refusals permanent. */
function asSyncError(error: unknown, where: string): SyncHttpError {
  if (SyncHttpError.is(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (ConnectError.is(error) && error.permanent) return new SyncHttpError('status', `sync host ${where}: ${message}`, 401);
  return new SyncHttpError('network', `cannot reach the sync host ${where}: ${message}`);
}

/** A line longer than this (a flooded folder) is dropped, not buffered; a B line holds one blob file in base64 (an F line less). */
const MAX_WATCH_LINE = Math.ceil(MAX_BLOB_FILE_BYTES / 3) * 4 + 256;
const MAX_LIST_OUTPUT = 64 * 1024 * 1024;

export class SshSyncTransport implements SyncTransport {
  readonly account: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly where: string;
  private streamSlot: string | undefined;
  /** The long-lived shell that runs reads and writes, and the connection it is on. */
  private shell: RemoteShell | undefined;
  private shellConnection: SshConnection | undefined;

  constructor(private readonly options: SshTransportOptions) {
    this.account = sshAccountId(options.token);
    this.timeoutMs = options.requestTimeoutMs ?? 15_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 8 * 1024 * 1024;
    this.where = options.location.display;
  }

  /**
   * Runs a script on this host's long-lived shell, resolving with its lines.
   * Output beyond `maxBytes` ends the shell: the lines read so far are returned with `cut: true`.
   * The shell is opened on first use and again after its connection changed or it ended.
   */
  private async run(script: string, maxBytes = 1024 * 1024): Promise<{ lines: string[]; cut: boolean }> {
    let connection: SshConnection;
    try {
      connection = await this.options.connect();
    } catch (error) {
      throw asSyncError(error, this.where);
    }
    if (!this.shell || !this.shell.alive || this.shellConnection !== connection) {
      this.shell?.close('the connection changed');
      this.shell = new RemoteShell(connection.client, { timeoutMs: this.timeoutMs });
      this.shellConnection = connection;
    }
    const shell = this.shell;
    for (let attempt = 0; ; attempt++) {
      try {
        return await shell.run(script, undefined, maxBytes);
      } catch (error) {
        // sshd's MaxSessions refused the shell's channel: the request never ran, so try again.
        if (isChannelRefusal(error) && attempt < 8 && connection.isOpen && shell.alive) {
          await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** Math.min(attempt, 4)));
          continue;
        }
        if (RemoteCommandError.is(error) && error.reason === 'timeout') {
          throw new SyncHttpError('timeout', `the sync host ${this.where} did not answer within ${this.timeoutMs} ms`);
        }
        throw asSyncError(error, this.where);
      }
    }
  }

  async listBlobs(_etag?: string, keep: (blob: StoredBlob) => boolean = () => true): Promise<ListResult> {
    const { lines, cut } = await this.run(readScript(this.options.location, this.account), MAX_LIST_OUTPUT);
    const tally = new ListTally(keep, this.maxResponseBytes);
    let ended = false;
    for (const line of lines) {
      if (line === 'END') {
        ended = true;
        break;
      }
      if (line === 'MORE') continue;
      const parsed = parseReadLine(line);
      if (!parsed || 'missing' in parsed) tally.skipped++;
      else tally.add(parsed.slotId, parsed.record);
    }
    // A list cut short (too long, a flood beyond MAX_LIST_ENTRIES, a dropped channel) cannot say what is missing.
    return tally.result(ended && !cut && !lines.includes('MORE'));
  }

  /** Reads the given slots; a slot without a (parseable) blob is missing from the map. */
  private async readSlots(slotIds: readonly string[]): Promise<Map<string, StoredBlob>> {
    const out = new Map<string, StoredBlob>();
    for (let i = 0; i < slotIds.length; i += 64) {
      const batch = slotIds.slice(i, i + 64);
      const { lines } = await this.run(readScript(this.options.location, this.account, batch), batch.length * (MAX_BLOB_FILE_BYTES * 2 + 64));
      for (const line of lines) {
        const parsed = parseReadLine(line);
        if (!parsed || 'missing' in parsed || !batch.includes(parsed.slotId)) continue;
        const blob = parseStoredBlob(parsed.record);
        if (blob) out.set(blob.slotId, blob);
        else this.options.log?.warn(`sync: ignored the file of slot ${parsed.slotId} on ${this.where}: not a well-formed blob record`);
      }
    }
    return out;
  }

  async getBlob(slotId: string): Promise<StoredBlob | undefined> {
    if (!isValidSessionId(slotId)) throw new SyncHttpError('status', 'not a valid slot ID', 400);
    return (await this.readSlots([slotId])).get(slotId);
  }

  async putBlob(slotId: string, envelope: Uint8Array, knownVersion: number | undefined): Promise<PutResult> {
    if (envelope.byteLength > SSH_SYNC_LIMITS.maxBlobBytes) {
      throw new SyncHttpError('status', `blob of ${envelope.byteLength} bytes exceeds the ${SSH_SYNC_LIMITS.maxBlobBytes}-byte limit`, 413);
    }
    const { lines } = await this.run(putScript(this.options.location, this.account, slotId, knownVersion, Buffer.from(envelope).toString('base64')));
    const answer = lines.find((line) => /^(OK|CONFLICT|TOO_MANY_SLOTS|ACCOUNT_FULL|TOO_LARGE|ERR)\b/.test(line)) ?? '';
    const ok = /^OK ([0-9]{1,15})$/.exec(answer);
    if (ok) return { ok: true, version: Number(ok[1]) };
    if (answer.startsWith('CONFLICT')) return { ok: false, conflict: true };
    if (answer === 'TOO_MANY_SLOTS') throw new SyncHttpError('status', `the account on ${this.where} already has ${SSH_SYNC_LIMITS.maxSlots} slots`, 409);
    if (answer === 'ACCOUNT_FULL') throw new SyncHttpError('status', `the account on ${this.where} is over its ${SSH_SYNC_LIMITS.maxAccountBytes}-byte quota`, 409);
    if (answer === 'TOO_LARGE') throw new SyncHttpError('status', 'the blob is over the size limit', 413);
    if (answer.startsWith('ERR')) throw new SyncHttpError('status', `the sync host ${this.where}: ${answer.slice(4, 200)}`, 507);
    throw new SyncHttpError('bad-response', `the sync host ${this.where} gave no answer to a write`);
  }

  async deleteBlob(slotId: string): Promise<void> {
    const { lines } = await this.run(deleteScript(this.options.location, this.account, slotId));
    if (!lines.includes('OK')) throw new SyncHttpError('bad-response', `the sync host ${this.where} did not confirm a delete`);
  }

  /**
   * The watcher channel. Its first `S` line is the baseline (the client refetches everything on
   * open); after that each line is diffed against the last one and only slots whose version marker
   * changed are read. Presence comes from the heartbeat markers, against the host's clock (the
   * watcher's latest heartbeat, carried forward with ours).
   */
  openStream(slotId: string, handlers: SyncStreamHandlers): SyncStream {
    this.streamSlot = slotId;
    let closed = false;
    let channel: ClientChannel | undefined;
    let known: Map<string, number> | undefined;
    let latest: WatchState | undefined;
    let presenceKey = '';
    let reading = false;
    /** Files the watcher printed (F or B lines) since its last S line, by slot. */
    const pushed = new Map<string, StoredBlob>();
    const timeout = this.options.presenceTimeoutSeconds ?? 3 * (this.options.timing ?? DEFAULT_WATCHER_TIMING).heartbeatSeconds;
    const fail = (code: number | undefined, message: string): void => {
      if (closed) return;
      closed = true;
      channel?.close();
      handlers.error(code, message);
    };
    const catchUp = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      try {
        while (!closed && latest && known) {
          const state = latest;
          // Our own slot's file is ours: the client ignores it, so it is never read back.
          const changed = [...state.versions].filter(([slot, version]) => slot !== slotId && known!.get(slot) !== version).map(([slot]) => slot);
          const gone = [...known.keys()].filter((slot) => !state.versions.has(slot));
          if (changed.length === 0 && gone.length === 0) break;
          // The watcher printed the changed files before its line; read only what it did not.
          const blobs = new Map<string, StoredBlob>();
          for (const slot of changed) {
            const blob = pushed.get(slot);
            if (blob && blob.version === state.versions.get(slot)) blobs.set(slot, blob);
          }
          pushed.clear();
          const missing = changed.filter((slot) => !blobs.has(slot));
          if (missing.length > 0) for (const [slot, blob] of await this.readSlots(missing)) blobs.set(slot, blob);
          if (closed) return;
          for (const slot of changed) known.set(slot, state.versions.get(slot)!);
          for (const slot of gone) known.delete(slot);
          for (const blob of blobs.values()) handlers.blob(blob);
          for (const slot of gone) handlers.delete(slot);
        }
      } catch (error) {
        fail(undefined, asSyncError(error, this.where).message);
      } finally {
        reading = false;
      }
    };
    /** The host's clock: a line's `clock` (its watcher's latest heartbeat) and our time when it first appeared. */
    let hostClock: { seconds: number; at: number } | undefined;
    const onState = (state: WatchState): void => {
      const now = Date.now();
      // A new value was printed at the host time it names (the heartbeat's own line); until the
      // next one, the host's time is that plus the time elapsed here.
      if (!hostClock || hostClock.seconds !== state.clock) hostClock = { seconds: state.clock, at: now };
      const hostNow = hostClock.seconds + (now - hostClock.at) / 1000;
      const entries: PresenceEntry[] = [...state.heartbeats].map(([slot, beat]) => ({
        slotId: slot,
        online: hostNow - beat <= timeout,
        lastSeen: now - Math.max(0, hostNow - beat) * 1000,
      }));
      // Slots with a blob and no heartbeat at all were never online since their last clean stop.
      for (const slot of state.versions.keys()) if (!state.heartbeats.has(slot)) entries.push({ slotId: slot, online: false });
      const key = entries.map((entry) => `${entry.slotId}:${entry.online}`).sort().join(',');
      if (key !== presenceKey) {
        presenceKey = key;
        handlers.presence(entries);
      }
      latest = state;
      if (!known) {
        known = new Map(state.versions);
        handlers.open();
      } else void catchUp();
    };
    const onLine = (line: string): void => {
      if (closed) return;
      handlers.activity();
      if (line.startsWith('B ') || line.startsWith('F ')) {
        const parsed = parseReadLine(line);
        const blob = parsed && !('missing' in parsed) ? parseStoredBlob(parsed.record) : undefined;
        if (parsed) this.options.log?.debug(`sync: ${this.where}: the watcher sent the file of slot ${parsed.slotId} (${line[0]})`);
        if (blob && (pushed.has(blob.slotId) || pushed.size < MAX_WATCH_SLOTS)) pushed.set(blob.slotId, blob);
        return;
      }
      const state = parseWatchLine(line);
      if (state) onState(state);
      else if (line === 'M inotify' || line === 'M sh') this.options.log?.debug(`sync: ${this.where}: watcher uses ${line.slice(2)}`);
    };
    void (async () => {
      const marker = `__tether_sync_${randomBytes(8).toString('hex')}__`;
      try {
        const connection = await this.options.connect();
        if (closed) return;
        channel = await openScriptChannel(connection.client, `echo ${marker}\n${watcherScript(this.options.location, this.account, slotId, this.options.watcher ?? 'auto', this.options.timing)}`);
      } catch (error) {
        const mapped = asSyncError(error, this.where);
        fail(mapped.status, mapped.message);
        return;
      }
      if (closed) {
        channel.close();
        return;
      }
      let started = false;
      const read = lineReader((line) => {
        if (!started) started = line === marker;
        else onLine(line);
      }, MAX_WATCH_LINE);
      channel.on('data', (chunk: Buffer) => read(chunk));
      channel.stderr.resume();
      channel.on('close', () => fail(undefined, `the watcher on ${this.where} ended`));
      channel.end();
    })();
    return {
      close: () => {
        closed = true;
        channel?.close();
      },
    };
  }

  /** Removes this client's presence file if the host is connected (others then see it offline at once). */
  async dispose(): Promise<void> {
    const slot = this.streamSlot;
    if (slot && this.options.peek?.()) await this.run(leaveScript(this.options.location, this.account, slot)).catch(() => undefined);
    this.shell?.close('the client stopped');
    this.shell = undefined;
  }
}


/** The pool's shared connection to `host` (one per host), connecting only when there is none. */
export function poolConnector(pool: Pick<ConnectionPool, 'peek' | 'acquire'>, host: () => ResolvedHost): { connect: () => Promise<SshConnection>; peek: () => SshConnection | undefined } {
  return {
    connect: async () => {
      const resolved = host();
      return pool.peek(resolved) ?? (await pool.acquire(resolved));
    },
    peek: () => pool.peek(host()),
  };
}
