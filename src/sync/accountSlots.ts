import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { validateBlob } from './blob';
import type { LegacySlots } from './deviceSync';
import { openEnvelope } from './envelope';
import { knownSlotIds } from './slotLease';
import { SyncServerApi } from './syncHttp';
import type { SyncApi } from './syncTransport';
import { deriveSyncKeys } from './syncKey';

/**
 * Slot operations on the account that no running SyncClient does for us: reading and deleting the
 * per-window slots of older versions (migration), and deleting another device's slot (Forget Device).
 * The server sees only the slot ID; blobs are opened here with the account key like any other.
 */
export class AccountSlots {
  private readonly api: SyncApi;
  private readonly encryptionKey: Uint8Array;

  constructor(options: { serverUrl: string; syncKey: Uint8Array; fetch?: typeof fetch; requestTimeoutMs?: number; api?: SyncApi }) {
    const keys = deriveSyncKeys(options.syncKey);
    this.encryptionKey = keys.encryptionKey;
    this.api = options.api ?? new SyncServerApi({ serverUrl: options.serverUrl, token: keys.token, fetch: options.fetch, requestTimeoutMs: options.requestTimeoutMs });
  }

  /** Deletes a slot on the server (404 counts as done). */
  deleteSlot(slotId: string): Promise<void> {
    return this.api.deleteBlob(slotId);
  }

  /**
   * The per-window slots this machine used before the device slot: the IDs remembered in
   * globalState plus the caches and locks left in the old sync folder.
   */
  legacySlots(legacyDir: string, rememberedIds: () => readonly string[]): LegacySlots {
    return {
      ids: async () => [...new Set([...rememberedIds(), ...(await knownSlotIds(legacyDir))])],
      read: async (slotId) => {
        const stored = await this.api.getBlob(slotId);
        if (!stored) return undefined;
        try {
          const { blob } = validateBlob(openEnvelope(this.encryptionKey, stored.data, slotId), { expectedSlotId: slotId });
          return { sessions: blob.sessions, tombstones: blob.tombstones };
        } catch {
          // Written under another key, or damaged: nothing of it can be listed anyway.
          return undefined;
        }
      },
      remove: async (slotId) => {
        await this.api.deleteBlob(slotId);
        await fs.rm(path.join(legacyDir, `sync-${slotId}.json`), { force: true });
        await fs.rm(path.join(legacyDir, `slot-${slotId}.lock`), { force: true });
      },
    };
  }
}
