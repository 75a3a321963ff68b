import { randomBytes } from 'node:crypto';
import { Client, type Notification, Pool, type PoolClient } from 'pg';
import {
  accountFullError,
  type AccountLimits,
  assertKeys,
  decodedSize,
  type BlobStore,
  type PresenceRecord,
  type RemotePresence,
  StoreError,
  type StoreChange,
  type StoreListener,
  type StoredBlob,
} from './blobStore';
import type { LogFields, LogLevel } from './logger';
import type { Precondition } from './requests';

const CHANNEL = 'tether_changes';
const PRESENCE_CHANNEL = 'tether_presence';
/** Lets an operator (and our tests) find the LISTEN session in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'tether-listen';
/** Serialises schema creation when several servers start on one database at once. */
const SCHEMA_LOCK_KEY = 0x7e7e_0001;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tether_blobs (
  account    text        NOT NULL,
  slot_id    text        NOT NULL,
  version    bigint      NOT NULL CHECK (version >= 1),
  data       text        NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (account, slot_id)
);
CREATE TABLE IF NOT EXISTS tether_presence (
  account   text        NOT NULL,
  slot_id   text        NOT NULL,
  last_seen timestamptz NOT NULL,
  PRIMARY KEY (account, slot_id)
);
CREATE SEQUENCE IF NOT EXISTS tether_event_seq;
`;

/** What a NOTIFY carries: only keys, because payloads are capped at 8000 bytes; listeners read the row. */
interface ChangeNotice {
  e: number;
  a: string;
  s: string;
  k: 'put' | 'delete';
  v: number;
}

export interface PostgresStoreOptions {
  poolSize?: number;
  onLog?(level: LogLevel, msg: string, fields: LogFields): void;
}

function isChangeNotice(value: unknown): value is ChangeNotice {
  const notice = value as ChangeNotice;
  return (
    typeof value === 'object' &&
    value !== null &&
    Number.isSafeInteger(notice.e) &&
    typeof notice.a === 'string' &&
    typeof notice.s === 'string' &&
    (notice.k === 'put' || notice.k === 'delete') &&
    Number.isSafeInteger(notice.v)
  );
}

/**
 * PostgreSQL storage for deployments with several server processes. Each write runs in one transaction
 * that takes a per-account advisory lock (so checks, event ids and commit order agree per account),
 * checks the version in SQL, allocates an event id from a shared sequence and NOTIFYs. Every process
 * LISTENs and streams every committed change, whichever process wrote it.
 */
export class PostgresBlobStore implements BlobStore {
  readonly kind = 'postgres' as const;
  private readonly pool: Pool;
  private listenClient: Client | undefined;
  private readonly listeners = new Set<StoreListener>();
  private startEventId = 0;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = 250;
  /** Tells our own presence notices apart from other processes'. */
  private readonly origin = randomBytes(8).toString('hex');

  constructor(
    private readonly databaseUrl: string,
    private readonly options: PostgresStoreOptions = {},
  ) {
    this.pool = new Pool({ connectionString: databaseUrl, max: options.poolSize ?? 10, application_name: 'tether-server' });
    // An idle pooled connection that dies is replaced on next use; just report it.
    this.pool.on('error', (error) => this.log('warn', 'postgres_pool_error', { error: error.message }));
  }

  async open(): Promise<{ corrupt: string[] }> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
      await client.query(SCHEMA);
    });
    this.startEventId = await this.connectListener();
    return { corrupt: [] };
  }

  initialEventId(): number {
    return this.startEventId;
  }

  async list(account: string): Promise<StoredBlob[]> {
    assertKeys(account);
    this.assertOpen();
    const result = await this.pool.query<{ slot_id: string; version: string; data: string; updated_at: Date }>(
      'SELECT slot_id, version, data, updated_at FROM tether_blobs WHERE account = $1 ORDER BY slot_id',
      [account],
    );
    return result.rows.map((row) => ({ slotId: row.slot_id, version: Number(row.version), data: row.data, updatedAt: row.updated_at.toISOString() }));
  }

  async get(account: string, slotId: string): Promise<StoredBlob | undefined> {
    assertKeys(account, slotId);
    this.assertOpen();
    return this.readRow(this.pool, account, slotId);
  }

  async slotCount(account: string): Promise<number> {
    assertKeys(account);
    this.assertOpen();
    const result = await this.pool.query<{ n: string }>('SELECT count(*) AS n FROM tether_blobs WHERE account = $1', [account]);
    return Number(result.rows[0].n);
  }

  put(account: string, slotId: string, data: string, precondition: Precondition, limits: AccountLimits): Promise<StoredBlob> {
    assertKeys(account, slotId);
    this.assertOpen();
    return this.transaction(async (client) => {
      await this.lockAccount(client, account);
      // Under the account lock, so concurrent writes cannot both pass the quota. Base64 text is
      // ASCII, so length() is its size; the decoded size is computed the same way as decodedSize().
      const others = await client.query<{ n: string; bytes: string }>(
        `SELECT count(*) AS n, coalesce(sum(length(data) / 4 * 3 - (CASE WHEN data LIKE '%==' THEN 2 WHEN data LIKE '%=' THEN 1 ELSE 0 END)), 0) AS bytes
         FROM tether_blobs WHERE account = $1 AND slot_id <> $2`,
        [account, slotId],
      );
      let row: { version: string; updated_at: Date } | undefined;
      if (precondition.kind === 'create') {
        const count = others;
        const inserted = await client.query<{ version: string; updated_at: Date }>(
          `INSERT INTO tether_blobs (account, slot_id, version, data, updated_at) VALUES ($1, $2, 1, $3, clock_timestamp())
           ON CONFLICT (account, slot_id) DO NOTHING RETURNING version, updated_at`,
          [account, slotId, data],
        );
        row = inserted.rows[0];
        if (!row) throw new StoreError('precondition_failed', 'the slot already exists', await this.currentVersion(client, account, slotId));
        // Counted before our insert, under the account lock, so concurrent creates cannot both pass.
        if (Number(count.rows[0].n) >= limits.maxSlots) throw new StoreError('too_many_slots', `an account may hold at most ${limits.maxSlots} slots`);
      } else {
        const updated = await client.query<{ version: string; updated_at: Date }>(
          `UPDATE tether_blobs SET version = version + 1, data = $4, updated_at = clock_timestamp()
           WHERE account = $1 AND slot_id = $2 AND version = $3 RETURNING version, updated_at`,
          [account, slotId, precondition.version, data],
        );
        row = updated.rows[0];
        if (!row) {
          throw new StoreError('precondition_failed', 'the slot has a different version', await this.currentVersion(client, account, slotId));
        }
      }
      // Checked after the precondition (a stale write is a 412 first); throwing rolls the write back.
      const bytes = decodedSize(data);
      const used = Number(others.rows[0].bytes);
      if (used + bytes > limits.maxAccountBytes) throw accountFullError(limits.maxAccountBytes, used, bytes);
      const version = Number(row.version);
      await this.notify(client, { a: account, s: slotId, k: 'put', v: version });
      return { slotId, version, data, updatedAt: row.updated_at.toISOString() };
    });
  }

  delete(account: string, slotId: string, expectedVersion?: number): Promise<void> {
    assertKeys(account, slotId);
    this.assertOpen();
    return this.transaction(async (client) => {
      await this.lockAccount(client, account);
      const deleted = await client.query<{ version: string }>(
        `DELETE FROM tether_blobs WHERE account = $1 AND slot_id = $2 AND ($3::bigint IS NULL OR version = $3::bigint) RETURNING version`,
        [account, slotId, expectedVersion ?? null],
      );
      if (deleted.rows.length === 0) {
        const current = await this.currentVersion(client, account, slotId);
        if (current === null) throw new StoreError('not_found', 'no such slot');
        throw new StoreError('precondition_failed', 'the slot has a different version', current);
      }
      await client.query('DELETE FROM tether_presence WHERE account = $1 AND slot_id = $2', [account, slotId]);
      await this.notify(client, { a: account, s: slotId, k: 'delete', v: Number(deleted.rows[0].version) });
    });
  }

  async loadLastSeen(account: string): Promise<PresenceRecord[]> {
    assertKeys(account);
    this.assertOpen();
    const result = await this.pool.query<{ slot_id: string; last_seen: Date }>(
      'SELECT slot_id, last_seen FROM tether_presence WHERE account = $1',
      [account],
    );
    return result.rows.map((row) => ({ slotId: row.slot_id, lastSeen: row.last_seen.toISOString() }));
  }

  async saveLastSeen(account: string, records: PresenceRecord[]): Promise<void> {
    assertKeys(account);
    if (this.closed || records.length === 0) return;
    for (const record of records) assertKeys(account, record.slotId);
    await this.pool.query(
      `INSERT INTO tether_presence (account, slot_id, last_seen)
       SELECT $1, slot_id, last_seen FROM unnest($2::text[], $3::timestamptz[]) AS t(slot_id, last_seen)
       ON CONFLICT (account, slot_id) DO UPDATE SET last_seen = GREATEST(tether_presence.last_seen, EXCLUDED.last_seen)`,
      [account, records.map((record) => record.slotId), records.map((record) => record.lastSeen)],
    );
  }

  async announcePresence(account: string, slotId: string, online: boolean, lastSeen: string): Promise<void> {
    assertKeys(account, slotId);
    if (this.closed) return;
    const notice = JSON.stringify({ o: this.origin, a: account, s: slotId, on: online, t: lastSeen });
    await this.pool.query('SELECT pg_notify($1, $2)', [PRESENCE_CHANNEL, notice]);
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.listenClient;
    this.listenClient = undefined;
    await client?.end().catch(() => undefined);
    await this.queue;
    this.listeners.clear();
    await this.pool.end();
  }

  /** Connects the LISTEN session; returns the sequence position from which every change will be heard. */
  private async connectListener(): Promise<number> {
    const client = new Client({ connectionString: this.databaseUrl, application_name: LISTENER_APPLICATION_NAME });
    const lost = (error?: Error): void => {
      if (this.listenClient !== client) return;
      this.listenClient = undefined;
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.log('warn', 'postgres_listener_lost', { error: error?.message ?? 'connection ended' });
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (message: Notification) => {
      if (message.channel === PRESENCE_CHANNEL && message.payload !== undefined) {
        this.deliverPresence(message.payload);
        return;
      }
      if (message.channel !== CHANNEL || message.payload === undefined) return;
      const payload = message.payload;
      this.queue = this.queue.then(() => this.deliver(payload)).catch((error: unknown) => {
        this.log('error', 'postgres_notification_failed', { error: (error as Error).message });
        for (const listener of this.listeners) listener.gap(this.startEventId);
      });
    });
    await client.connect();
    this.listenClient = client;
    await client.query(`LISTEN ${CHANNEL}; LISTEN ${PRESENCE_CHANNEL}`);
    // Read after LISTEN: any id above this belongs to a transaction that commits while we listen.
    const position = await client.query<{ last_value: string; is_called: boolean }>('SELECT last_value, is_called FROM tether_event_seq');
    return position.rows[0].is_called ? Number(position.rows[0].last_value) : 0;
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closed) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connectListener().then(
        (position) => {
          this.reconnectDelayMs = 250;
          this.startEventId = position;
          this.log('info', 'postgres_listener_restored', {});
          // Changes committed while we were away were not heard: streams must refetch.
          for (const listener of this.listeners) listener.gap(position);
        },
        (error: unknown) => {
          this.log('warn', 'postgres_listener_reconnect_failed', { error: (error as Error).message });
          this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 10_000);
          this.scheduleReconnect();
        },
      );
    }, this.reconnectDelayMs);
    this.reconnectTimer.unref();
  }

  private async deliver(payload: string): Promise<void> {
    let notice: unknown;
    try {
      notice = JSON.parse(payload);
    } catch {
      notice = undefined;
    }
    if (!isChangeNotice(notice)) {
      this.log('warn', 'postgres_bad_notification', {});
      return;
    }
    let change: StoreChange;
    if (notice.k === 'delete') {
      change = { eventId: notice.e, account: notice.a, kind: 'delete', slotId: notice.s };
    } else {
      const blob = await this.readRow(this.pool, notice.a, notice.s);
      // Gone already: the delete's own notice follows. Older than notified cannot happen after commit.
      if (!blob || blob.version < notice.v) return;
      change = { eventId: notice.e, account: notice.a, kind: 'put', blob };
    }
    for (const listener of this.listeners) listener.change(change);
  }

  private deliverPresence(payload: string): void {
    let notice: Record<string, unknown>;
    try {
      notice = JSON.parse(payload) as Record<string, unknown>;
    } catch {
      return;
    }
    const { o, a, s, on, t } = notice;
    if (o === this.origin || typeof o !== 'string' || typeof a !== 'string' || typeof s !== 'string' || typeof on !== 'boolean' || typeof t !== 'string') return;
    if (!/^[0-9a-f]{64}$/.test(a) || !/^[a-z2-7]{26}$/.test(s) || Number.isNaN(Date.parse(t))) return;
    const report: RemotePresence = { account: a, slotId: s, origin: o, online: on, lastSeen: new Date(t).toISOString() };
    for (const listener of this.listeners) listener.presence?.(report);
  }

  private async readRow(client: Pool | PoolClient, account: string, slotId: string): Promise<StoredBlob | undefined> {
    const result = await client.query<{ version: string; data: string; updated_at: Date }>(
      'SELECT version, data, updated_at FROM tether_blobs WHERE account = $1 AND slot_id = $2',
      [account, slotId],
    );
    const row = result.rows[0];
    return row ? { slotId, version: Number(row.version), data: row.data, updatedAt: row.updated_at.toISOString() } : undefined;
  }

  private async currentVersion(client: PoolClient, account: string, slotId: string): Promise<number | null> {
    const result = await client.query<{ version: string }>('SELECT version FROM tether_blobs WHERE account = $1 AND slot_id = $2', [account, slotId]);
    return result.rows[0] ? Number(result.rows[0].version) : null;
  }

  /** Per-account advisory lock: event ids are then allocated and committed in the same order. */
  private async lockAccount(client: PoolClient, account: string): Promise<void> {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [account]);
  }

  private async notify(client: PoolClient, notice: Omit<ChangeNotice, 'e'>): Promise<void> {
    const next = await client.query<{ id: string }>(`SELECT nextval('tether_event_seq') AS id`);
    const full: ChangeNotice = { e: Number(next.rows[0].id), ...notice };
    await client.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(full)]);
  }

  /** Runs `task` in a transaction; resolves after COMMIT, which (synchronous_commit on) is durable. */
  private async transaction<T>(task: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await task(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('closed', 'the store is closed');
  }

  private log(level: LogLevel, msg: string, fields: LogFields): void {
    this.options.onLog?.(level, msg, fields);
  }
}
