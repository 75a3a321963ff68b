import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerOptions as HttpServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { accountLabel, authenticate } from './auth';
import { type BlobStore, StoreError, type StoredBlob } from './blobStore';
import { ClientAddressResolver, normalizeAddress } from './clientAddress';
import type { ServerConfig } from './config';
import { HttpError } from './errors';
import { EventHub, type StreamSink } from './eventHub';
import type { Logger, LogFields } from './logger';
import { ConcurrencyCounter, NewAccountLimiter } from './ipLimits';
import { TokenBucketLimiter } from './rateLimiter';
import {
  maxBodyBytes,
  parseDeletePrecondition,
  parsePutBody,
  parsePutPrecondition,
  parseStreamLease,
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
/** How often leased streams are checked; a lease ends at most this late. */
const LEASE_CHECK_MS = 1_000;
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

/** The client went away before its request was complete: nothing to answer, nobody to blame. */
class ClientAbortError extends Error {
  constructor(
    /** `timed_out`: node cut the request at --request-timeout (and answered 408 itself). */
    readonly reason: 'aborted' | 'timed_out',
  ) {
    super(reason === 'aborted' ? 'the client closed the connection before its request was complete' : 'the request took longer than --request-timeout');
    this.name = 'ClientAbortError';
  }
  static is(error: unknown): error is ClientAbortError {
    return error instanceof ClientAbortError;
  }
}

/** The certificate and key of --tls-cert/--tls-key, read now (at start and on SIGHUP). */
function readTlsFiles(tls: NonNullable<ServerConfig['tls']>): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
}

/** What a refused connection is told, when there is still a plain HTTP socket to say it on. */
const TOO_MANY_CONNECTIONS_RESPONSE = (() => {
  const body = JSON.stringify({ error: 'too_many_connections', message: 'too many open connections from this address' });
  return (
    `HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Retry-After: 10\r\nConnection: close\r\n\r\n${body}`
  );
})();

/** The HTTP face of the sync server. `listen()` then `shutdown()`; the store is owned by the caller. */
export class TetherServer {
  private readonly http: Server | HttpsServer;
  private readonly hub: EventHub;
  private readonly tokenLimiter: TokenBucketLimiter;
  private readonly ipLimiter: TokenBucketLimiter;
  private readonly addresses: ClientAddressResolver;
  private readonly connectionsPerPeer = new ConcurrencyCounter();
  private readonly streamsPerClient = new ConcurrencyCounter();
  private readonly newAccounts: NewAccountLimiter;
  /** When a refused connection from an address was last logged, so a flood makes one line a minute. */
  private readonly refusalLogged = new Map<string, number>();
  private readonly maxBody: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private announceTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
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
    this.addresses = new ClientAddressResolver(options.trustProxy);
    this.newAccounts = new NewAccountLimiter({ maxPerWindow: options.maxNewAccountsPerIpPerHour });
    const { headersMs, requestMs, idleMs } = options.timeouts;
    const serverOptions: HttpServerOptions = {
      headersTimeout: Math.min(headersMs, requestMs),
      requestTimeout: requestMs,
      // Node checks those two timeouts on this interval; its default (30 s) would let them run late.
      connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(Math.min(headersMs, requestMs) / 5))),
      keepAliveTimeout: Math.min(5_000, idleMs),
    };
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    this.http = options.tls
      ? // A TLS handshake that never finishes is a silent connection too.
        createHttpsServer({ ...serverOptions, handshakeTimeout: Math.min(headersMs, idleMs), ...readTlsFiles(options.tls) }, handler)
      : createServer(serverOptions, handler);
    this.http.keepAliveTimeout = Math.min(5_000, idleMs);
    // A connection that sends nothing at all (between or inside requests) is closed; streams opt out.
    this.http.timeout = idleMs;
    this.http.maxConnections = options.maxConnections;
    this.http.on('connection', (socket: Socket) => this.admitConnection(socket));
  }

  /** Re-reads --tls-cert/--tls-key (SIGHUP): new connections get the new pair, open ones keep theirs. */
  reloadTls(): { reloaded: boolean; error?: string } {
    if (!this.options.tls || !('setSecureContext' in this.http)) return { reloaded: false };
    try {
      this.http.setSecureContext(readTlsFiles(this.options.tls));
      return { reloaded: true };
    } catch (error) {
      return { reloaded: false, error: (error as Error).message };
    }
  }

  /** Per-peer connection cap. Trusted proxies are exempt: one proxy connection serves many clients. */
  private admitConnection(socket: Socket): void {
    const peer = normalizeAddress(socket.remoteAddress ?? 'unknown');
    if (this.addresses.isTrustedProxy(peer)) return;
    if (this.connectionsPerPeer.tryAcquire(peer, this.options.maxConnectionsPerIp)) {
      socket.once('close', () => this.connectionsPerPeer.release(peer));
      return;
    }
    const now = performance.now();
    const last = this.refusalLogged.get(peer);
    if (last === undefined || now - last > 60_000) {
      if (this.refusalLogged.size > 10_000) this.refusalLogged.clear();
      this.refusalLogged.set(peer, now);
      this.logger.log('warn', 'connection_refused', { ip: peer, reason: 'too_many_connections', limit: this.options.maxConnectionsPerIp });
    }
    // Before TLS there is no way to answer in HTTP; on plain HTTP say why, then close.
    // Destroy once written, so that no request on this socket reaches a handler.
    if (this.options.tls) socket.destroy();
    else socket.write(TOO_MANY_CONNECTIONS_RESPONSE, () => socket.destroy());
  }

  private clientIp(req: IncomingMessage): string {
    return this.addresses.resolve(req.socket.remoteAddress, req.headers['x-forwarded-for']);
  }

  async listen(): Promise<string> {
    this.unsubscribe = this.store.subscribe({
      change: (change) => this.hub.publish(change),
      presence: (report) => this.hub.remotePresence(report),
      renewal: (account, slotId) => void this.hub.renew(account, slotId),
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
    this.leaseTimer = setInterval(() => {
      for (const stream of this.hub.expireLeases()) {
        this.logger.log('info', 'stream_lease_expired', { account: accountLabel(stream.account), slotId: stream.slotId, leaseMs: stream.leaseMs });
      }
    }, LEASE_CHECK_MS);
    this.leaseTimer.unref();
    return this.url();
  }

  url(): string {
    const address = this.http.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${address.port}`;
  }

  /** Stops accepting, ends every stream, waits for in-flight requests (bounded), then stops following the store. */
  shutdown(): Promise<void> {
    this.closedPromise ??= (async () => {
      this.shuttingDown = true;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      if (this.announceTimer) clearInterval(this.announceTimer);
      if (this.leaseTimer) clearInterval(this.leaseTimer);
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
    const ip = this.clientIp(req);
    const fields: LogFields = { method: req.method, ip, requestId: randomBytes(4).toString('hex') };
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      fields.path = url.pathname.slice(0, 100);
      // Throttle by address before anything else (even a 404), except the health probe.
      if (url.pathname !== '/healthz' && !this.shuttingDown) {
        this.limit(this.ipLimiter, `ip:${ip}`, 'too many requests from this address');
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
      await this.admitAccount(ip, account);
      await this.route(route, account, url, req, res, fields, ip);
    } catch (error) {
      this.sendError(res, error, fields);
    } finally {
      // An open stream logs its own open and close; anything else (including a refused stream) logs here.
      if (fields.route !== 'events' || res.statusCode !== 200) {
        // A renewal comes every 10 s from every device: routine, unless it failed.
        const routine = fields.route === 'renewPresence' && res.statusCode < 300;
        this.logger.log(routine ? 'debug' : 'info', 'request', { ...fields, status: res.statusCode, ms: Math.round(performance.now() - started) });
      }
    }
  }

  /** New accounts per address per hour: inventing tokens must not buy unlimited empty accounts. */
  private async admitAccount(ip: string, account: string): Promise<void> {
    const decision = await this.newAccounts.admit(ip, account, async () => (await this.store.slotCount(account)) === 0);
    if (!decision.allowed) {
      const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      throw new HttpError('too_many_accounts', `this address has started using ${this.options.maxNewAccountsPerIpPerHour} new accounts in the last hour`, {
        headers: { 'Retry-After': String(seconds) },
        fields: { retryAfter: seconds },
      });
    }
  }

  private async route(route: Route, account: string, url: URL, req: IncomingMessage, res: ServerResponse, fields: LogFields, ip: string): Promise<void> {
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
        const blob = await this.store.put(account, route.slotId, data, precondition, {
          maxSlots: this.options.maxSlots,
          maxAccountBytes: this.options.maxAccountBytes,
        });
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
        return this.openStream(account, url, req, res, fields, ip);
      case 'renewPresence': {
        fields.slotId = route.slotId;
        // The stream may be held by another process on the same store (no session affinity).
        if (!this.hub.renew(account, route.slotId)) await this.store.announceRenewal?.(account, route.slotId);
        return this.sendEmpty(res, 204);
      }
      case 'healthz':
        return this.sendJson(res, 200, { ok: true });
    }
  }

  private openStream(account: string, url: URL, req: IncomingMessage, res: ServerResponse, fields: LogFields, ip: string): void {
    const slotId = parseStreamSlot(url.searchParams.get('slot'));
    const leaseMs = parseStreamLease(url.searchParams.get('lease'), slotId);
    fields.slotId = slotId;
    if (this.hub.streamCount(account) >= this.options.maxStreamsPerAccount) {
      throw new HttpError('too_many_streams', `an account may hold at most ${this.options.maxStreamsPerAccount} open streams`, {
        headers: { 'Retry-After': '30' },
      });
    }
    if (!this.streamsPerClient.tryAcquire(ip, this.options.maxStreamsPerIp)) {
      throw new HttpError('too_many_streams', `an address may hold at most ${this.options.maxStreamsPerIp} open streams`, {
        headers: { 'Retry-After': '30' },
        fields: { limit: this.options.maxStreamsPerIp },
      });
    }
    res.once('close', () => this.streamsPerClient.release(ip));
    // A stream is quiet by design between events; heartbeats and the backlog cap police it instead.
    req.socket.setTimeout(0);
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
      destroy: () => res.destroy(),
    };
    const handle = this.hub.open(account, slotId, parseLastEventId(req.headers['last-event-id'] as string | undefined), sink, leaseMs);
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
    const began = performance.now();
    // Node cuts a request at --request-timeout (answering 408 itself); that is not the client's abort.
    const abort = (): ClientAbortError =>
      new ClientAbortError(performance.now() - began >= this.options.timeouts.requestMs * 0.9 ? 'timed_out' : 'aborted');
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
      // The client went away mid-body ('aborted' / ECONNRESET, then close): nothing to answer,
      // and not a server fault, but the promise must not hang.
      req.on('error', () => {
        if (!failed) reject(abort());
        failed = true;
      });
      req.on('close', () => {
        if (!failed && !req.complete) {
          failed = true;
          reject(abort());
        }
      });
    });
  }

  private bodyTooLarge(): HttpError {
    return new HttpError('body_too_large', `request body exceeds ${this.maxBody} bytes`, { fields: { limit: this.maxBody } });
  }

  private sendError(res: ServerResponse, error: unknown, fields: LogFields): void {
    if (ClientAbortError.is(error)) {
      // Logged by the request line (499 as nginx counts a client abort, or node's 408); nobody to answer.
      fields.error = error.reason === 'aborted' ? 'client_aborted' : 'request_timeout';
      res.statusCode = error.reason === 'aborted' ? 499 : 408;
      res.destroy();
      return;
    }
    let httpError: HttpError;
    if (HttpError.is(error)) {
      httpError = error;
    } else if (StoreError.is(error) && error.reason === 'precondition_failed') {
      const headers: Record<string, string> = error.currentVersion !== null ? { ETag: versionTag(error.currentVersion) } : {};
      httpError = new HttpError('precondition_failed', error.message, { headers, fields: { currentVersion: error.currentVersion } });
    } else if (StoreError.is(error) && error.reason === 'too_many_slots') {
      httpError = new HttpError('too_many_slots', error.message, { fields: { limit: this.options.maxSlots } });
    } else if (StoreError.is(error) && error.reason === 'account_full') {
      httpError = new HttpError('account_full', error.message, { fields: { limit: this.options.maxAccountBytes } });
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
