import assert from 'node:assert/strict';
import type { SessionEntry, SyncBlob, Tombstone } from '../../../src/sync/blob';
import { liveOnOtherDevices, otherSlotsListing } from '../../../src/sync/merge';
import type { RemoteSlot } from '../../../src/sync/syncClient';
import { newSessionId } from '../../../src/terminal/sessionId';

function session(startedAt: number): SessionEntry {
  return { id: newSessionId(), hostLabel: 'h', user: 'u', hostName: 'h', port: 22, multiplexer: 'tmux', cwd: '/', startedAt };
}

function slot(deviceName: string, sessions: SessionEntry[], tombstones: Tombstone[] = [], online?: boolean): RemoteSlot {
  const slotId = newSessionId();
  const blob: SyncBlob = { format: 1, slotId, deviceName, seq: 1, writtenAt: 1, sessions, tombstones };
  return { slotId, deviceName, blob, version: 1, ...(online === undefined ? {} : { online }) };
}

describe('live on other devices', () => {
  it('groups by device, newest first, minus tombstoned and locally open sessions', () => {
    const [a1, a2, a3, b1, b2] = [session(10), session(30), session(20), session(5), session(6)];
    const laptop = slot('laptop', [a1!, a2!, a3!], [], true);
    const desktop = slot('desktop', [b1!, b2!], [{ id: a3!.id, killedAt: 99 }]);
    const groups = liveOnOtherDevices({ slots: [laptop, desktop] }, { openSessionIds: [b2!.id], tombstones: [{ id: b1!.id, killedAt: 1 }] });
    assert.deepEqual(groups.map((g) => g.deviceName), ['laptop'], 'desktop is empty after filtering and is left out');
    assert.deepEqual(groups[0]!.sessions.map((s) => s.id), [a2!.id, a1!.id]);
    assert.equal(groups[0]!.online, true);
  });

  it('names every other slot that lists a session, for the last-device check', () => {
    const shared = session(1);
    const one = slot('one', [shared]);
    const two = slot('two', [shared, session(2)]);
    const three = slot('three', [session(3)]);
    assert.deepEqual(otherSlotsListing({ slots: [one, two, three] }, shared.id).sort(), [one.slotId, two.slotId].sort());
    assert.deepEqual(otherSlotsListing({ slots: [three] }, shared.id), []);
  });
});
