import assert from 'node:assert/strict';
import type { SessionEntry, SyncBlob } from '../../../src/sync/blob';
import { LastDeviceInput, RemoteSlotView, ago, devicesListing, liveOnOtherDevices, manifestAllowsKill } from '../../../src/sync/liveSessions';
import { newSessionId } from '../../../src/common/sessionId';

const session = (startedAt = 1000): SessionEntry => ({
  id: newSessionId(), hostLabel: 'build-1', user: 'alice', hostName: '10.0.0.5', port: 22, multiplexer: 'tmux', cwd: '/srv', startedAt,
});

const slot = (deviceName: string, sessions: SessionEntry[], tombstones: { id: string; killedAt: number }[] = [], online?: boolean): RemoteSlotView => {
  const slotId = newSessionId();
  const blob: SyncBlob = { format: 1, slotId, deviceName, seq: 1, writtenAt: 1, sessions, tombstones };
  return { slotId, deviceName, blob, online };
};

describe('live on other devices', () => {
  it('lists other slots’ sessions minus tombstoned ones, ones open here and ones in our own manifest', () => {
    const [a, b, c, d] = [session(), session(), session(), session()];
    const own = slot('this', [a]);
    const laptop = slot('laptop', [a, b, c], [], false);
    const desktop = slot('desktop', [d], [{ id: c.id, killedAt: 5 }], true);
    const groups = liveOnOtherDevices([own, laptop, desktop], own.slotId, new Set([b.id]));
    assert.deepEqual(groups.map((group) => [group.deviceName, group.sessions.map((s) => s.id)]), [['desktop', [d.id]]]);
  });

  it('keeps devices that are switched off, online ones first, newest session first', () => {
    const [old, fresh, other] = [session(1), session(9), session(5)];
    const own = slot('this', []);
    const asleep = slot('asleep-laptop', [old, fresh], [], false);
    const awake = slot('zz-desktop', [other], [], true);
    const groups = liveOnOtherDevices([own, asleep, awake], own.slotId, new Set());
    assert.deepEqual(groups.map((group) => group.deviceName), ['zz-desktop', 'asleep-laptop']);
    assert.deepEqual(groups[1].sessions.map((s) => s.id), [fresh.id, old.id]);
  });

  it('hides a session that our own tombstones ended', () => {
    const a = session();
    const own = slot('this', []);
    const laptop = slot('laptop', [a]);
    assert.deepEqual(liveOnOtherDevices([own, laptop], own.slotId, new Set(), [{ id: a.id }]), []);
  });
});

describe('the manifest half of the last-device check', () => {
  const base = (overrides: Partial<LastDeviceInput>): LastDeviceInput => {
    const own = slot('this', []);
    return { crossDevice: true, syncConfigured: true, syncHealth: 'live', remoteFreshAt: 1000, now: 1000, maxStalenessMs: 60_000, slots: [own], ownSlotId: own.slotId, id: newSessionId(), ...overrides };
  };

  it('allows the kill when no other device lists the session', () => {
    assert.equal(manifestAllowsKill(base({})).kill, true);
  });

  it('refuses while another device lists it, even one that is switched off, and names it', () => {
    const s = session();
    const own = slot('this', [s]);
    const asleep = slot('asleep-laptop', [s], [], false);
    const verdict = manifestAllowsKill(base({ slots: [own, asleep], ownSlotId: own.slotId, id: s.id }));
    assert.equal(verdict.kill, false);
    assert.deepEqual(!verdict.kill && verdict.devices, ['asleep-laptop']);
  });

  it('does not count a listing that a tombstone has overtaken', () => {
    const s = session();
    const own = slot('this', [s]);
    const other = slot('laptop', [s]);
    const killer = slot('desktop', [], [{ id: s.id, killedAt: 2 }]);
    assert.equal(manifestAllowsKill(base({ slots: [own, other, killer], ownSlotId: own.slotId, id: s.id })).kill, true);
    assert.deepEqual(devicesListing([own, other, killer], own.slotId, s.id), []);
  });

  it('fails safe when sync is offline and its knowledge is stale', () => {
    const verdict = manifestAllowsKill(base({ syncHealth: 'offline', remoteFreshAt: 0, now: 120_000 }));
    assert.equal(verdict.kill, false);
    assert.match(verdict.why, /offline/);
  });

  it('fails safe when sync never delivered any state', () => {
    assert.equal(manifestAllowsKill(base({ syncHealth: 'connecting', remoteFreshAt: undefined })).kill, false);
  });

  it('accepts recent knowledge while the stream reconnects', () => {
    assert.equal(manifestAllowsKill(base({ syncHealth: 'connecting', remoteFreshAt: 100_000, now: 110_000 })).kill, true);
  });

  it('leaves the decision to the host check when cross-device is off or sync is not set up', () => {
    const s = session();
    const own = slot('this', []);
    const other = slot('laptop', [s]);
    assert.equal(manifestAllowsKill(base({ crossDevice: false, slots: [own, other], ownSlotId: own.slotId, id: s.id })).kill, true);
    assert.equal(manifestAllowsKill(base({ syncConfigured: false, syncHealth: 'off' })).kill, true);
  });
});

describe('ago', () => {
  it('reads like a person would say it', () => {
    assert.equal(ago(0, 10_000), 'just now');
    assert.equal(ago(0, 5 * 60_000), '5 min ago');
    assert.equal(ago(0, 3 * 3_600_000), '3 h ago');
    assert.equal(ago(0, 3 * 86_400_000), '3 d ago');
    assert.equal(ago(10_000, 0), 'just now');
  });
});
