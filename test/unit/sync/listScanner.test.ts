import assert from 'node:assert/strict';
import { ListScanner } from '../../../src/sync/listScanner';
import { SyncServerApi } from '../../../src/sync/syncHttp';
import { newSessionId } from '../../../src/common/sessionId';

function scan(text: string, chunkSize: number, maxEntryBytes = 1000): { entries: string[]; oversized: number; complete: boolean; found: boolean } {
  const entries: string[] = [];
  let oversized = 0;
  const scanner = new ListScanner({ maxEntryBytes, onEntry: (entry) => entries.push(entry), onOversized: () => oversized++ });
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += chunkSize) scanner.write(bytes.subarray(i, i + chunkSize));
  return { entries, oversized, complete: scanner.complete, found: scanner.foundBlobs };
}

/** A fetch that answers GET /v1/blobs with `body`, in chunks (a fake server: the unit under test is the client's parsing). */
function fakeFetch(body: string, chunkSize = 997): typeof fetch {
  return (async () => {
    const bytes = Buffer.from(body);
    return new Response(
      new ReadableStream({
        start(controller) {
          for (let i = 0; i < bytes.length; i += chunkSize) controller.enqueue(new Uint8Array(bytes.subarray(i, i + chunkSize)));
          controller.close();
        },
      }),
      { status: 200, headers: { etag: '"l-1"' } },
    );
  }) as typeof fetch;
}

describe('sync/listScanner', () => {
  const text = '{"other":{"blobs":[1]}, "blobs" : [ {"a":"x,}]\\"{"} , {"b":[1,{"c":2}]},3,"s,]",null ] ,"tail":"]"}';

  it('hands out every entry of "blobs", whatever the chunking', () => {
    for (const size of [1, 2, 3, 7, 1000]) {
      const result = scan(text, size);
      assert.deepEqual(result.entries, ['{"a":"x,}]\\"{"}', '{"b":[1,{"c":2}]}', '3', '"s,]"', 'null'], `chunk ${size}`);
      assert.ok(result.complete && result.found);
    }
  });

  it('skips an entry over the cap without buffering it', () => {
    const big = `{"blobs":[{"d":"${'x'.repeat(5000)}"},{"e":1}]}`;
    for (const size of [1, 64, 100_000]) {
      const result = scan(big, size, 100);
      assert.deepEqual(result.entries, ['{"e":1}']);
      assert.equal(result.oversized, 1);
    }
  });

  it('reports a list that never closes as incomplete, and one without "blobs" as not found', () => {
    assert.equal(scan('{"blobs":[{"a":1},{"b"', 5).complete, false);
    assert.equal(scan('{"items":[]}', 5).found, false);
  });
});

describe('SyncServerApi.listBlobs against a hostile list', () => {
  const entry = (slotId: string, data: string) => ({ slotId, version: 1, data, updatedAt: '2026-12-01T00:00:00Z' });

  it('keeps the valid slots of a list far over the size cap, skipping junk and counting it', async function () {
    this.timeout(30_000); // 16 MB through the parser: about a second on an idle machine
    const good = [newSessionId(), newSessionId()];
    const junkData = Buffer.alloc(200 * 1024, 7).toString('base64');
    const list = [entry(good[0], Buffer.from('GOOD').toString('base64'))];
    for (let i = 0; i < 60; i++) list.push(entry(newSessionId(), junkData)); // ~16 MB
    list.push(entry(good[1], Buffer.from('GOOD').toString('base64')));
    list.push({ slotId: 'not a slot', version: -1, data: '%%%', updatedAt: '' });
    const body = JSON.stringify({ blobs: list });
    assert.ok(body.length > 2 * 8 * 1024 * 1024 - 1_000_000, "twice what the client caps a list at");
    const api = new SyncServerApi({ serverUrl: 'http://sync.invalid', token: 't'.repeat(32), fetch: fakeFetch(body, 65_536), maxResponseBytes: 8 * 1024 * 1024 });
    const result = await api.listBlobs(undefined, (blob) => Buffer.from(blob.data).toString() === 'GOOD');
    assert.equal(result.notModified, false);
    if (result.notModified) return;
    assert.deepEqual(result.blobs.map((b) => b.slotId), good);
    assert.equal(result.junk, 60);
    assert.equal(result.skipped, 1);
    assert.equal(result.complete, true);
    assert.equal(result.listedSlotIds.size, 62);
  });

  it('stops reading past maxListReadBytes and says the list is incomplete', async () => {
    const slotId = newSessionId();
    const list = [entry(slotId, Buffer.from('GOOD').toString('base64'))];
    for (let i = 0; i < 20; i++) list.push(entry(newSessionId(), Buffer.alloc(100_000).toString('base64')));
    const api = new SyncServerApi({ serverUrl: 'http://sync.invalid', token: 't'.repeat(32), fetch: fakeFetch(JSON.stringify({ blobs: list })), maxResponseBytes: 100_000, maxListReadBytes: 500_000 });
    const result = await api.listBlobs();
    if (result.notModified) throw new Error('unexpected 304');
    assert.equal(result.complete, false);
    assert.equal(result.blobs[0].slotId, slotId);
    assert.ok(result.skipped >= 1);
  });
});
