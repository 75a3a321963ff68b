import * as assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { EventSource } from 'eventsource';
import { Api, makeTempDir, newSlotId, newToken, ServerProcess } from './harness';

/** The extension's client reads the stream with the `eventsource` package; check the server speaks its dialect. */
describe('sync server with the eventsource client', () => {
  let dir: string;
  let server: ServerProcess;
  before(async () => {
    dir = makeTempDir('tether-eventsource-');
    server = await ServerProcess.start(['--data-dir', dir]);
  });
  after(async () => {
    await server?.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  function open(token: string, lastEventId?: string): { source: EventSource; next(type: string): Promise<MessageEvent> } {
    const source = new EventSource(`${server.url}/v1/events?slot=${newSlotId()}`, {
      fetch: (url, init) =>
        fetch(url, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) } }),
    });
    const queues = new Map<string, MessageEvent[]>();
    const waiters = new Map<string, (event: MessageEvent) => void>();
    for (const type of ['blob', 'delete', 'presence', 'reset']) {
      source.addEventListener(type, (event) => {
        const waiter = waiters.get(type);
        if (waiter) {
          waiters.delete(type);
          waiter(event);
        } else {
          queues.set(type, [...(queues.get(type) ?? []), event]);
        }
      });
    }
    return {
      source,
      next: (type) => {
        const queued = queues.get(type)?.shift();
        if (queued) return Promise.resolve(queued);
        return new Promise((resolve, reject) => {
          waiters.set(type, resolve);
          source.addEventListener('error', (error) => reject(new Error(`stream error: ${error.message ?? error.code}`)), { once: true });
        });
      },
    };
  }

  it('delivers presence and blob events with ids that the client tracks and can resume from', async () => {
    const token = newToken();
    const api = new Api(server.url, token);
    const first = open(token);
    try {
      const presence = await first.next('presence');
      assert.equal(first.source.readyState, EventSource.OPEN);
      assert.ok(Array.isArray((JSON.parse(presence.data as string) as { slots: unknown[] }).slots));
      const slot = newSlotId();
      const payload = Buffer.from('ciphertext').toString('base64');
      await api.write(slot, payload, undefined);
      const blob = await first.next('blob');
      assert.deepEqual({ ...JSON.parse(blob.data as string), updatedAt: undefined }, { slotId: slot, version: 1, data: payload, updatedAt: undefined });
      assert.match(blob.lastEventId, /^\d+$/);

      first.source.close();
      await api.write(slot, Buffer.from('second').toString('base64'), 1);
      const second = open(token, blob.lastEventId);
      try {
        const missed = await second.next('blob');
        assert.equal((JSON.parse(missed.data as string) as { version: number }).version, 2);
      } finally {
        second.source.close();
      }
    } finally {
      first.source.close();
    }
  });
});
