import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  accountFullError,
  type AccountLimits,
  assertKeys,
  decodedSize,
  type BlobStore,
  type PresenceRecord,
  StoreError,
  type StoreChange,
  type StoreListener,
  type StoredBlob,
} from './blobStore';
import type { Precondition } from './requests';

interface IndexEntry {
  version: number;
  /** Decoded blob bytes, for the account quota. */
  bytes: number;
}

const SLOT_FILE = /^([a-z2-7]{26})\.json$/;
const PRESENCE_FILE = 'presence.json';
const LOCK_FILE = 'server.lock';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, which still means the directory is in use.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Makes `path`'s directory entry changes (create, rename, unlink) durable. */
async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `dir/name` so that a crash at any moment leaves either the old or the new content:
 * write a temp file in the same directory, fsync it, rename over the target, fsync the directory.
 */
export async function writeFileAtomic(dir: string, name: string, content: string): Promise<void> {
  const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, join(dir, name));
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await fsyncDirectory(dir);
}

function parseSlotFile(text: string, slotId: string): StoredBlob {
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const { version, data, updatedAt } = parsed;
  if (
    parsed.slotId !== slotId ||
    typeof version !== 'number' ||
    !Number.isSafeInteger(version) ||
    version < 1 ||
    typeof data !== 'string' ||
    typeof updatedAt !== 'string'
  ) {
    throw new Error('slot file does not have the expected fields');
  }
  return { slotId, version, data, updatedAt };
}

/**
 * The embedded store: `<dataDir>/accounts/<account hash>/<slotId>.json`, one file per slot, each
 * replaced atomically. An in-memory index of versions makes preconditions and slot counts cheap;
 * writes to one account are serialised so the check and the rename cannot interleave.
 */
export class FileBlobStore implements BlobStore {
  readonly kind = 'file' as const;
  private readonly accountsDir: string;
  private readonly index = new Map<string, Map<string, IndexEntry>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly listeners = new Set<StoreListener>();
  private eventId = 0;
  private startEventId = 0;
  private closed = false;

  constructor(readonly dataDir: string) {
    this.accountsDir = join(dataDir, 'accounts');
  }

  async open(): Promise<{ corrupt: string[] }> {
    await mkdir(this.accountsDir, { recursive: true, mode: 0o700 });
    await this.lock();
    // Ids rise across restarts (time-based), so an id from a previous run is older than anything we
    // hold and the client gets `reset`, never a wrong resume.
    this.startEventId = this.eventId = Date.now() * 1000;
    const corrupt: string[] = [];
    for (const account of await readdir(this.accountsDir)) {
      if (!/^[0-9a-f]{64}$/.test(account)) continue;
      const dir = join(this.accountsDir, account);
      const slots = new Map<string, IndexEntry>();
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        corrupt.push(dir);
        continue;
      }
      for (const name of names) {
        if (name.endsWith('.tmp')) {
          // A write that crashed before its rename: the old file (if any) is still intact.
          await unlink(join(dir, name)).catch(() => undefined);
          continue;
        }
        const match = SLOT_FILE.exec(name);
        if (!match) continue;
        try {
          const blob = parseSlotFile(await readFile(join(dir, name), 'utf8'), match[1]);
          slots.set(match[1], { version: blob.version, bytes: decodedSize(blob.data) });
        } catch {
          // Keep the bytes for inspection, but out of the way so the slot reads as absent.
          const aside = `${name}.corrupt-${Date.now()}`;
          await rename(join(dir, name), join(dir, aside)).catch(() => undefined);
          corrupt.push(join(dir, aside));
        }
      }
      if (slots.size > 0) this.index.set(account, slots);
    }
    return { corrupt };
  }

  initialEventId(): number {
    return this.startEventId;
  }

  async list(account: string): Promise<StoredBlob[]> {
    assertKeys(account);
    this.assertOpen();
    const slots = this.index.get(account);
    if (!slots) return [];
    const blobs: StoredBlob[] = [];
    for (const slotId of [...slots.keys()].sort()) {
      const blob = await this.get(account, slotId);
      if (blob) blobs.push(blob);
    }
    return blobs;
  }

  async get(account: string, slotId: string): Promise<StoredBlob | undefined> {
    assertKeys(account, slotId);
    this.assertOpen();
    try {
      return parseSlotFile(await readFile(this.slotPath(account, slotId), 'utf8'), slotId);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async slotCount(account: string): Promise<number> {
    assertKeys(account);
    this.assertOpen();
    return this.index.get(account)?.size ?? 0;
  }

  put(account: string, slotId: string, data: string, precondition: Precondition, limits: AccountLimits): Promise<StoredBlob> {
    assertKeys(account, slotId);
    return this.withAccountLock(account, async () => {
      this.assertOpen();
      const slots = this.index.get(account) ?? new Map<string, IndexEntry>();
      const current = slots.get(slotId);
      if (precondition.kind === 'create' && current) {
        throw new StoreError('precondition_failed', 'the slot already exists', current.version);
      }
      if (precondition.kind === 'match' && current?.version !== precondition.version) {
        throw new StoreError('precondition_failed', 'the slot has a different version', current?.version ?? null);
      }
      if (!current && slots.size >= limits.maxSlots) {
        throw new StoreError('too_many_slots', `an account may hold at most ${limits.maxSlots} slots`);
      }
      const bytes = decodedSize(data);
      let others = 0;
      for (const [id, entry] of slots) if (id !== slotId) others += entry.bytes;
      if (others + bytes > limits.maxAccountBytes) throw accountFullError(limits.maxAccountBytes, others, bytes);
      const dir = join(this.accountsDir, account);
      if (!this.index.has(account)) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await fsyncDirectory(this.accountsDir);
      }
      const blob: StoredBlob = { slotId, version: (current?.version ?? 0) + 1, data, updatedAt: new Date().toISOString() };
      await writeFileAtomic(dir, `${slotId}.json`, JSON.stringify({ format: 1, ...blob }));
      slots.set(slotId, { version: blob.version, bytes });
      this.index.set(account, slots);
      this.emit({ eventId: ++this.eventId, account, kind: 'put', blob });
      return blob;
    });
  }

  delete(account: string, slotId: string, expectedVersion?: number): Promise<void> {
    assertKeys(account, slotId);
    return this.withAccountLock(account, async () => {
      this.assertOpen();
      const slots = this.index.get(account);
      const current = slots?.get(slotId);
      if (!slots || !current) throw new StoreError('not_found', 'no such slot');
      if (expectedVersion !== undefined && expectedVersion !== current.version) {
        throw new StoreError('precondition_failed', 'the slot has a different version', current.version);
      }
      await unlink(this.slotPath(account, slotId));
      await fsyncDirectory(join(this.accountsDir, account));
      slots.delete(slotId);
      this.emit({ eventId: ++this.eventId, account, kind: 'delete', slotId });
    });
  }

  async loadLastSeen(account: string): Promise<PresenceRecord[]> {
    assertKeys(account);
    try {
      const parsed = JSON.parse(await readFile(join(this.accountsDir, account, PRESENCE_FILE), 'utf8')) as unknown;
      if (!Array.isArray(parsed)) return [];
      return parsed.filter(
        (entry): entry is PresenceRecord =>
          typeof entry === 'object' &&
          entry !== null &&
          typeof (entry as PresenceRecord).slotId === 'string' &&
          /^[a-z2-7]{26}$/.test((entry as PresenceRecord).slotId) &&
          typeof (entry as PresenceRecord).lastSeen === 'string',
      );
    } catch {
      // Missing or unreadable presence only loses "last seen" times; it is not worth failing a stream.
      return [];
    }
  }

  saveLastSeen(account: string, records: PresenceRecord[]): Promise<void> {
    assertKeys(account);
    return this.withAccountLock(account, async () => {
      if (this.closed) return;
      const dir = join(this.accountsDir, account);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const merged = new Map((await this.loadLastSeen(account)).map((record) => [record.slotId, record.lastSeen]));
      for (const record of records) merged.set(record.slotId, record.lastSeen);
      const list = [...merged].map(([slotId, lastSeen]) => ({ slotId, lastSeen }));
      await writeFileAtomic(dir, PRESENCE_FILE, JSON.stringify(list));
    });
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.locks.values()]);
    this.closed = true;
    this.listeners.clear();
    await unlink(join(this.dataDir, LOCK_FILE)).catch(() => undefined);
  }

  /**
   * One server per data dir: the version index lives in memory, so a second process would answer
   * preconditions from a stale view and lose updates. A lock left by a killed process is taken over.
   */
  private async lock(): Promise<void> {
    const path = join(this.dataDir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o600);
        try {
          await handle.writeFile(`${process.pid}\n`);
          await handle.sync();
        } finally {
          await handle.close();
        }
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new StoreError('locked', `data dir ${this.dataDir} is in use by another server (pid ${holder})`);
      }
      await unlink(path).catch(() => undefined);
    }
    throw new StoreError('locked', `could not lock data dir ${this.dataDir}`);
  }

  private slotPath(account: string, slotId: string): string {
    return join(this.accountsDir, account, `${slotId}.json`);
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreError('closed', 'the store is closed');
  }

  private emit(change: StoreChange): void {
    for (const listener of this.listeners) listener.change(change);
  }

  private withAccountLock<T>(account: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(account) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(account, settled);
    void settled.then(() => {
      if (this.locks.get(account) === settled) this.locks.delete(account);
    });
    return run;
  }
}
