import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEntry } from '../../../src/sync/blob';
import { SyncClient } from '../../../src/sync/syncClient';
import type { ListResult, PutResult, StoredBlob } from '../../../src/sync/syncHttp';
import { deriveSyncKeys, generateSyncKey } from '../../../src/sync/syncKey';
import { sealEnvelope } from '../../../src/sync/envelope';
import { BLOB_FORMAT } from '../../../src/sync/blob';
import type { SyncStream, SyncStreamHandlers, SyncTransport } from '../../../src/sync/syncTransport';
import { newSessionId } from '../../../src/common/sessionId';

/**
 * A fake transport (an in-memory account), so the order of a list and a write can be forced: the
 * list is answered from what the account held when it was asked, and only when the test says so.
 */
class GatedFakeTransport implements SyncTransport {
  readonly slots = new Map<string, StoredBlob>();
  puts = 0;
  private releaseList: (() => void) | undefined;
  listAsked: Promise<void>;
  private listAskedResolve!: () => void;
  holdLists = true;

  constructor() {
    this.listAsked = new Promise((resolve) => (this.listAskedResolve = resolve));
  }

  async listBlobs(): Promise<ListResult> {
    const snapshot = [...this.slots.values()];
    this.listAskedResolve();
    if (this.holdLists) await new Promise<void>((resolve) => (this.releaseList = resolve));
    return { notModified: false, blobs: snapshot, listedSlotIds: new Set(snapshot.map((b) => b.slotId)), skipped: 0, junk: 0, complete: true };
  }

  release(): void {
    this.holdLists = false;
    this.releaseList?.();
  }

  async getBlob(slotId: string): Promise<StoredBlob | undefined> {
    return this.slots.get(slotId);
  }

  async putBlob(slotId: string, envelope: Uint8Array, knownVersion: number | undefined): Promise<PutResult> {
    this.puts++;
    const current = this.slots.get(slotId);
    if (current?.version !== knownVersion) return { ok: false, conflict: true };
    const version = (current?.version ?? 0) + 1;
    this.slots.set(slotId, { slotId, version, data: envelope });
    return { ok: true, version };
  }

  async deleteBlob(slotId: string): Promise<void> {
    this.slots.delete(slotId);
  }

  handlers: SyncStreamHandlers | undefined;

  openStream(_slotId: string, handlers: SyncStreamHandlers): SyncStream {
    this.handlers = handlers;
    queueMicrotask(() => handlers.open());
    return { close() {} };
  }
}

const session = (): SessionEntry => ({ id: newSessionId(), hostLabel: 'box', user: 'dev', hostName: 'box.example', port: 22, multiplexer: 'tmux', cwd: '~', startedAt: Date.now() });

describe('SyncClient: a list racing the stream', () => {
  it('a list that began before our first write does not make us think the server lost the slot', async () => {
    const transport = new GatedFakeTransport();
    const lines: string[] = [];
    const log = { debug() {}, info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) };
    const client = new SyncClient({ serverUrl: 'http://127.0.0.1:9/unused-the-transport-is-given', syncKey: generateSyncKey(), slotId: newSessionId(), deviceName: 'laptop', stateDir: mkdtempSync(join(tmpdir(), 'tether-own-slot-')), transport, log, writeDebounceMs: 10 });
    await client.start();
    await transport.listAsked; // the stream opened and its catch-up list is out, seeing no slot yet
    client.publish([session()]);
    assert.ok(await client.flush(), 'the write landed');
    transport.release();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(await client.flush(), 'nothing is left unwritten');
    assert.equal(transport.puts, 1, 'written once, not again as if the server had lost it');
    assert.ok(!lines.some((line) => /missing on the server/.test(line)), lines.join('\n'));
    await client.stop();
  });

  it('a slot the stream brought in after a list began is not dropped as deleted by that list', async () => {
    const transport = new GatedFakeTransport();
    const syncKey = generateSyncKey();
    const client = new SyncClient({ serverUrl: 'http://127.0.0.1:9/unused-the-transport-is-given', syncKey, slotId: newSessionId(), deviceName: 'laptop', stateDir: mkdtempSync(join(tmpdir(), 'tether-list-race-')), transport });
    await client.start();
    await transport.listAsked; // the catch-up list is out and saw an empty account
    // Meanwhile another device writes its slot for the first time; the stream delivers it.
    const other = newSessionId();
    const blob = { format: BLOB_FORMAT, slotId: other, deviceName: 'desktop', seq: 1, writtenAt: Date.now(), sessions: [session()], tombstones: [] };
    const stored: StoredBlob = { slotId: other, version: 1, data: sealEnvelope(deriveSyncKeys(syncKey).encryptionKey, blob) };
    transport.slots.set(other, stored);
    transport.handlers!.blob(stored);
    assert.deepEqual(client.getRemoteState().slots.map((slot) => slot.deviceName), ['desktop']);
    transport.release(); // the old list arrives: it cannot know about the new slot
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(client.getRemoteState().slots.map((slot) => slot.deviceName), ['desktop'], 'the slot is still listed');
    await client.stop();
  });
});
