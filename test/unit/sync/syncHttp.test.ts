import assert from 'node:assert/strict';
import { Backoff } from '../../../src/sync/backoff';
import { Emitter } from '../../../src/common/emitter';
import { limitSseEvents, parsePresence, parseStoredBlob, readCappedBody, SyncHttpError } from '../../../src/sync/syncHttp';
import { newSessionId } from '../../../src/common/sessionId';

async function drain(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text;
    text += Buffer.from(value).toString('utf8');
  }
}

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new Uint8Array(Buffer.from(chunk)));
      controller.close();
    },
  });
}

describe('sync HTTP helpers', () => {
  it('parses a stored blob and refuses every malformed field', () => {
    const slotId = newSessionId();
    const good = { slotId, version: 3, data: Buffer.from('hello').toString('base64'), updatedAt: '2026-11-26T12:00:00Z' };
    assert.deepEqual(parseStoredBlob(good), { ...good, data: new Uint8Array(Buffer.from('hello')) });
    for (const bad of [
      null,
      [],
      { ...good, slotId: '../x' },
      { ...good, version: -1 },
      { ...good, version: '3' },
      { ...good, version: 1.5 },
      { ...good, data: 'not base64!' },
      { ...good, data: 'abc' },
      { ...good, data: 42 },
      { ...good, data: 'A'.repeat(4 * 1024 * 1024) },
      JSON.parse(`{"__proto__":{"slotId":"${slotId}"},"version":1,"data":""}`),
    ]) {
      assert.equal(parseStoredBlob(bad), undefined, JSON.stringify(bad)?.slice(0, 80));
    }
  });

  it('parses presence and skips bad entries', () => {
    const slotId = newSessionId();
    assert.deepEqual(parsePresence({ slots: [{ slotId, online: true, lastSeen: '2026-11-26T12:00:00Z' }, { slotId: 'x', online: true }, { slotId, online: 'yes' }, 7] }), [
      { slotId, online: true, lastSeen: Date.UTC(2026, 10, 26, 12) },
    ]);
    assert.equal(parsePresence(42), undefined);
    assert.equal(parsePresence({ slots: 'all' }), undefined);
  });

  it('reads a body up to the cap and refuses one beyond it', async () => {
    assert.equal(Buffer.from(await readCappedBody(new Response('x'.repeat(100)), 100)).toString(), 'x'.repeat(100));
    await assert.rejects(readCappedBody(new Response(streamOf(['x'.repeat(60), 'x'.repeat(60)])), 100), (e: unknown) => SyncHttpError.is(e) && e.reason === 'too-large');
    await assert.rejects(readCappedBody(new Response('x', { headers: { 'content-length': '999999' } }), 100), (e: unknown) => SyncHttpError.is(e) && e.reason === 'too-large');
  });

  it('lets normal SSE through and cuts an event that grows past the cap', async () => {
    let activity = 0;
    const normal = ['event: blob\r\ndata: ', 'a'.repeat(50), '\r\n\r\n', ': heartbeat\n\n', 'data: b\rdata: c\r\r'];
    assert.equal(await drain(limitSseEvents(streamOf(normal), 80, () => activity++)), normal.join(''));
    assert.equal(activity, normal.length);
    // Many short lines without a blank line are still one event.
    await assert.rejects(drain(limitSseEvents(streamOf(Array.from({ length: 20 }, () => 'data: xxxxxxxx\r\n')), 80, () => undefined)), (e: unknown) => SyncHttpError.is(e) && e.reason === 'too-large');
    await assert.rejects(drain(limitSseEvents(streamOf(['data: ', 'y'.repeat(100)]), 80, () => undefined)), (e: unknown) => SyncHttpError.is(e) && e.reason === 'too-large');
  });
});

describe('backoff and emitter', () => {
  it('backs off exponentially with jitter, capped, and resets', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => low.next()), [50, 100, 200, 400, 500, 500]);
    low.reset();
    assert.equal(low.next(), 50);
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next()), [100, 200, 400, 800, 1000]);
  });

  it('isolates a throwing listener and stops after dispose', () => {
    const errors: unknown[] = [];
    const emitter = new Emitter<number>((e) => errors.push(e));
    const seen: number[] = [];
    emitter.event(() => {
      throw new Error('boom');
    });
    const subscription = emitter.event((n) => seen.push(n));
    emitter.fire(1);
    subscription.dispose();
    emitter.fire(2);
    assert.deepEqual(seen, [1]);
    assert.equal(errors.length, 2);
  });
});
