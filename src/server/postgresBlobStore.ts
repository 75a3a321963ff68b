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

/** Decoded bytes of a base64 column, the same sum as decodedSize() (base64 is ASCII: octets = characters). */
const decodedSql = (column: string): string =>
  `(octet_length(${column}) / 4 * 3 - (CASE WHEN ${column} LIKE '%==' THEN 2 WHEN ${column} LIKE '%=' THEN 1 ELSE 0 END))`;

/**
 * Group commit: every PUT that arrives while the previous batch commits goes into the next batch, one
 * statement and one commit (one fsync, one NOTIFY lock) for all of them. Each write keeps its own
 * outcome: a failed precondition or quota skips that write only (the checks run before it changes
 * anything). The accounts of a batch are locked in one order first, so two batches (from two server
 * processes) cannot deadlock, and each account's event ids still rise in commit order.
 * Timestamps are kept to the millisecond, the precision the API shows, so that the NOTIFY's copy and
 * a later read agree exactly.
 */
const PUT_BATCH_FUNCTION = `
CREATE OR REPLACE FUNCTION tether_put_batch(
  p_accounts text[], p_slots text[], p_data text[], p_expected bigint[], p_max_slots bigint[], p_max_bytes bigint[], p_inline_max int
) RETURNS TABLE (status text, version bigint, updated_ms bigint, current_version bigint, used_bytes bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  i int;
  cur bigint;
  others bigint;
  used bigint;
  size bigint;
  stamp timestamptz;
  event bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(a, 0) AS h FROM unnest(p_accounts) AS a ORDER BY 1) AS locks;
  FOR i IN 1 .. coalesce(array_length(p_accounts, 1), 0) LOOP
    version := NULL; updated_ms := NULL; current_version := NULL; used_bytes := NULL;
    SELECT b.version INTO cur FROM tether_blobs b WHERE b.account = p_accounts[i] AND b.slot_id = p_slots[i];
    IF cur IS DISTINCT FROM p_expected[i] THEN
      status := 'precondition_failed'; current_version := cur;
      RETURN NEXT; CONTINUE;
    END IF;
    SELECT count(*), coalesce(sum(coalesce(b.bytes, ${decodedSql('b.data')})), 0) INTO others, used
      FROM tether_blobs b WHERE b.account = p_accounts[i] AND b.slot_id <> p_slots[i];
    IF cur IS NULL AND others >= p_max_slots[i] THEN
      status := 'too_many_slots';
      RETURN NEXT; CONTINUE;
    END IF;
    size := ${decodedSql('p_data[i]')};
    IF used + size > p_max_bytes[i] THEN
      status := 'account_full'; used_bytes := used;
      RETURN NEXT; CONTINUE;
    END IF;
    stamp := date_trunc('milliseconds', clock_timestamp());
    IF cur IS NULL THEN
      INSERT INTO tether_blobs (account, slot_id, version, data, updated_at, bytes) VALUES (p_accounts[i], p_slots[i], 1, p_data[i], stamp, size);
      version := 1;
    ELSE
      UPDATE tether_blobs b SET version = b.version + 1, data = p_data[i], updated_at = stamp, bytes = size
        WHERE b.account = p_accounts[i] AND b.slot_id = p_slots[i];
      version := cur + 1;
    END IF;
    updated_ms := (extract(epoch FROM stamp) * 1000)::bigint;
    event := nextval('tether_event_seq');
    PERFORM pg_notify('${CHANNEL}', json_build_object('e', event, 'a', p_accounts[i], 's', p_slots[i], 'k', 'put', 'v', version, 't', updated_ms,
      'd', CASE WHEN octet_length(p_data[i]) <= p_inline_max THEN p_data[i] END)::text);
    status := 'ok';
    RETURN NEXT;
  END LOOP;
END
$fn$;`;

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
-- Decoded size of each blob, so the quota check need not read (or detoast) every blob of the account.
-- NULL in rows written by servers before this column: the quota then computes it from data.
ALTER TABLE tether_blobs ADD COLUMN IF NOT EXISTS bytes bigint;
${PUT_BATCH_FUNCTION}
`;

/**
 * What a NOTIFY carries. Payloads are capped at 8000 bytes, so a put's blob (`d`, with `t` its
 * updated_at in ms) rides along only when small; otherwise listeners read the row.
 */
interface ChangeNotice {
  e: number;
  a: string;
  s: string;
  k: 'put' | 'delete';
  v: number;
  t?: number;
  d?: string | null;
}

/** Largest blob (base64 characters) sent inside a NOTIFY: the keys and numbers around it fit in the rest of 8000 bytes. */
export const INLINE_DATA_MAX = 7600;
/** Writes per group commit, and their blob characters (a batch is one statement with every blob in it). */
const MAX_BATCH_WRITES = 256;
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/**
 * Batches of one process committing at once. Commits that NOTIFY are serialised by PostgreSQL (one
 * lock per database, held through the WAL flush), so more in flight would only queue at that lock.
 */
const MAX_BATCHES_IN_FLIGHT = 1;

interface PendingPut {
  account: string;
  slotId: string;
  data: string;
  precondition: Precondition;
  limits: AccountLimits;
  resolve(blob: StoredBlob): void;
  reject(error: unknown): void;
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
    Number.isSafeInteger(notice.v) &&
    (notice.t === undefined || Number.isSafeInteger(notice.t)) &&
    (notice.d === undefined || notice.d === null || typeof notice.d === 'string')
  );
}

/**
 * PostgreSQL storage for deployments with several server processes. Puts are group-committed: those
 * that arrive while a batch commits form the next batch, one statement (tether_put_batch) that takes the
 * per-account advisory locks (so checks, event ids and commit order agree per account), checks each
 * version and quota in SQL, allocates event ids from a shared sequence and NOTIFYs, small blobs inline.
 * Every process LISTENs and streams every committed change, whichever process wrote it.
 */
export class PostgresBlobStore implements BlobStore {
  readonly kind = 'postgres' as const;
  private readonly pool: Pool;
  private listenClient: Client | undefined;
  private readonly listeners = new Set<StoreListener>();
  private startEventId = 0;
  private queue: Promise<void> = Promise.resolve();
  /** Notices waiting for a row read; later notices queue behind them to keep commit order. */
  private pendingReads = 0;
  private readonly pendingPuts: PendingPut[] = [];
  private batchesInFlight = 0;
  private batchesDrained: (() => void) | undefined;
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
    return new Promise<StoredBlob>((resolve, reject) => {
      this.pendingPuts.push({ account, slotId, data, precondition, limits, resolve, reject });
      this.startBatches();
    });
  }

  /** Sends what has queued up as one batch, unless a batch is committing; its end sends the next. */
  private startBatches(): void {
    while (this.batchesInFlight < MAX_BATCHES_IN_FLIGHT && this.pendingPuts.length > 0) {
      let bytes = 0;
      let count = 0;
      while (count < this.pendingPuts.length && count < MAX_BATCH_WRITES && (count === 0 || bytes + this.pendingPuts[count].data.length <= MAX_BATCH_BYTES)) {
        bytes += this.pendingPuts[count].data.length;
        count += 1;
      }
      const batch = this.pendingPuts.splice(0, count);
      this.batchesInFlight += 1;
      void this.commitBatch(batch).finally(() => {
        this.batchesInFlight -= 1;
        this.startBatches();
        if (this.batchesInFlight === 0 && this.pendingPuts.length === 0) this.batchesDrained?.();
      });
    }
  }

  /**
   * One statement, so one implicit transaction: its result arrives only after COMMIT (synchronous_commit
   * on: after the WAL is flushed), so a write is acknowledged only once it is durable. If the statement
   * fails, nothing of the batch was committed and every write in it fails.
   */
  private async commitBatch(batch: PendingPut[]): Promise<void> {
    let rows: { status: string; version: string | null; updated_ms: string | null; current_version: string | null; used_bytes: string | null }[];
    try {
      const result = await this.pool.query<(typeof rows)[number]>({
        name: 'tether_put_batch',
        text: 'SELECT status, version, updated_ms, current_version, used_bytes FROM tether_put_batch($1, $2, $3, $4, $5, $6, $7)',
        values: [
          batch.map((put) => put.account),
          batch.map((put) => put.slotId),
          batch.map((put) => put.data),
          batch.map((put) => (put.precondition.kind === 'match' ? put.precondition.version : null)),
          batch.map((put) => put.limits.maxSlots),
          batch.map((put) => put.limits.maxAccountBytes),
          INLINE_DATA_MAX,
        ],
      });
      rows = result.rows;
      if (rows.length !== batch.length) throw new Error(`tether_put_batch answered ${rows.length} rows for ${batch.length} writes`);
    } catch (error) {
      for (const put of batch) put.reject(error);
      return;
    }
    batch.forEach((put, i) => {
      const row = rows[i];
      const current = row.current_version === null ? null : Number(row.current_version);
      switch (row.status) {
        case 'ok':
          return put.resolve({ slotId: put.slotId, version: Number(row.version), data: put.data, updatedAt: new Date(Number(row.updated_ms)).toISOString() });
        case 'precondition_failed':
          return put.reject(
            new StoreError('precondition_failed', put.precondition.kind === 'create' ? 'the slot already exists' : 'the slot has a different version', current),
          );
        case 'too_many_slots':
          return put.reject(new StoreError('too_many_slots', `an account may hold at most ${put.limits.maxSlots} slots`));
        case 'account_full':
          return put.reject(accountFullError(put.limits.maxAccountBytes, Number(row.used_bytes), decodedSize(put.data)));
        default:
          return put.reject(new Error(`tether_put_batch answered status ${row.status}`));
      }
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

  async announceRenewal(account: string, slotId: string): Promise<void> {
    assertKeys(account, slotId);
    if (this.closed) return;
    await this.pool.query('SELECT pg_notify($1, $2)', [PRESENCE_CHANNEL, JSON.stringify({ o: this.origin, a: account, s: slotId, r: 1 })]);
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
    // Puts accepted before close are still committed (or fail) before the pool goes.
    if (this.batchesInFlight > 0 || this.pendingPuts.length > 0) await new Promise<void>((resolve) => (this.batchesDrained = resolve));
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
      this.receive(message.payload);
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

  /** A change notice: delivered at once when it carries everything, else after a read, in arrival (commit) order. */
  private receive(payload: string): void {
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
    const complete = notice.k === 'delete' || (typeof notice.d === 'string' && notice.t !== undefined);
    if (complete && this.pendingReads === 0) {
      this.deliver(notice).catch((error: unknown) => this.deliveryFailed(error));
      return;
    }
    const queued = notice;
    this.pendingReads += 1;
    this.queue = this.queue
      .then(() => this.deliver(queued))
      .catch((error: unknown) => this.deliveryFailed(error))
      .finally(() => {
        this.pendingReads -= 1;
      });
  }

  private deliveryFailed(error: unknown): void {
    this.log('error', 'postgres_notification_failed', { error: (error as Error).message });
    for (const listener of this.listeners) listener.gap(this.startEventId);
  }

  private async deliver(notice: ChangeNotice): Promise<void> {
    let change: StoreChange;
    if (notice.k === 'delete') {
      change = { eventId: notice.e, account: notice.a, kind: 'delete', slotId: notice.s };
    } else if (typeof notice.d === 'string' && notice.t !== undefined) {
      const blob: StoredBlob = { slotId: notice.s, version: notice.v, data: notice.d, updatedAt: new Date(notice.t).toISOString() };
      change = { eventId: notice.e, account: notice.a, kind: 'put', blob };
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
    const { o, a, s, on, t, r } = notice;
    if (r === 1) {
      if (o === this.origin || typeof o !== 'string' || typeof a !== 'string' || typeof s !== 'string') return;
      if (!/^[0-9a-f]{64}$/.test(a) || !/^[a-z2-7]{26}$/.test(s)) return;
      for (const listener of this.listeners) listener.renewal?.(a, s);
      return;
    }
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
