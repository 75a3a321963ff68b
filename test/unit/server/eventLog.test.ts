import * as assert from 'node:assert/strict';
import { EventLog } from '../../../src/server/eventLog';

const event = (id: number) => ({ id, event: 'blob' as const, data: `{"n":${id}}` });

describe('server/eventLog', () => {
  it('returns what a client missed', () => {
    const log = new EventLog(100, 10);
    for (const id of [101, 102, 105]) assert.equal(log.append(event(id)), true);
    assert.deepEqual(log.since(102), { kind: 'events', events: [event(105)] });
    assert.deepEqual(log.since(100), { kind: 'events', events: [event(101), event(102), event(105)] });
    assert.deepEqual(log.since(105), { kind: 'events', events: [] });
  });

  it('resets a client whose id is older than the floor, or newer than anything issued', () => {
    const log = new EventLog(100, 10);
    log.append(event(101));
    assert.deepEqual(log.since(99), { kind: 'reset' });
    assert.deepEqual(log.since(102), { kind: 'reset' });
  });

  it('stays bounded and raises the floor as it drops events', () => {
    const log = new EventLog(0, 3);
    for (let id = 1; id <= 5; id++) log.append(event(id));
    assert.equal(log.length, 3);
    assert.equal(log.oldestResumableId, 2);
    assert.deepEqual(log.since(1), { kind: 'reset' });
    assert.deepEqual(log.since(2), { kind: 'events', events: [event(3), event(4), event(5)] });
  });

  it('drops ids that do not rise', () => {
    const log = new EventLog(0, 3);
    log.append(event(5));
    assert.equal(log.append(event(5)), false);
    assert.equal(log.append(event(4)), false);
    assert.equal(log.latestId, 5);
  });

  it('truncate forgets the past', () => {
    const log = new EventLog(0, 10);
    log.append(event(1));
    log.append(event(2));
    log.truncate(2);
    assert.deepEqual(log.since(1), { kind: 'reset' });
    assert.deepEqual(log.since(2), { kind: 'events', events: [] });
  });

  it('bounds the payload bytes it holds, always keeping the newest event', () => {
    const big = (id: number) => ({ id, event: 'blob' as const, data: 'x'.repeat(40) });
    const log = new EventLog(0, 100, 100);
    for (let id = 1; id <= 5; id++) log.append(big(id));
    assert.equal(log.length, 2);
    assert.ok(log.bytes <= 100);
    assert.deepEqual(log.since(2), { kind: 'reset' }, 'a client behind what was dropped refetches');
    assert.equal((log.since(3) as { events: unknown[] }).events.length, 2);
    log.append({ id: 6, event: 'blob', data: 'y'.repeat(500) });
    assert.equal(log.length, 1, 'an oversized event is still kept alone');
    assert.equal(log.bytes, 500);
  });
});
