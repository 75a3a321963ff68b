import type { Precondition } from './requests';

/** One slot's ciphertext as the API returns it. `data` is the envelope in base64; the server never decodes it. */
export interface StoredBlob {
  slotId: string;
  version: number;
  data: string;
  updatedAt: string;
}

/** A committed change, with the event id it carries on every server's stream. */
export type StoreChange =
  | { eventId: number; account: string; kind: 'put'; blob: StoredBlob }
  | { eventId: number; account: string; kind: 'delete'; slotId: string };

/** A presence report from another server process sharing the store. */
export interface RemotePresence {
  account: string;
  slotId: string;
  /** Which process: its streams count as one source that can go away. */
  origin: string;
  online: boolean;
  lastSeen: string;
}

export interface StoreListener {
  change(change: StoreChange): void;
  /** Another process's slot came online or left (stores shared by several processes only). */
  presence?(report: RemotePresence): void;
  /** A slot renewed its presence through another process (see announceRenewal). */
  renewal?(account: string, slotId: string): void;
  /**
   * The change feed had a gap (e.g. a lost LISTEN connection): streams must refetch. Changes with ids
   * above `resumableFrom` will all be reported.
   */
  gap(resumableFrom: number): void;
}

export interface PresenceRecord {
  slotId: string;
  lastSeen: string;
}

export type StoreErrorReason = 'precondition_failed' | 'not_found' | 'too_many_slots' | 'account_full' | 'closed' | 'invalid_key' | 'locked';

/** What one account may hold. */
export interface AccountLimits {
  maxSlots: number;
  /** Sum of every slot's decoded blob size (see `decodedSize`). */
  maxAccountBytes: number;
}

/** Bytes that a standard padded base64 text decodes to (what the blob limits count). */
export function decodedSize(base64: string): number {
  return (base64.length / 4) * 3 - (base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0);
}

export function accountFullError(limit: number, used: number, adding: number): StoreError {
  return new StoreError('account_full', `the account holds ${used} bytes of blobs; adding ${adding} would pass its ${limit}-byte quota`);
}

export class StoreError extends Error {
  constructor(
    readonly reason: StoreErrorReason,
    message: string,
    /** For precondition_failed: the slot's version now, or null when the slot does not exist. */
    readonly currentVersion: number | null = null,
  ) {
    super(message);
    this.name = 'StoreError';
  }
  static is(error: unknown): error is StoreError {
    return error instanceof StoreError;
  }
}

/**
 * Durable per-account blob storage. Every method resolves only once its effect is durable, and every
 * committed put/delete is reported to subscribers exactly once per process, in commit order per account.
 * `account` is the hex sha256 of the bearer token.
 */
export interface BlobStore {
  readonly kind: 'file' | 'postgres';
  /** Prepares storage; reports (does not throw on) unreadable entries. */
  open(): Promise<{ corrupt: string[] }>;
  /** The highest event id issued before this process started following changes. */
  initialEventId(): number;
  list(account: string): Promise<StoredBlob[]>;
  get(account: string, slotId: string): Promise<StoredBlob | undefined>;
  /** Writes a slot if the precondition holds; throws StoreError precondition_failed / too_many_slots / account_full. */
  put(account: string, slotId: string, data: string, precondition: Precondition, limits: AccountLimits): Promise<StoredBlob>;
  /** How many slots the account holds (0: nobody has written to it, or everything was deleted). */
  slotCount(account: string): Promise<number>;
  /** Removes a slot; throws StoreError not_found, or precondition_failed when `expectedVersion` differs. */
  delete(account: string, slotId: string, expectedVersion?: number): Promise<void>;
  loadLastSeen(account: string): Promise<PresenceRecord[]>;
  saveLastSeen(account: string, records: PresenceRecord[]): Promise<void>;
  subscribe(listener: StoreListener): () => void;
  /** Tells the other processes on this store about a slot's stream here; absent for single-process stores. */
  announcePresence?(account: string, slotId: string, online: boolean, lastSeen: string): Promise<void>;
  /** Passes a presence renewal to the other processes, one of which may hold the slot's stream. */
  announceRenewal?(account: string, slotId: string): Promise<void>;
  close(): Promise<void>;
}

const ACCOUNT = /^[0-9a-f]{64}$/;
const SLOT = /^[a-z2-7]{26}$/;

/** Defence in depth: stores build paths and keys from these, so check them again here. */
export function assertKeys(account: string, slotId?: string): void {
  if (!ACCOUNT.test(account)) throw new StoreError('invalid_key', 'account must be 64 hex characters');
  if (slotId !== undefined && !SLOT.test(slotId)) throw new StoreError('invalid_key', 'slotId must match ^[a-z2-7]{26}$');
}
