import * as assert from 'node:assert/strict';
import type { PresenceRecord, StoreChange } from '../../../src/server/blobStore';
import { EventHub, type StreamSink } from '../../../src/server/eventHub';

const ACCOUNT = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const SLOT_A = 'aaaaaaaaaaaaaaaaaaaaaaaaaa';
const SLOT_B = 'bbbbbbbbbbbbbbbbbbbbbbbbbb';

interface Parsed {
  id?: string;
  event?: string;
  data: string;
}

class MemorySink implements StreamSink {
  text = '';
  ended = false;
  send(chunk: string): void {
    this.text += chunk;
  }
  destroyed = false;
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  events(): Parsed[] {
    return this.text
      .split('\n\n')
      .filter((block) => block.trim() !== '' && !block.startsWith(':'))
      .map((block) => {
        const event: Parsed = { data: '' };
        for (const line of block.split('\n')) {
          const [field, ...rest] = line.split(': ');
          const value = rest.join(': ');
          if (field === 'id') event.id = value;
          else if (field === 'event') event.event = value;
          else if (field === 'data') event.data += value;
        }
        return event;
      });
  }
}

function put(eventId: number, slotId: string, version: number, account = ACCOUNT): StoreChange {
  return { eventId, account, kind: 'put', blob: { slotId, version, data: 'AAAA', updatedAt: '2026-01-01T00:00:00.000Z' } };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('server/eventHub', () => {
  let saved: { account: string; records: PresenceRecord[] }[];
  let stored: PresenceRecord[];
  let hub: EventHub;
  let clock: number;
  let announced: [string, boolean, string][];
  beforeEach(() => {
    saved = [];
    stored = [];
    announced = [];
    clock = Date.parse('2026-02-02T00:00:00.000Z');
    hub = new EventHub({
      eventLogSize: 3,
      initialEventId: 100,
      remotePresenceTtlMs: 30_000,
      now: () => new Date(clock),
      announce: (_account, slotId, online, lastSeen) => announced.push([slotId, online, lastSeen]),
      loadLastSeen: async () => stored,
      saveLastSeen: async (account, records) => {
        saved.push({ account, records });
      },
    });
  });

  it('fans a change out to every stream of the account, blob inline, and to no other account', async () => {
    const one = new MemorySink();
    const two = new MemorySink();
    const other = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, one);
    hub.open(ACCOUNT, undefined, { kind: 'none' }, two);
    hub.open(OTHER, undefined, { kind: 'none' }, other);
    await tick();
    hub.publish(put(101, SLOT_A, 1));
    for (const sink of [one, two]) {
      const blob = sink.events().find((event) => event.event === 'blob');
      assert.ok(blob);
      assert.equal(blob.id, '101');
      assert.deepEqual(JSON.parse(blob.data), { slotId: SLOT_A, version: 1, data: 'AAAA', updatedAt: '2026-01-01T00:00:00.000Z' });
    }
    assert.equal(other.events().filter((event) => event.event === 'blob').length, 0);
  });

  it('replays what a reconnecting client missed, and resets one that is too far behind or unknown', async () => {
    hub.open(ACCOUNT, undefined, { kind: 'none' }, new MemorySink());
    for (let id = 101; id <= 105; id++) hub.publish(put(id, SLOT_A, id - 100));
    const resumed = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'id', id: 103 }, resumed);
    assert.deepEqual(resumed.events().map((event) => [event.event, event.id]), [['blob', '104'], ['blob', '105']]);

    for (const resume of [{ kind: 'id' as const, id: 101 }, { kind: 'id' as const, id: 999 }, { kind: 'invalid' as const }]) {
      const sink = new MemorySink();
      hub.open(ACCOUNT, undefined, resume, sink);
      const events = sink.events();
      assert.equal(events[0].event, 'reset', JSON.stringify(resume));
      assert.equal(events[0].id, '105', 'a reset carries the newest id as the next resume point');
      assert.equal(events.filter((event) => event.event === 'blob').length, 0);
    }
  });

  it('treats an id from before this process started as too old', () => {
    const sink = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'id', id: 50 }, sink);
    assert.equal(sink.events()[0].event, 'reset');
  });

  it('reports presence on connect and when a slot stream opens or closes, and saves lastSeen', async () => {
    stored = [{ slotId: SLOT_B, lastSeen: '2025-12-31T00:00:00.000Z' }];
    const watcher = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, watcher);
    await tick();
    const first = watcher.events().filter((event) => event.event === 'presence');
    assert.equal(first.length, 1);
    assert.deepEqual(JSON.parse(first[0].data), { slots: [{ slotId: SLOT_B, online: false, lastSeen: '2025-12-31T00:00:00.000Z' }] });

    const device = hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, new MemorySink());
    await tick();
    let last = watcher.events().filter((event) => event.event === 'presence').at(-1);
    assert.deepEqual(JSON.parse(last?.data ?? '{}').slots, [
      { slotId: SLOT_A, online: true, lastSeen: '2026-02-02T00:00:00.000Z' },
      { slotId: SLOT_B, online: false, lastSeen: '2025-12-31T00:00:00.000Z' },
    ]);

    hub.close(device);
    last = watcher.events().filter((event) => event.event === 'presence').at(-1);
    assert.equal(JSON.parse(last?.data ?? '{}').slots[0].online, false);
    await tick();
    assert.deepEqual(saved, [{ account: ACCOUNT, records: [{ slotId: SLOT_A, lastSeen: '2026-02-02T00:00:00.000Z' }] }]);
  });

  it('stays online while a second stream of the same slot is open', async () => {
    const watcher = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, watcher);
    const first = hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, new MemorySink());
    hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, new MemorySink());
    await tick();
    hub.close(first);
    assert.equal(hub.presenceSnapshot(ACCOUNT).slots[0].online, true);
    assert.equal(saved.length, 0);
  });

  it('ends a leased stream whose slot stops renewing, and takes the slot offline', async () => {
    const watcher = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, watcher);
    const vanishing = new MemorySink();
    const renewing = new MemorySink();
    const unleased = new MemorySink();
    hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, vanishing, 30_000);
    hub.open(ACCOUNT, SLOT_B, { kind: 'none' }, renewing, 30_000);
    hub.open(OTHER, SLOT_A, { kind: 'none' }, unleased);
    await tick();
    const online = (): Record<string, boolean> => Object.fromEntries(hub.presenceSnapshot(ACCOUNT).slots.map((slot) => [slot.slotId, slot.online]));
    assert.deepEqual(online(), { [SLOT_A]: true, [SLOT_B]: true });

    clock += 20_000;
    assert.equal(hub.renew(ACCOUNT, SLOT_B), true);
    assert.equal(hub.renew(OTHER, SLOT_B), false, 'no stream of that slot in that account');
    assert.deepEqual(hub.expireLeases(), []);
    clock += 10_000;
    const expired = hub.expireLeases();
    assert.deepEqual(expired.map((stream) => stream.slotId), [SLOT_A], 'only the stream that stopped renewing');
    assert.equal(vanishing.destroyed, true);
    assert.equal(renewing.destroyed, false);
    assert.deepEqual(online(), { [SLOT_A]: false, [SLOT_B]: true });
    const last = JSON.parse(watcher.events().filter((event) => event.event === 'presence').at(-1)?.data ?? '{}').slots;
    assert.deepEqual(last[0], { slotId: SLOT_A, online: false, lastSeen: '2026-02-02T00:00:30.000Z' }, 'the other devices are told at once');
    assert.deepEqual(announced.at(-1), [SLOT_A, false, '2026-02-02T00:00:30.000Z'], 'and the other server processes');

    clock += 3_600_000;
    assert.deepEqual(hub.expireLeases().map((stream) => stream.slotId), [SLOT_B]);
    assert.equal(unleased.destroyed, false, 'a stream without a lease (an older client) is never ended for it');
    assert.equal(hub.streamCount(OTHER), 1);
  });

  it('sends reset to every stream after a gap in the change feed', () => {
    const sink = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, sink);
    hub.publish(put(101, SLOT_A, 1));
    hub.gap(200);
    const events = sink.events();
    assert.equal(events.at(-1)?.event, 'reset');
    const late = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'id', id: 101 }, late);
    assert.equal(late.events()[0].event, 'reset');
  });

  it('still delivers an out-of-order change live, but no longer vouches for the past', () => {
    const sink = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, sink);
    hub.publish(put(110, SLOT_A, 1));
    hub.publish(put(108, SLOT_B, 1));
    assert.deepEqual(sink.events().filter((event) => event.event === 'blob').map((event) => event.id), ['110', '108']);
    const late = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'id', id: 109 }, late);
    assert.equal(late.events()[0].event, 'reset');
  });

  it('ends every stream on shutdown and records online slots', async () => {
    const sink = new MemorySink();
    hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, sink);
    await tick();
    await hub.endAll();
    assert.equal(sink.ended, true);
    assert.equal(hub.totalStreams, 0);
    assert.deepEqual(saved, [{ account: ACCOUNT, records: [{ slotId: SLOT_A, lastSeen: '2026-02-02T00:00:00.000Z' }] }]);
  });

  it('announces local transitions to other processes, and repeats online slots on request', async () => {
    const first = hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, new MemorySink());
    const second = hub.open(ACCOUNT, SLOT_A, { kind: 'none' }, new MemorySink());
    await tick();
    assert.deepEqual(announced, [[SLOT_A, true, '2026-02-02T00:00:00.000Z']], 'one announcement for the first stream only');
    hub.announceOnline();
    assert.equal(announced.length, 2);
    hub.close(first);
    assert.equal(announced.length, 2);
    clock += 1000;
    hub.close(second);
    assert.deepEqual(announced.at(-1), [SLOT_A, false, '2026-02-02T00:00:01.000Z']);
    hub.announceOnline();
    assert.equal(announced.length, 3, 'nothing online, nothing repeated');
  });

  it('merges presence reported by other processes, and expires it when not repeated', async () => {
    const watcher = new MemorySink();
    hub.open(ACCOUNT, undefined, { kind: 'none' }, watcher);
    await tick();
    const presence = (): { slotId: string; online: boolean; lastSeen: string }[] =>
      JSON.parse(watcher.events().filter((event) => event.event === 'presence').at(-1)?.data ?? '{}').slots;

    hub.remotePresence({ account: ACCOUNT, slotId: SLOT_B, origin: 'p2', online: true, lastSeen: '2026-02-02T00:00:00.000Z' });
    assert.deepEqual(presence(), [{ slotId: SLOT_B, online: true, lastSeen: '2026-02-02T00:00:00.000Z' }]);
    const count = watcher.events().length;
    hub.remotePresence({ account: ACCOUNT, slotId: SLOT_B, origin: 'p2', online: true, lastSeen: '2026-02-02T00:00:00.000Z' });
    assert.equal(watcher.events().length, count, 'a repeat of "still online" is not news');

    hub.remotePresence({ account: ACCOUNT, slotId: SLOT_B, origin: 'p2', online: false, lastSeen: '2026-02-02T00:00:05.000Z' });
    assert.deepEqual(presence(), [{ slotId: SLOT_B, online: false, lastSeen: '2026-02-02T00:00:05.000Z' }]);

    hub.remotePresence({ account: ACCOUNT, slotId: SLOT_B, origin: 'p3', online: true, lastSeen: '2026-02-02T00:00:06.000Z' });
    assert.equal(presence()[0].online, true);
    clock += 29_000;
    hub.heartbeat();
    assert.equal(presence()[0].online, true);
    clock += 2_000;
    hub.heartbeat();
    assert.equal(presence()[0].online, false, 'a process that stopped repeating (e.g. died) no longer counts');
  });

  it('keeps all event logs within a global byte budget, forgetting idle accounts first', () => {
    const small = new EventHub({
      eventLogSize: 100,
      initialEventId: 0,
      totalLogBytes: 1_000,
      loadLastSeen: async () => [],
      saveLastSeen: async () => undefined,
    });
    const live = new MemorySink();
    small.open(ACCOUNT, undefined, { kind: 'none' }, live);
    const blob = (eventId: number, account: string): StoreChange => ({
      eventId,
      account,
      kind: 'put',
      blob: { slotId: SLOT_A, version: eventId, data: 'x'.repeat(300), updatedAt: '2026-01-01T00:00:00.000Z' },
    });
    small.publish(blob(1, OTHER));
    small.publish(blob(2, ACCOUNT));
    small.publish(blob(3, ACCOUNT));
    assert.ok(small.heldLogBytes <= 1_000, `held ${small.heldLogBytes}`);
    // OTHER was idle, so its log went first; ACCOUNT (streaming) can still resume.
    const otherResume = new MemorySink();
    small.open(OTHER, undefined, { kind: 'id', id: 0 }, otherResume);
    assert.equal(otherResume.events()[0].event, 'reset');
    const resume = new MemorySink();
    small.open(ACCOUNT, undefined, { kind: 'id', id: 2 }, resume);
    assert.deepEqual(resume.events().map((event) => event.id), ['3']);
    assert.equal(live.events().filter((event) => event.event === 'blob').length, 2, 'live delivery is not affected by the budget');
  });
});
