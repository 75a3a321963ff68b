import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { accountLabel, authenticate } from './auth';
import { type BlobStore, StoreError, type StoredBlob } from './blobStore';
import type { ServerConfig } from './config';
import { HttpError } from './errors';
import { EventHub, type StreamSink } from './eventHub';
import type { Logger, LogFields } from './logger';
import { TokenBucketLimiter } from './rateLimiter';
import {
  maxBodyBytes,
  parseDeletePrecondition,
  parsePutBody,
  parsePutPrecondition,
  parseStreamSlot,
  versionTag,
} from './requests';
import { matchRoute, type Route } from './router';
import { formatRetry, parseLastEventId } from './sse';

export type ServerOptions = Omit<ServerConfig, 'storage'>;

/** A slow SSE reader may fall this far behind before we drop it rather than buffer without bound. */
const MAX_STREAM_BACKLOG_BYTES = 4 * 1024 * 1024;
/** How often online slots are repeated to other processes; they expire after three missed repeats. */
const PRESENCE_ANNOUNCE_MS = 10_000;
/** How long shutdown waits for in-flight requests before cutting connections. */
const SHUTDOWN_GRACE_MS = 10_000;

function blobJson(blob: StoredBlob): StoredBlob {
  return { slotId: blob.slotId, version: blob.version, data: blob.data, updatedAt: blob.updatedAt };
}

/** The ETag of a whole account: changes whenever any slot is written, created or removed. */
function listTag(blobs: StoredBlob[]): string {
  const hash = createHash('sha256');
  for (const blob of blobs) hash.update(`${blob.slotId}:${blob.version}:${blob.updatedAt}\n`);
  return `"l-${hash.digest('hex').slice(0, 32)}"`;
}

function matchesIfNoneMatch(header: string | undefined, tag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const trimmed = candidate.trim();
    return trimmed === '*' || trimmed === tag || trimmed === `W/${tag}`;
  });
}

function clientIp(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/** The HTTP face of the sync server. `listen()` then `shutdown()`; the store is owned by the caller. */
export class TetherServer {
  private readonly http: Server;
  private readonly hub: EventHub;
  private readonly tokenLimiter: TokenBucketLimiter;
  private readonly ipLimiter: TokenBucketLimiter;
  private readonly maxBody: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private shuttingDown = false;
  private closedPromise: Promise<void> | undefined;

  constructor(
    private readonly options: ServerOptions,
    private readonly store: BlobStore,
    private readonly logger: Logger,
  ) {
    this.maxBody = maxBodyBytes(options.maxBlobBytes);
    this.tokenLimiter = new TokenBucketLimiter({ ratePerSecond: options.rate.perSecond, burst: options.rate.burst });
    this.ipLimiter = new TokenBucketLimiter({ ratePerSecond: options.ipRate.perSecond, burst: options.ipRate.burst });
    this.hub = new EventHub({
      eventLogSize: options.eventLogSize,
      remotePresenceTtlMs: PRESENCE_ANNOUNCE_MS * 3,
      initialEventId: store.initialEventId(),
      loadLastSeen: (account) => store.loadLastSeen(account),
      saveLastSeen: (account, records) => store.saveLastSeen(account, records),
      announce: store.announcePresence
        ? (account, slotId, online, lastSeen) =>
            void store.announcePresence?.(account, slotId, online, lastSeen).catch((error: unknown) =>
              this.logger.log('warn', 'presence_announce_failed', { account: accountLabel(account), error: (error as Error).message }),
            )
        : undefined,
      onError: (error, account) =>
        this.logger.log('warn', 'presence_store_failed', { account: accountLabel(account), error: (error as Error).message }),
    });
    this.http = createServer((req, res) => void this.handle(req, res));
    // Idle keep-alive sockets should not hold the process open for long after shutdown starts.
    this.http.keepAliveTimeout = 5_000;
  }

  async listen(): Promise<string> {
    this.unsubscribe = this.store.subscribe({
      change: (change) => this.hub.publish(change),
      presence: (report) => this.hub.remotePresence(report),
      gap: (resumableFrom) => {
        this.logger.log('warn', 'change_feed_gap', {});
        this.hub.gap(resumableFrom);
      },
    });
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.options.port, this.options.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.heartbeatTimer = setInterval(() => this.hub.heartbeat(), this.options.heartbeatMs);
    this.heartbeatTimer.unref();
    // Other processes on a shared store forget our online slots unless we repeat them.
    this.announceTimer = setInterval(() => this.hub.announceOnline(), PRESENCE_ANNOUNCE_MS);
    this.announceTimer.unref();
    return this.url();
  }

  url(): string {
    const address = this.http.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  /** Stops accepting, ends every stream, waits for in-flight requests (bounded), then stops following the store. */
  shutdown(): Promise<void> {
    this.closedPromise ??= (async () => {
      this.shuttingDown = true;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      if (this.announceTimer) clearInterval(this.announceTimer);
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      await this.hub.endAll();
      this.http.closeIdleConnections();
      const timer = setTimeout(() => this.http.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(timer);
      this.unsubscribe?.();
    })();
    return this.closedPromise;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const fields: LogFields = { method: req.method, ip: clientIp(req), requestId: randomBytes(4).toString('hex') };
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      fields.path = url.pathname.slice(0, 100);
      // Throttle by address before anything else (even a 404), except the health probe.
      if (url.pathname !== '/healthz' && !this.shuttingDown) {
        this.limit(this.ipLimiter, `ip:${clientIp(req)}`, 'too many requests from this address');
      }
      const route = matchRoute(req.method ?? 'GET', url.pathname);
      fields.route = route.name;
      if (this.shuttingDown) {
        res.setHeader('Connection', 'close');
        if (route.name === 'healthz') return this.sendJson(res, 503, { ok: false, shuttingDown: true });
        throw new HttpError('shutting_down', 'the server is shutting down');
      }
      if (route.name === 'healthz') return this.sendJson(res, 200, { ok: true });

      const account = authenticate(req.headers.authorization);
      fields.account = accountLabel(account);
      this.limit(this.tokenLimiter, account, 'too many requests for this account');
      await this.route(route, account, url, req, res, fields);
    } catch (error) {
      this.sendError(res, error, fields);
    } finally {
      // An open stream logs its own open and close; anything else (including a refused stream) logs here.
      if (fields.route !== 'events' || res.statusCode !== 200) {
        this.logger.log('info', 'request', { ...fields, status: res.statusCode, ms: Math.round(performance.now() - started) });
      }
    }
  }

  private async route(route: Route, account: string, url: URL, req: IncomingMessage, res: ServerResponse, fields: LogFields): Promise<void> {
    switch (route.name) {
      case 'listBlobs': {
        const blobs = await this.store.list(account);
        const tag = listTag(blobs);
        res.setHeader('ETag', tag);
        res.setHeader('Cache-Control', 'no-cache');
        if (matchesIfNoneMatch(req.headers['if-none-match'], tag)) return this.sendEmpty(res, 304);
        return this.sendJson(res, 200, { blobs: blobs.map(blobJson) });
      }
      case 'getBlob': {
        fields.slotId = route.slotId;
        const blob = await this.store.get(account, route.slotId);
        if (!blob) throw new HttpError('not_found', 'no such slot');
        const tag = versionTag(blob.version);
        res.setHeader('ETag', tag);
        res.setHeader('Cache-Control', 'no-cache');
        if (matchesIfNoneMatch(req.headers['if-none-match'], tag)) return this.sendEmpty(res, 304);
        return this.sendJson(res, 200, blobJson(blob));
      }
      case 'putBlob': {
        fields.slotId = route.slotId;
        const precondition = parsePutPrecondition(req.headers['if-match'], req.headers['if-none-match']);
        const data = parsePutBody(await this.readBody(req), this.options.maxBlobBytes);
        const blob = await this.store.put(account, route.slotId, data, precondition, this.options.maxSlots);
        fields.version = blob.version;
        res.setHeader('ETag', versionTag(blob.version));
        return this.sendJson(res, precondition.kind === 'create' ? 201 : 200, { slotId: blob.slotId, version: blob.version });
      }
      case 'deleteBlob': {
        fields.slotId = route.slotId;
        await this.store.delete(account, route.slotId, parseDeletePrecondition(req.headers['if-match']));
        return this.sendEmpty(res, 204);
      }
      case 'events':
        return this.openStream(account, url, req, res, fields);
      case 'healthz':
        return this.sendJson(res, 200, { ok: true });
    }
  }

  private openStream(account: string, url: URL, req: IncomingMessage, res: ServerResponse, fields: LogFields): void {
    const slotId = parseStreamSlot(url.searchParams.get('slot'));
    fields.slotId = slotId;
    if (this.hub.streamCount(account) >= this.options.maxStreamsPerAccount) {
      throw new HttpError('too_many_streams', `an account may hold at most ${this.options.maxStreamsPerAccount} open streams`, {
        headers: { 'Retry-After': '30' },
      });
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    req.socket.setNoDelay(true);
    res.write(formatRetry(2_000));
    const sink: StreamSink = {
      send: (chunk) => {
        if (res.writableEnded || res.destroyed) return;
        if (res.writableLength > MAX_STREAM_BACKLOG_BYTES) {
          this.logger.log('warn', 'stream_dropped_slow_reader', fields);
          res.destroy();
          return;
        }
        res.write(chunk);
      },
      end: () => {
        if (!res.writableEnded) res.end();
      },
    };
    const handle = this.hub.open(account, slotId, parseLastEventId(req.headers['last-event-id'] as string | undefined), sink);
    this.logger.log('info', 'stream_open', { ...fields, streams: this.hub.totalStreams });
    res.on('close', () => {
      this.hub.close(handle);
      this.logger.log('info', 'stream_closed', { ...fields, streams: this.hub.totalStreams });
    });
  }

  private limit(limiter: TokenBucketLimiter, key: string, message: string): void {
    const decision = limiter.take(key);
    if (!decision.allowed) {
      const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      throw new HttpError('rate_limited', message, { headers: { 'Retry-After': String(seconds) }, fields: { retryAfter: seconds } });
    }
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxBody) {
      return Promise.reject(this.bodyTooLarge());
    }
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on('data', (chunk: Buffer) => {
        if (failed) return;
        size += chunk.length;
        if (size > this.maxBody) {
          failed = true;
          reject(this.bodyTooLarge());
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        if (!failed) resolve(Buffer.concat(chunks));
      });
      req.on('error', (error) => {
        if (!failed) reject(error);
        failed = true;
      });
      req.on('close', () => {
        // The client went away mid-body: nothing to answer, but do not leave the promise hanging.
        if (!failed && !req.complete) {
          failed = true;
          reject(new HttpError('bad_request', 'the request body was cut off'));
        }
      });
    });
  }

  private bodyTooLarge(): HttpError {
    return new HttpError('body_too_large', `request body exceeds ${this.maxBody} bytes`, { fields: { limit: this.maxBody } });
  }

  private sendError(res: ServerResponse, error: unknown, fields: LogFields): void {
    let httpError: HttpError;
    if (HttpError.is(error)) {
      httpError = error;
    } else if (StoreError.is(error) && error.reason === 'precondition_failed') {
      const headers: Record<string, string> = error.currentVersion !== null ? { ETag: versionTag(error.currentVersion) } : {};
      httpError = new HttpError('precondition_failed', error.message, { headers, fields: { currentVersion: error.currentVersion } });
    } else if (StoreError.is(error) && error.reason === 'too_many_slots') {
      httpError = new HttpError('too_many_slots', error.message, { fields: { limit: this.options.maxSlots } });
    } else if (StoreError.is(error) && error.reason === 'not_found') {
      httpError = new HttpError('not_found', error.message);
    } else if (StoreError.is(error) && error.reason === 'closed') {
      httpError = new HttpError('shutting_down', 'the server is shutting down');
    } else {
      this.logger.log('error', 'request_failed', { ...fields, error: error instanceof Error ? error.message : String(error) });
      httpError = new HttpError('internal', 'internal server error');
    }
    fields.error = httpError.reason;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(httpError.options.headers ?? {})) res.setHeader(name, value);
    // After a body we did not read, the connection cannot be reused safely.
    if (httpError.reason === 'body_too_large') res.setHeader('Connection', 'close');
    this.sendJson(res, httpError.status, JSON.parse(httpError.body()) as object);
  }

  private sendJson(res: ServerResponse, status: number, body: object): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendEmpty(res: ServerResponse, status: number): void {
    res.writeHead(status);
    res.end();
  }
}
