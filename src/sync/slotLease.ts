import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isValidSessionId, newSessionId } from '../common/sessionId';
import { ReasonError } from '../common/reasonError';

/**
 * How several VS Code windows on one machine share sync slots.
 *
 * Every window runs its own extension host and therefore its own SyncClient, but globalState and
 * the global storage folder are shared by all windows. If two windows wrote one slot they would
 * overwrite each other's session lists, so each window holds an exclusive lease on one slot:
 * a lock file `slot-<id>.lock` (created with O_EXCL, holding the owner's pid) in the shared folder.
 * A window takes the first known slot whose lock is free or stale (its pid is gone), and mints a
 * new slot only when every known slot is held. So one window uses one slot for good, N windows
 * use N slots, and a slot is reused by whichever window starts next after its owner closed.
 * A slot left without a window keeps listing its sessions, which are still alive (detached) on
 * their hosts, so other devices can still join them.
 */

export interface SlotLease {
  readonly slotId: string;
  /** True when no known slot was free and this one was minted. */
  readonly created: boolean;
  release(): Promise<void>;
}

export type SlotLeaseErrorReason = 'exhausted';

export class SlotLeaseError extends ReasonError<SlotLeaseErrorReason> {
  override readonly name = 'SlotLeaseError';
}

/** True if a process with this pid exists (EPERM means it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockPath(dir: string, slotId: string): string {
  return path.join(dir, `slot-${slotId}.lock`);
}

/** Slot IDs that this machine has used before, found from the per-slot files in `dir`. */
export async function knownSlotIds(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  const ids = new Set<string>();
  for (const name of names) {
    const match = /^(?:slot-([a-z2-7]{26})\.lock|sync-([a-z2-7]{26})\.json)$/.exec(name);
    const id = match?.[1] ?? match?.[2];
    if (id) ids.add(id);
  }
  return [...ids].sort();
}

async function tryLock(dir: string, slotId: string, pid: number, isAlive: (pid: number) => boolean): Promise<boolean> {
  const file = lockPath(dir, slotId);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await fs.open(file, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify({ pid, since: new Date().toISOString() }));
      } finally {
        await handle.close();
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = Number.NaN;
    try {
      owner = Number((JSON.parse(await fs.readFile(file, 'utf8')) as { pid?: unknown }).pid);
    } catch {
      // An unreadable lock is treated as stale: its writer crashed mid-write.
    }
    if (owner === pid || isAlive(owner)) return false;
    await fs.rm(file, { force: true });
  }
  return false;
}

/**
 * Takes a lease on the first free slot among `preferred` (then any slot seen in `dir`), or a new one.
 * `isAlive` and `pid` are injectable so tests can play several windows in one process.
 */
export async function acquireSlotLease(
  dir: string,
  preferred: readonly string[],
  options: { pid?: number; isAlive?: (pid: number) => boolean; maxSlots?: number } = {},
): Promise<SlotLease> {
  const pid = options.pid ?? process.pid;
  const isAlive = options.isAlive ?? processAlive;
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const candidates = [...new Set([...preferred.filter((id) => isValidSessionId(id)), ...(await knownSlotIds(dir))])];
  for (const slotId of candidates) {
    if (await tryLock(dir, slotId, pid, isAlive)) return lease(dir, slotId, false);
  }
  if (candidates.length >= (options.maxSlots ?? 32)) {
    throw new SlotLeaseError('exhausted', `all ${candidates.length} sync slots of this machine are held by open windows; close a window and reload`);
  }
  const slotId = newSessionId();
  if (!(await tryLock(dir, slotId, pid, isAlive))) throw new SlotLeaseError('exhausted', 'could not lock a new sync slot');
  return lease(dir, slotId, true);
}

function lease(dir: string, slotId: string, created: boolean): SlotLease {
  let released = false;
  return {
    slotId,
    created,
    release: async () => {
      if (released) return;
      released = true;
      await fs.rm(lockPath(dir, slotId), { force: true });
    },
  };
}
