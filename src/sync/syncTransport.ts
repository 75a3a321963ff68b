import type { ListResult, PresenceEntry, PutResult, StoredBlob } from './syncHttp';

/**
 * What the sync client needs from wherever the account's blobs live: the sync server over HTTP
 * (syncHttp.ts, httpTransport.ts) or files on an SSH host (sshTransport.ts). Both give the same
 * semantics: per-slot versions with preconditions, deletes, a change stream and presence. Every
 * answer is untrusted; the client opens and validates each blob itself.
 */
export interface SyncApi {
  /** Every slot of the account; `keep` filters entries as they are read (junk does not count against caps). */
  listBlobs(etag?: string, keep?: (blob: StoredBlob) => boolean): Promise<ListResult>;
  /** One slot, or undefined when it does not exist. */
  getBlob(slotId: string): Promise<StoredBlob | undefined>;
  /** Writes a slot if its version is still `knownVersion` (undefined: the slot must not exist yet). */
  putBlob(slotId: string, envelope: Uint8Array, knownVersion: number | undefined): Promise<PutResult>;
  /** Removes a slot; a missing slot counts as done. */
  deleteBlob(slotId: string): Promise<void>;
}

/** What a change stream reports; the client treats every argument as untrusted. */
export interface SyncStreamHandlers {
  /** The stream is up: the client refetches to close the gap, then it is live. */
  open(): void;
  /** Any sign of life (a byte, a heartbeat), for the client's idle watchdog. */
  activity(): void;
  blob(stored: StoredBlob): void;
  delete(slotId: string): void;
  /** The full presence list of the account (replaces the previous one). */
  presence(entries: PresenceEntry[]): void;
  /** The stream lost track: the client must refetch everything. */
  reset(): void;
  /** The stream is down. `code` is an HTTP status when the transport has one (below 500: refused). */
  error(code: number | undefined, message: string | undefined): void;
}

export interface SyncStream {
  close(): void;
}

export interface SyncTransport extends SyncApi {
  /** Opens the change stream for `slotId` (which is also what presence reports as online). */
  openStream(slotId: string, handlers: SyncStreamHandlers): SyncStream;
  /** Releases what the transport holds (called once, when the client stops). */
  dispose?(): Promise<void> | void;
}
