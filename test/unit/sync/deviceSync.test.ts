/**
 * The device model under plain Node: several "windows" (DeviceSync instances with different pids)
 * share one in-memory global storage folder (MemoryDeviceFiles, a fake of VS Code's global storage)
 * and a fake sync port (FakeServer below, standing in for SyncClient and the server).
 */
import assert from 'node:assert/strict';
import type { SessionEntry, Tombstone } from '../../../src/sync/blob';
import { MemoryDeviceFiles } from '../../../src/sync/deviceFiles';
import { type DeviceClient, DeviceSync, type LegacySlots, unionOfParts } from '../../../src/sync/deviceSync';
import { Emitter } from '../../../src/common/emitter';
import { manifestAllowsKill, type RemoteSlotView } from '../../../src/sync/liveSessions';
import type { RemoteState, SyncStateChange } from '../../../src/sync/syncClient';
import { newSessionId } from '../../../src/common/sessionId';
import { silentLogger } from '../../../src/common/logger';

const session = (startedAt = Date.now() - 60_000): SessionEntry => ({ id: newSessionId(), hostLabel: 'h', user: 'u', hostName: '10.0.0.1', port: 22, multiplexer: 'tmux', cwd: '/', startedAt });

/** Fake of the sync server as the device sees it: the slots' listings, and who wrote them. */
class FakeServer {
  readonly slots = new Map<string, { sessions: readonly SessionEntry[]; tombstones: Tombstone[] }>();
  readonly writers = new Set<number>();
  deleted: string[] = [];
  client(slotId: string, role: 'writer' | 'reader', pid: number): DeviceClient {
    const remote = new Emitter<RemoteState>();
    const state = new Emitter<SyncStateChange>();
    const server = this;
    let stopped = false;
    return {
      slotId,
      state: { state: 'live' },
      getRemoteState: () => ({ slots: [] }),
      onDidChangeRemote: remote.event,
      onDidChangeState: state.event,
      publish(sessions) {
        assert.equal(role, 'writer', 'a reader published');
        assert.ok(!stopped, 'a stopped client published');
        server.writers.add(pid);
        const slot = server.slots.get(slotId) ?? { sessions: [], tombstones: [] };
        server.slots.set(slotId, { ...slot, sessions });
      },
      publishTombstone(id, killedAt = 0) {
        assert.equal(role, 'writer', 'a reader published a tombstone');
        const slot = server.slots.get(slotId) ?? { sessions: [], tombstones: [] };
        server.slots.set(slotId, { ...slot, tombstones: [...slot.tombstones, { id, killedAt }] });
      },
      start: async () => undefined,
      stop: async () => void (stopped = true),
      deleteOwnSlot: async () => void server.slots.delete(slotId),
    };
  }
  ids(slotId: string): string[] {
    return (this.slots.get(slotId)?.sessions ?? []).map((s) => s.id).sort();
  }
}

describe('device model: one slot for all windows and workspaces of a device', () => {
  let files: MemoryDeviceFiles;
  let server: FakeServer;
  let alive: Set<number>;
  const windows: DeviceSync[] = [];

  const openWindow = async (pid: number, key: string, kind: 'workspace' | 'window' = 'workspace', legacy?: LegacySlots): Promise<DeviceSync> => {
    alive.add(pid);
    const device = new DeviceSync({ files, window: { kind, key, label: key }, log: silentLogger, pid, isAlive: (p) => alive.has(p), pollMs: 60_000 });
    windows.push(device);
    await device.connect((slotId, role) => server.client(slotId, role, pid), legacy);
    return device;
  };
  /** The window's process ends (quit, Open Folder, crash): nothing of it runs any more. */
  const endWindow = async (device: DeviceSync, clean = true): Promise<void> => {
    if (clean) await device.dispose();
    else await device.disconnect();
    alive.delete((device as unknown as { pid: number }).pid);
  };

  /** The process dies: no dispose, the writer lock and the part stay behind. */
  const crashWindow = async (device: DeviceSync, pid: number): Promise<void> => {
    const lock = await files.read('writer.lock');
    await device.disconnect();
    if (lock) await files.write('writer.lock', lock);
    alive.delete(pid);
  };

  beforeEach(() => {
    files = new MemoryDeviceFiles();
    server = new FakeServer();
    alive = new Set();
  });
  afterEach(async () => {
    for (const window of windows.splice(0)) await window.dispose();
  });

  it('gives every window the same slot, one writer, and publishes the union of all windows', async () => {
    const [a, b] = [session(), session()];
    const work = await openWindow(101, 'ws-work');
    const home = await openWindow(102, 'ws-home');
    assert.equal(await work.deviceSlotId(), await home.deviceSlotId());
    assert.deepEqual([work.role, home.role], ['writer', 'reader']);
    work.setWindowSessions([a]);
    home.setWindowSessions([b]);
    await home.flush();
    await work.flush();
    const slotId = await work.deviceSlotId();
    assert.deepEqual(server.ids(slotId), [a.id, b.id].sort());
    assert.deepEqual([...server.writers], [101]);
    assert.deepEqual(home.holders(a.id), ['window "ws-work" on this device']);
    assert.deepEqual(work.otherWindows().map((w) => [w.label, w.open, w.sessions.map((s) => s.id)]), [['ws-home', true, [b.id]]]);
  });

  it('keeps a closed workspace’s sessions listed, and another window takes over writing', async () => {
    const kept = session();
    const work = await openWindow(201, 'ws-work');
    const other = await openWindow(202, 'ws-other');
    work.setWindowSessions([kept]);
    await work.flush();
    // Open Folder in the `work` window: its extension host ends without cleaning up (its lock stays).
    await crashWindow(work, 201);
    await other.flush();
    const home = await openWindow(203, 'ws-home');
    home.setWindowSessions([]);
    await home.flush();
    await other.flush();
    const slotId = await home.deviceSlotId();
    assert.equal(other.role, 'writer', 'the lease of the ended window was taken over');
    assert.deepEqual(server.ids(slotId), [kept.id], 'the session a closed workspace will restore stays listed');
    assert.deepEqual(home.holders(kept.id), ['workspace "ws-work" on this device, which will restore it']);
    const verdict = manifestAllowsKill({
      crossDevice: true, syncConfigured: true, syncHealth: 'live', remoteFreshAt: 0, now: 0, maxStalenessMs: 30_000, slots: [], ownSlotId: slotId, id: kept.id, localHolders: home.holders(kept.id),
    });
    assert.equal(verdict.kill, false);
    assert.match(verdict.why, /workspace "ws-work" on this device/);
  });

  it('drops a folder-less window’s part when its process is gone, and a killed session from every part', async () => {
    const [loose, killed] = [session(), session()];
    const writer = await openWindow(301, 'ws-a');
    const empty = await openWindow(302, 'win-302', 'window');
    empty.setWindowSessions([loose, killed]);
    await empty.flush();
    await writer.flush();
    const slotId = await writer.deviceSlotId();
    assert.deepEqual(server.ids(slotId), [loose.id, killed.id].sort());
    empty.recordTombstone(killed.id);
    await empty.flush();
    await writer.flush();
    assert.deepEqual(server.ids(slotId), [loose.id]);
    assert.deepEqual(server.slots.get(slotId)!.tombstones.map((t) => t.id), [killed.id]);
    await endWindow(empty, false); // crashed: its part file is still there
    await writer.flush();
    assert.deepEqual(server.ids(slotId), [], 'nothing restores the tabs of a folder-less window that ended');
  });

  it('50 open/close cycles over 5 workspaces leave one slot listing what the workspaces will restore', async () => {
    const perWorkspace = Array.from({ length: 5 }, () => session());
    for (let cycle = 0; cycle < 50; cycle++) {
      const index = cycle % 5;
      const window = await openWindow(1000 + cycle, `ws-${index}`);
      window.setWindowSessions([perWorkspace[index]]);
      await window.flush();
      await endWindow(window, cycle % 2 === 0);
    }
    assert.equal(server.slots.size, 1);
    assert.deepEqual([...server.slots.values()][0].sessions.map((s) => s.id).sort(), perWorkspace.map((s) => s.id).sort());
  });

  it('merges the per-window slots of older versions once and deletes them', async () => {
    const [old1, old2, killedLater] = [session(), session(), session()];
    const legacyIds = [newSessionId(), newSessionId()];
    const listings = new Map([[legacyIds[0], { sessions: [old1, killedLater], tombstones: [] }], [legacyIds[1], { sessions: [old2], tombstones: [] }]]);
    const removed: string[] = [];
    const legacy: LegacySlots = {
      ids: async () => legacyIds,
      read: async (id) => listings.get(id),
      remove: async (id) => void removed.push(id),
    };
    const first = await openWindow(401, 'ws-a', 'workspace', legacy);
    await first.flush();
    const slotId = await first.deviceSlotId();
    assert.deepEqual(removed.sort(), [...legacyIds].sort());
    assert.deepEqual(server.ids(slotId), [old1.id, old2.id, killedLater.id].sort());
    first.recordTombstone(killedLater.id);
    await first.flush();
    assert.deepEqual(server.ids(slotId), [old1.id, old2.id].sort());
    await endWindow(first);
    await openWindow(402, 'ws-b', 'workspace', legacy);
    assert.equal(removed.length, 2, 'the migration runs once');
  });

  it('takes over a lease whose owner stopped renewing it (a pid reused after a reboot, a hung window); the old writer steps down', async () => {
    let clock = Date.now();
    const make = (pid: number, key: string) => {
      alive.add(pid);
      const device = new DeviceSync({ files, window: { kind: 'workspace', key, label: key }, log: silentLogger, pid, isAlive: (p) => alive.has(p), pollMs: 60_000, now: () => clock });
      windows.push(device);
      return device;
    };
    const hung = make(501, 'ws-a');
    await hung.connect((slotId, role) => server.client(slotId, role, 501));
    const other = make(502, 'ws-b');
    await other.connect((slotId, role) => server.client(slotId, role, 502));
    assert.deepEqual([hung.role, other.role], ['writer', 'reader']);
    clock += 30_000;
    await other.flush();
    assert.equal(other.role, 'reader', 'a lease renewed within the minute is kept');
    clock += 61_000;
    await other.flush();
    assert.equal(other.role, 'writer', 'a lease not renewed for a minute is taken over although its pid is alive');
    await hung.flush();
    assert.equal(hung.role, 'reader', 'the window that lost its lease stops writing');
  });

  it('a session in two parts is listed once; tombstones from any part or another device remove it', () => {
    const [a, b] = [session(), session()];
    const part = (key: string, sessions: SessionEntry[], tombstones: Tombstone[] = []) => ({ key, kind: 'workspace' as const, label: key, pid: 1, updatedAt: 1, sessions, tombstones });
    assert.deepEqual(unionOfParts([part('x', [a, b]), part('y', [a])]).map((s) => s.id).sort(), [a.id, b.id].sort());
    assert.deepEqual(unionOfParts([part('x', [a, b]), part('y', [], [{ id: a.id, killedAt: 1 }])]).map((s) => s.id), [b.id]);
    assert.deepEqual(unionOfParts([part('x', [a, b])], new Set([b.id])).map((s) => s.id), [a.id]);
  });
});

describe('close rule: stale devices, reasons, and sync off', () => {
  const now = Date.now();
  const slot = (deviceName: string, sessions: SessionEntry[], writtenAt: number, extra: Partial<RemoteSlotView> = {}): RemoteSlotView => {
    const slotId = newSessionId();
    return { slotId, deviceName, blob: { format: 1, slotId, deviceName, seq: 1, writtenAt, sessions, tombstones: [] }, ...extra };
  };
  const base = { crossDevice: true, syncConfigured: true, syncHealth: 'live' as const, remoteFreshAt: now, now, maxStalenessMs: 30_000, ownSlotId: newSessionId() };

  it('names the device that still has the session open', () => {
    const s = session();
    const verdict = manifestAllowsKill({ ...base, slots: [slot('laptop', [s], now - 1000)], id: s.id });
    assert.deepEqual([verdict.kill, verdict.why], [false, 'still open on laptop']);
  });

  it('a device not seen for longer than staleDeviceDays no longer blocks', () => {
    const s = session();
    const old = slot('old-laptop', [s], now - 34 * 24 * 3600_000, { lastSeen: now - 34 * 24 * 3600_000 });
    assert.equal(manifestAllowsKill({ ...base, slots: [old], id: s.id, staleAfterMs: 30 * 24 * 3600_000 }).kill, true);
    assert.equal(manifestAllowsKill({ ...base, slots: [old], id: s.id }).kill, false, 'without the setting nothing is stale');
    const online = slot('old-but-online', [s], now - 34 * 24 * 3600_000, { online: true });
    assert.equal(manifestAllowsKill({ ...base, slots: [online], id: s.id, staleAfterMs: 30 * 24 * 3600_000 }).kill, false);
  });

  it('offline: says which device was last seen when', () => {
    const s = session();
    const verdict = manifestAllowsKill({ ...base, syncHealth: 'offline', remoteFreshAt: now - 200_000, slots: [slot('desktop', [s], now - 180_000)], id: s.id });
    assert.deepEqual([verdict.kill, verdict.why], [false, 'sync is offline and desktop was last seen 3 min ago']);
  });

  it('sync off: still respects what other devices listed when sync last ran', () => {
    const s = session();
    const lastKnown = { savedAt: now - 3600_000, slots: [slot('laptop', [s], now - 3700_000)] };
    const verdict = manifestAllowsKill({ ...base, crossDevice: false, slots: [], id: s.id, lastKnown });
    assert.equal(verdict.kill, false);
    assert.match(verdict.why, /laptop listed it when sync last ran \(1 h ago\)/);
    assert.equal(manifestAllowsKill({ ...base, crossDevice: false, slots: [], id: session().id, lastKnown }).kill, true);
  });
});
