import { EventSource, type FetchLike, type FetchLikeResponse } from 'eventsource';
import { isValidSessionId } from '../common/sessionId';
import { limitSseEvents, parsePresence, parseStoredBlob, type ListResult, type PutResult, type StoredBlob, SyncServerApi, type SyncServerApiOptions } from './syncHttp';
import type { SyncStream, SyncStreamHandlers, SyncTransport } from './syncTransport';

const MAX_LAST_EVENT_ID = 128;

/**
 * The stream's lease: the server ends a stream whose device has not renewed within this time, so a
 * device whose network vanished (no FIN, no RST) shows offline elsewhere within about that long.
 * Renewed three times per lease, so two lost renewals in a row are survived.
 */
export const DEFAULT_STREAM_LEASE_SECONDS = 30;

export interface HttpTransportOptions extends SyncServerApiOptions {
  /** Cap on one SSE event, so an endless event cannot exhaust memory. */
  readonly maxEventBytes?: number;
  /** See DEFAULT_STREAM_LEASE_SECONDS; 0 asks for no lease. */
  readonly streamLeaseSeconds?: number;
}

/** The sync server over HTTP: the REST calls of SyncServerApi plus its SSE event stream. */
export class HttpSyncTransport implements SyncTransport {
  readonly api: SyncServerApi;
  /** The last event id seen, sent back on reconnect (kept across streams). */
  private lastEventId: string | undefined;
  /** The server answered a renewal with 404/405: it predates leases, so renewing is pointless. */
  private leasesUnsupported = false;

  constructor(private readonly options: HttpTransportOptions) {
    this.api = new SyncServerApi(options);
  }

  listBlobs(etag?: string, keep?: (blob: StoredBlob) => boolean): Promise<ListResult> {
    return this.api.listBlobs(etag, keep);
  }
  getBlob(slotId: string): Promise<StoredBlob | undefined> {
    return this.api.getBlob(slotId);
  }
  putBlob(slotId: string, envelope: Uint8Array, knownVersion: number | undefined): Promise<PutResult> {
    return this.api.putBlob(slotId, envelope, knownVersion);
  }
  deleteBlob(slotId: string): Promise<void> {
    return this.api.deleteBlob(slotId);
  }

  openStream(slotId: string, handlers: SyncStreamHandlers): SyncStream {
    let closed = false;
    const streamFetch: FetchLike = async (url, init) => {
      const headers: Record<string, string> = { ...init.headers, Authorization: this.api.authorization };
      if (this.lastEventId !== undefined && !('Last-Event-ID' in headers)) headers['Last-Event-ID'] = this.lastEventId;
      // A server that accepts and never answers must not hold the stream in "connecting" forever:
      // no headers within the request timeout aborts it, and the error path falls back to polling.
      const controller = new AbortController();
      const outer = init.signal as AbortSignal | undefined | null;
      const forward = (): void => controller.abort(outer?.reason);
      if (outer?.aborted) forward();
      else outer?.addEventListener('abort', forward, { once: true });
      const timer = setTimeout(() => controller.abort(new Error('the sync server did not answer')), this.options.requestTimeoutMs ?? 10_000);
      let response: Response;
      try {
        response = await (this.options.fetch ?? fetch)(url, { ...init, headers, redirect: 'error', signal: controller.signal } as RequestInit);
      } finally {
        clearTimeout(timer);
      }
      handlers.activity();
      const wrapped: FetchLikeResponse = {
        body: response.body ? limitSseEvents(response.body, this.options.maxEventBytes ?? 2 * 1024 * 1024, () => handlers.activity()) : null,
        url: response.url,
        status: response.status,
        redirected: response.redirected,
        headers: response.headers,
      };
      return wrapped;
    };
    const leaseSeconds = this.options.streamLeaseSeconds ?? DEFAULT_STREAM_LEASE_SECONDS;
    let renewTimer: NodeJS.Timeout | undefined;
    let renewing = false;
    const stopRenewing = (): void => {
      if (renewTimer) clearInterval(renewTimer);
      renewTimer = undefined;
    };
    const renew = (): void => {
      if (renewing || closed) return;
      renewing = true;
      // A failed renewal is not an error of its own: the stream's watchdog judges the connection.
      void this.api
        .renewPresence(slotId)
        .then(
          (supported) => {
            if (supported) return;
            this.leasesUnsupported = true;
            stopRenewing();
          },
          () => undefined,
        )
        .finally(() => (renewing = false));
    };
    const source = new EventSource(this.api.eventsUrl(slotId, leaseSeconds), { fetch: streamFetch });
    const parse = (data: unknown): unknown => {
      try {
        return typeof data === 'string' ? JSON.parse(data) : undefined;
      } catch {
        return undefined;
      }
    };
    const track = (event: MessageEvent): boolean => {
      if (closed) return false;
      if (typeof event.lastEventId === 'string' && event.lastEventId.length > 0 && event.lastEventId.length <= MAX_LAST_EVENT_ID && /^[\x21-\x7e]+$/.test(event.lastEventId)) {
        this.lastEventId = event.lastEventId;
      }
      handlers.activity();
      return true;
    };
    source.addEventListener('open', () => {
      if (closed) return;
      if (leaseSeconds > 0 && !renewTimer && !this.leasesUnsupported) {
        renewTimer = setInterval(renew, (leaseSeconds * 1000) / 3);
        renewTimer.unref?.();
      }
      handlers.open();
    });
    source.addEventListener('blob', (event) => {
      if (!track(event)) return;
      const stored = parseStoredBlob(parse(event.data));
      if (stored) handlers.blob(stored);
    });
    source.addEventListener('delete', (event) => {
      if (!track(event)) return;
      const data = parse(event.data) as { slotId?: unknown } | undefined;
      const deleted = data && typeof data === 'object' && Object.prototype.hasOwnProperty.call(data, 'slotId') ? data.slotId : undefined;
      if (isValidSessionId(deleted)) handlers.delete(deleted);
    });
    source.addEventListener('presence', (event) => {
      if (!track(event)) return;
      const entries = parsePresence(parse(event.data));
      if (entries) handlers.presence(entries);
    });
    source.addEventListener('reset', (event) => {
      if (track(event)) handlers.reset();
    });
    source.addEventListener('error', (event) => {
      if (!closed) handlers.error(event.code, event.message);
    });
    return {
      close: () => {
        closed = true;
        stopRenewing();
        source.close();
      },
    };
  }
}
