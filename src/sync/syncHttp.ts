import { isValidSessionId } from '../common/sessionId';
import { MAX_ENVELOPE_BYTES } from './envelope';
import { ListScanner } from './listScanner';
import { ReasonError } from '../common/reasonError';

/**
 * The client side of the sync server's HTTP API (docs/protocol.md). Every answer is untrusted:
 * bodies are capped while they stream in, and JSON is checked field by field.
 */

export type SyncHttpErrorReason =
  /** The server could not be reached, or the connection broke. */
  | 'network'
  | 'timeout'
  /** The body exceeded the cap. */
  | 'too-large'
  /** A 2xx answer whose body is not what the protocol says. */
  | 'bad-response'
  /** A non-2xx status that the caller did not expect. */
  | 'status';

export class SyncHttpError extends ReasonError<SyncHttpErrorReason> {
  constructor(
    reason: SyncHttpErrorReason,
    message: string,
    readonly status?: number,
    /** From Retry-After on 429/503, in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(reason, message);
  }
  override readonly name = 'SyncHttpError';
  /** Worth retrying later without any change on our side. */
  get transient(): boolean {
    if (this.reason === 'network' || this.reason === 'timeout') return true;
    return this.reason === 'status' && (this.status === 429 || (this.status !== undefined && this.status >= 500));
  }
}

/** A slot's stored blob as the server reports it (list, get, and `blob` events). */
export interface StoredBlob {
  readonly slotId: string;
  readonly version: number;
  /** The envelope bytes, already decoded from base64. */
  readonly data: Uint8Array;
  readonly updatedAt?: string;
}

export interface PresenceEntry {
  readonly slotId: string;
  readonly online: boolean;
  /** Epoch milliseconds, when the server gave a parseable time. */
  readonly lastSeen?: number;
}

/** base64 of the largest envelope we accept, plus padding. */
const MAX_BASE64_CHARS = Math.ceil(MAX_ENVELOPE_BYTES / 3) * 4;
const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function own(record: Record<string, unknown>, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

/** Parses one `{slotId, version, data, updatedAt}` object; undefined if any field is off. */
export function parseStoredBlob(value: unknown): StoredBlob | undefined {
  if (!isRecord(value)) return undefined;
  const slotId = own(value, 'slotId');
  const version = own(value, 'version');
  const data = own(value, 'data');
  const updatedAt = own(value, 'updatedAt');
  if (!isValidSessionId(slotId)) return undefined;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) return undefined;
  if (typeof data !== 'string' || data.length > MAX_BASE64_CHARS || data.length % 4 !== 0 || !BASE64_PATTERN.test(data)) return undefined;
  const bytes = new Uint8Array(Buffer.from(data, 'base64'));
  return typeof updatedAt === 'string' && updatedAt.length <= 64
    ? { slotId, version, data: bytes, updatedAt }
    : { slotId, version, data: bytes };
}

export function parsePresence(value: unknown): PresenceEntry[] | undefined {
  if (!isRecord(value)) return undefined;
  const slots = own(value, 'slots');
  if (!Array.isArray(slots)) return undefined;
  const out: PresenceEntry[] = [];
  for (const entry of slots.slice(0, 1000)) {
    if (!isRecord(entry)) continue;
    const slotId = own(entry, 'slotId');
    const online = own(entry, 'online');
    const lastSeenText = own(entry, 'lastSeen');
    if (!isValidSessionId(slotId) || typeof online !== 'boolean') continue;
    const lastSeen = typeof lastSeenText === 'string' && lastSeenText.length <= 64 ? Date.parse(lastSeenText) : Number.NaN;
    out.push(Number.isFinite(lastSeen) ? { slotId, online, lastSeen } : { slotId, online });
  }
  return out;
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds, 3600) * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.min(Math.max(0, date - Date.now()), 3_600_000) : undefined;
}

/** Reads a body up to `maxBytes`, cancelling the stream as soon as it goes over. */
/**
 * A deadline for a whole request, body included. Not AbortSignal.timeout: Node holds that signal's
 * timer weakly, and a list read that only the timeout could end (a server trickling bytes) was seen
 * never to end in the integration suite, stalling every later refresh behind it.
 */
function deadline(ms: number): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no complete answer within ${ms} ms`)), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/**
 * Cancels the body read when the deadline passes. fetch is meant to do this itself, but undici holds
 * the request's own abort controller weakly once the response is out: after a garbage collection
 * the abort can be lost and a server that trickles bytes held the read (and every refresh queued
 * behind it) for good, as the integration suite saw now and then.
 */
function cancelOnAbort(reader: ReadableStreamDefaultReader<Uint8Array>, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => undefined;
  const cancel = (): void => void reader.cancel(signal.reason).catch(() => undefined);
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}

export async function readCappedBody(response: Response, maxBytes: number, signal?: AbortSignal): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw new SyncHttpError('too-large', `server answer of ${declared} bytes exceeds the ${maxBytes}-byte cap`, response.status);
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const release = cancelOnAbort(reader, signal);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new SyncHttpError('too-large', `server answer exceeds the ${maxBytes}-byte cap`, response.status);
      }
      chunks.push(value);
    }
  } finally {
    release();
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Wraps an SSE body so that no single event can grow beyond `maxEventBytes` (counted from the
 * last blank line), and reports every chunk so a silent connection can be detected.
 */
export function limitSseEvents(body: ReadableStream<Uint8Array>, maxEventBytes: number, onActivity: () => void): ReadableStream<Uint8Array> {
  let eventBytes = 0;
  let lineBytes = 0;
  let lastWasCr = false;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        onActivity();
        for (const byte of chunk) {
          if (byte === 0x0a && lastWasCr) {
            lastWasCr = false; // the LF of a CRLF ends nothing new
            continue;
          }
          lastWasCr = byte === 0x0d;
          if (byte === 0x0a || byte === 0x0d) {
            if (lineBytes === 0) eventBytes = 0;
            lineBytes = 0;
          } else {
            lineBytes++;
            eventBytes++;
          }
          if (eventBytes > maxEventBytes) {
            controller.error(new SyncHttpError('too-large', `sync server sent an event over ${maxEventBytes} bytes`));
            return;
          }
        }
        controller.enqueue(chunk);
      },
    }),
  );
}

export interface SyncServerApiOptions {
  readonly serverUrl: string;
  readonly token: string;
  readonly fetch?: typeof fetch;
  readonly requestTimeoutMs?: number;
  readonly maxResponseBytes?: number;
  /**
   * How much of a blob list to read before giving up on the rest. Entries stream through one at a
   * time and only kept ones stay in memory (at most `maxResponseBytes` of them), so this may be large.
   */
  readonly maxListReadBytes?: number;
}

export type ListResult =
  | { readonly notModified: true }
  | {
      readonly notModified: false;
      readonly etag?: string;
      readonly blobs: StoredBlob[];
      /** Every slot the list names, including entries whose other fields were malformed. */
      readonly listedSlotIds: ReadonlySet<string>;
      /** Entries dropped because they did not parse (or were too big), plus any the list was cut short of. */
      readonly skipped: number;
      /** Well-formed entries that the caller's `keep` refused (e.g. blobs that do not open with our key). */
      readonly junk: number;
      /** False when the list was cut off (too long, or the connection broke): it cannot say what is missing. */
      readonly complete: boolean;
    };

export type PutResult = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly conflict: true };

/**
 * Tallies a blob list as its entries arrive, for either transport: the blobs kept (those `keep`
 * accepts, within `maxBytes` in all), every slot the list names (even when the rest of its entry is
 * malformed), and what was skipped or junk. Not trusted to say what is missing unless `complete`.
 */
export class ListTally {
  readonly blobs: StoredBlob[] = [];
  readonly listedSlotIds = new Set<string>();
  skipped = 0;
  junk = 0;
  private keptBytes = 0;

  constructor(
    private readonly keep: (blob: StoredBlob) => boolean,
    private readonly maxBytes: number,
  ) {}

  /** One entry; `slotId` is what it claims, checked here. */
  add(slotId: unknown, record: unknown): void {
    if (isValidSessionId(slotId)) this.listedSlotIds.add(slotId);
    const blob = parseStoredBlob(record);
    if (!blob) this.skipped++;
    else if (!this.keep(blob)) this.junk++;
    else if (this.keptBytes + blob.data.byteLength > this.maxBytes) this.skipped++;
    else {
      this.keptBytes += blob.data.byteLength;
      this.blobs.push(blob);
    }
  }

  /** The result; a list that was cut short counts one more skip, so nothing is removed on its word. */
  result(complete: boolean): Extract<ListResult, { notModified: false }> {
    return { notModified: false, blobs: this.blobs, listedSlotIds: this.listedSlotIds, skipped: this.skipped + (complete ? 0 : 1), junk: this.junk, complete };
  }
}

export class SyncServerApi {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly requestTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxListReadBytes: number;

  constructor(private readonly options: SyncServerApiOptions) {
    const url = new URL(options.serverUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`sync server URL must be http or https, got ${url.protocol}`);
    this.base = url.href.replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? fetch;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 8 * 1024 * 1024;
    this.maxListReadBytes = Math.max(this.maxResponseBytes, options.maxListReadBytes ?? 64 * 1024 * 1024);
  }

  get authorization(): string {
    return `Bearer ${this.options.token}`;
  }

  /** `leaseSeconds`: the stream ends unless renewPresence() is called within that time (see the server). */
  eventsUrl(slotId: string, leaseSeconds?: number): string {
    return `${this.base}/v1/events?slot=${encodeURIComponent(slotId)}${leaseSeconds ? `&lease=${leaseSeconds}` : ''}`;
  }

  /**
   * POST /v1/presence/<slot>: this device is still there, so its stream's lease runs on. False when
   * the server has no such route (it predates leases, and ignores the lease of the stream too).
   */
  async renewPresence(slotId: string): Promise<boolean> {
    const path = `/v1/presence/${slotId}`;
    const { response, bytes } = await this.request('POST', path);
    if (response.status === 204 || response.status === 200) return true;
    if (response.status === 404 || response.status === 405) return false;
    throw this.statusError('POST', path, response, bytes);
  }

  private async request(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ response: Response; bytes: Uint8Array }> {
    const { signal, clear } = deadline(this.requestTimeoutMs);
    try {
      return await this.requestWithin(method, path, headers, body, signal);
    } finally {
      clear();
    }
  }

  private async requestWithin(method: string, path: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<{ response: Response; bytes: Uint8Array }> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers: { Authorization: this.authorization, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
        body,
        signal,
        redirect: 'error',
      });
    } catch (error) {
      throw this.transportError(error, signal);
    }
    try {
      return { response, bytes: await readCappedBody(response, this.maxResponseBytes, signal) };
    } catch (error) {
      if (SyncHttpError.is(error)) throw error;
      throw this.transportError(error, signal);
    }
  }

  private transportError(error: unknown, signal: AbortSignal): SyncHttpError {
    if (signal.aborted) return new SyncHttpError('timeout', `sync server did not answer within ${this.requestTimeoutMs} ms`);
    const cause = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
    return new SyncHttpError('network', `cannot reach the sync server at ${this.base}: ${cause}`);
  }

  private statusError(method: string, path: string, response: Response, bytes: Uint8Array): SyncHttpError {
    let detail = '';
    try {
      const parsed: unknown = JSON.parse(Buffer.from(bytes.subarray(0, 4096)).toString('utf8'));
      if (isRecord(parsed) && typeof parsed.message === 'string') detail = `: ${parsed.message.slice(0, 200).replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')}`;
    } catch {
      // Not JSON: the status alone has to do.
    }
    return new SyncHttpError('status', `${method} ${path} answered ${response.status}${detail}`, response.status, parseRetryAfter(response.headers.get('retry-after')));
  }

  private parseJson(bytes: Uint8Array, what: string): unknown {
    try {
      return JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch {
      throw new SyncHttpError('bad-response', `sync server sent a ${what} that is not JSON`);
    }
  }

  /**
   * GET /v1/blobs. The list is read as a stream, entry by entry: entries that don't parse or are too
   * big are skipped and counted, entries that `keep` refuses are counted as junk, and a list longer
   * than `maxListReadBytes` is cut off (incomplete). Never fatal for a hostile list: whatever valid
   * entries it holds are returned.
   */
  async listBlobs(etag?: string, keep: (blob: StoredBlob) => boolean = () => true): Promise<ListResult> {
    const { signal, clear } = deadline(this.requestTimeoutMs);
    try {
      return await this.listBlobsWithin(etag, keep, signal);
    } finally {
      clear();
    }
  }

  private async listBlobsWithin(etag: string | undefined, keep: (blob: StoredBlob) => boolean, signal: AbortSignal): Promise<ListResult> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.base}/v1/blobs`, {
        method: 'GET',
        headers: { Authorization: this.authorization, Accept: 'application/json', ...(etag ? { 'If-None-Match': etag } : {}) },
        signal,
        redirect: 'error',
      });
    } catch (error) {
      throw this.transportError(error, signal);
    }
    if (response.status === 304) {
      await response.body?.cancel().catch(() => undefined);
      return { notModified: true };
    }
    if (response.status !== 200) {
      const bytes = await readCappedBody(response, 64 * 1024, signal).catch(() => new Uint8Array(0));
      throw this.statusError('GET', '/v1/blobs', response, bytes);
    }

    const tally = new ListTally(keep, this.maxResponseBytes);
    const scanner = new ListScanner({
      maxEntryBytes: MAX_BASE64_CHARS + 4096,
      onOversized: () => tally.skipped++,
      onEntry: (text) => {
        let entry: unknown;
        try {
          entry = JSON.parse(text);
        } catch {
          tally.skipped++;
          return;
        }
        tally.add(isRecord(entry) ? own(entry, 'slotId') : undefined, entry);
      },
    });
    let read = 0;
    let cutOff = false;
    if (response.body) {
      const reader = response.body.getReader();
      const release = cancelOnAbort(reader, signal);
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (signal.aborted) throw signal.reason ?? new Error('aborted');
          if (done) break;
          read += value.byteLength;
          if (read > this.maxListReadBytes) {
            cutOff = true;
            await reader.cancel().catch(() => undefined);
            break;
          }
          scanner.write(value);
        }
      } catch (error) {
        // A list that breaks off after some entries still gives us those entries.
        if (!scanner.foundBlobs) throw this.transportError(error, signal);
        cutOff = true;
      } finally {
        release();
      }
    }
    if (!scanner.foundBlobs) throw new SyncHttpError('bad-response', 'sync server sent a blob list without "blobs"');
    const base = tally.result(!cutOff && scanner.complete);
    const newEtag = response.headers.get('etag') ?? undefined;
    return newEtag && newEtag.length <= 256 ? { ...base, etag: newEtag } : base;
  }

  /** GET /v1/blobs/<slot>; undefined when the slot does not exist. */
  async getBlob(slotId: string): Promise<StoredBlob | undefined> {
    const path = `/v1/blobs/${slotId}`;
    const { response, bytes } = await this.request('GET', path);
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw this.statusError('GET', path, response, bytes);
    const blob = parseStoredBlob(this.parseJson(bytes, 'blob'));
    if (!blob || blob.slotId !== slotId) throw new SyncHttpError('bad-response', `sync server sent a malformed blob for ${path}`);
    return blob;
  }

  /** PUT with `If-Match` when we know the version, `If-None-Match: *` to create. 412 is a conflict, not an error. */
  async putBlob(slotId: string, envelope: Uint8Array, knownVersion: number | undefined): Promise<PutResult> {
    const path = `/v1/blobs/${slotId}`;
    const precondition: Record<string, string> = knownVersion === undefined ? { 'If-None-Match': '*' } : { 'If-Match': `"${knownVersion}"` };
    const { response, bytes } = await this.request('PUT', path, precondition, JSON.stringify({ data: Buffer.from(envelope).toString('base64') }));
    if (response.status === 412) return { ok: false, conflict: true };
    if (response.status !== 200 && response.status !== 201) throw this.statusError('PUT', path, response, bytes);
    const parsed = this.parseJson(bytes, 'PUT answer');
    const version = isRecord(parsed) ? own(parsed, 'version') : undefined;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) throw new SyncHttpError('bad-response', 'sync server answered a PUT without a version');
    return { ok: true, version };
  }

  async deleteBlob(slotId: string): Promise<void> {
    const path = `/v1/blobs/${slotId}`;
    const { response, bytes } = await this.request('DELETE', path);
    if (response.status !== 200 && response.status !== 204 && response.status !== 404) throw this.statusError('DELETE', path, response, bytes);
  }
}
