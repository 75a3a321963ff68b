/**
 * The device model end to end (issue 12): a laptop with several windows (each its own process,
 * sharing one global storage folder) and a desktop, one real sync server, one real sshd with tmux.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { join } from 'node:path';
import { AccountSlots } from '../../src/sync/accountSlots';
import { type SessionEntry, validateBlob } from '../../src/sync/blob';
import { FolderDeviceFiles } from '../../src/sync/deviceFiles';
import { DeviceSync } from '../../src/sync/deviceSync';
import { openEnvelope } from '../../src/sync/envelope';
import { SyncClient } from '../../src/sync/syncClient';
import { SyncServerApi } from '../../src/sync/syncHttp';
import { deriveSyncKeys, formatSyncKey, generateSyncKey } from '../../src/sync/syncKey';
import { newSessionId } from '../../src/common/sessionId';
import type { ConnectionPool } from '../../src/ssh/sshConnection';
import { SshHost } from '../support/sshHost';
import { eventually, sleep, TabRecorder, testLog, testPool } from './fixtures/sessionHarness';
import { TestDevice } from './fixtures/testDevice';
import { sampleSession, ServerProcess, WindowProcess } from './sync/harness';

describe('one device = one slot: windows, workspaces, and the close rule (real sshd, tmux, sync server)', function () {
  this.timeout(240_000);
  let host: SshHost;
  let server: ServerProcess;
  let key: Uint8Array;
  let desktop: TestDevice;
  let laptopPool: ConnectionPool;
  let globalStorage: string;
  const windows: WindowProcess[] = [];
  const tabs: TabRecorder[] = [];

  const hosts = () => host.resolved({ label: 'shared-host' });
  const openWindow = async (workspaceKey: string, label: string, legacyIds?: string[]): Promise<WindowProcess> => {
    const window = await WindowProcess.start({ serverUrl: server.url, syncKey: formatSyncKey(key), deviceName: 'laptop', globalStorage, kind: 'workspace', key: workspaceKey, label, legacyIds });
    windows.push(window);
    return window;
  };
  /** Every slot on the server, opened with the account key. */
  const serverSlots = async (): Promise<Array<{ slotId: string; deviceName: string; ids: string[] }>> => {
    const keys = deriveSyncKeys(key);
    const api = new SyncServerApi({ serverUrl: server.url, token: keys.token });
    const list = await api.listBlobs();
    assert.ok(!list.notModified);
    return list.blobs.map((stored) => {
      const { blob } = validateBlob(openEnvelope(keys.encryptionKey, stored.data, stored.slotId));
      return { slotId: stored.slotId, deviceName: blob.deviceName, ids: blob.sessions.map((s) => s.id) };
    });
  };
  const entryOf = (tab: TabRecorder): SessionEntry => {
    const resolved = tab.session.host;
    return { id: tab.session.id, hostLabel: resolved.label, user: resolved.user, hostName: resolved.hostName, port: resolved.port, multiplexer: 'tmux', cwd: '~', startedAt: Date.now() };
  };
  const openTab = async (): Promise<TabRecorder> => {
    const tab = TabRecorder.open({ id: newSessionId(), host: hosts(), pool: laptopPool, mode: 'create', preference: 'tmux', tmuxMode: 'attach' });
    tabs.push(tab);
    await tab.waitForState('attached');
    return tab;
  };

  before(async function () {
    host = await SshHost.start({ user: 'tetherdev' });
    server = await ServerProcess.start(mkdtempSync(join(tmpdir(), 'tether-server-data-')));
  });

  beforeEach(async () => {
    key = generateSyncKey();
    globalStorage = mkdtempSync(join(tmpdir(), 'tether-laptop-global-'));
    laptopPool = testPool();
    desktop = new TestDevice('desktop', server.url, key, hosts);
    await desktop.goOnline();
    await eventually(() => desktop.cross.syncState === 'live', 10_000, 'desktop live');
  });

  afterEach(async () => {
    for (const window of windows.splice(0)) await window.close();
    for (const tab of tabs.splice(0)) tab.session.dispose();
    await desktop?.dispose();
    laptopPool?.dispose();
    host.reboot();
  });

  after(async () => {
    await server?.stop();
    await host?.dispose();
  });

  it('keeps a session listed through a workspace switch; the desktop joins and closes without killing it; it returns in `work` with its scrollback', async () => {
    // Two windows of the laptop: `work` (started first, so it writes the device slot) and `home`.
    const work = await openWindow('ws-work', 'work');
    const home = await openWindow('ws-home', 'home');
    assert.equal((await work.status()).role, 'writer');
    assert.equal((await home.status()).role, 'reader');
    home.setSessions([]);

    const tab = await openTab();
    const id = tab.session.id;
    tab.type('echo scrollback-marker-$((6*7))\r');
    await tab.waitFor(/scrollback-marker-42\r?\n/);
    work.setSessions([entryOf(tab)]);
    await eventually(() => desktop.live().some((s) => s.id === id && s.deviceName === 'laptop'), 10_000, 'the desktop lists the laptop session');
    // `home` reads the device's parts on its own poll, which may come after the desktop's update.
    let homeHolders: readonly string[] | undefined;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(100)) {
      homeHolders = (await home.status([id])).holders[id];
      if (homeHolders?.length) break;
    }
    assert.deepEqual(homeHolders, ['window "work" on this device'], 'a window of the same device is not another device');

    // File > Open Folder in the `work` window: its extension host ends (no cleanup), the tab's client
    // goes with it, and the same window comes back with the folder `other` and no tabs.
    tab.session.dispose();
    await work.crash();
    const other = await openWindow('ws-other', 'other');
    other.setSessions([]);
    await other.flush();
    const roles = async () => [(await home.status()).role, (await other.status()).role];
    const deadline = Date.now() + 10_000;
    while (!(await roles()).includes('writer')) {
      if (Date.now() > deadline) throw new Error('no window took over writing the device slot');
      await sleep(100);
    }
    await home.flush();
    await other.flush();
    await sleep(1500); // any write the switch caused has reached the server and the desktop by now
    assert.ok(desktop.live().some((s) => s.id === id), 'the desktop still lists the session that `work` will restore');
    const slots = await serverSlots();
    assert.deepEqual(slots.map((slot) => slot.deviceName).sort(), ['desktop', 'laptop'], 'the laptop has one slot, whatever its windows did');
    assert.ok(slots.find((slot) => slot.deviceName === 'laptop')!.ids.includes(id));

    // The desktop joins, types, and closes with ✕: the laptop lists it, so the close only detaches.
    const listed = desktop.live().find((s) => s.id === id)!;
    const joined = await desktop.join(listed);
    joined.type('echo typed-on-desktop\r');
    await joined.waitFor(/typed-on-desktop\r?\n/);
    const result = await desktop.close(id);
    assert.equal(result.action, 'detached');
    assert.equal(result.action === 'detached' && result.why, 'still open on laptop');
    assert.ok(host.tmuxSessions().includes(`tether_${id}`), 'the session survived the close on the desktop');

    // The window opens `work` again: its snapshot restores the tab, with its scrollback.
    await other.crash();
    const workAgain = await openWindow('ws-work', 'work');
    const restored = TabRecorder.open({ id, host: hosts(), pool: laptopPool, mode: 'attach', multiplexer: 'tmux', replayLines: 500, tmuxMode: 'attach' });
    tabs.push(restored);
    await restored.waitForState('attached');
    await restored.waitFor(/scrollback-marker-42/);
    await restored.waitFor(/typed-on-desktop/);
    workAgain.setSessions([entryOf(restored)]);
    await workAgain.flush();
    assert.ok(desktop.live().some((s) => s.id === id));
  });

  it('a refused kill names the device that holds the session; a forced kill ends it everywhere and publishes a tombstone', async () => {
    const work = await openWindow('ws-work', 'work');
    const tab = await openTab();
    const id = tab.session.id;
    work.setSessions([entryOf(tab)]);
    await eventually(() => desktop.live().some((s) => s.id === id), 10_000, 'the desktop lists it');
    const joined = await desktop.join(desktop.live().find((s) => s.id === id)!);
    assert.equal(joined.session.state, 'attached');

    const refused = await desktop.cross.kill(joined.session);
    assert.equal(refused.action, 'detached');
    assert.ok(refused.action === 'detached' && refused.refused, 'the host refused: the laptop is attached');
    assert.match(refused.action === 'detached' ? refused.why : '', /attached on laptop/);
    assert.ok(host.tmuxSessions().includes(`tether_${id}`));

    // "Kill anyway": still confirmed by the sentinel, and the tombstone ends it on the laptop too.
    const again = await desktop.join(desktop.live().find((s) => s.id === id) ?? { ...entryOf(tab), slotId: '', deviceName: 'laptop' });
    const forced = await desktop.cross.kill(again.session, { force: true });
    assert.equal(forced.action, 'killed');
    await tab.waitFor(() => tab.session.state === 'ended', 15_000, 'the laptop tab ends');
    assert.ok(!host.tmuxSessions().includes(`tether_${id}`));
    await eventually(() => !desktop.live().some((s) => s.id === id), 10_000, 'the desktop drops it');
    // The laptop's writer sees the desktop's tombstone and leaves it out of the device listing,
    // although the `work` part still names it until that window's tab closes.
    let laptopIds: string[] = [id];
    const deadline = Date.now() + 10_000;
    while (laptopIds.includes(id) && Date.now() < deadline) {
      await sleep(200);
      laptopIds = (await serverSlots()).find((slot) => slot.deviceName === 'laptop')?.ids ?? [];
    }
    assert.ok(!laptopIds.includes(id), 'the laptop slot no longer lists the killed session');
  });

  it('50 window open/close cycles over 5 workspaces, after merging 3 per-window slots of an older version, leave one slot', async () => {
    // An older version left three per-window slots on the server (slotLease.ts), with caches on disk.
    const legacyDir = path.join(globalStorage, 'sync');
    const legacySessions = [sampleSession(), sampleSession(), sampleSession()];
    const legacyIds: string[] = [];
    for (const session of legacySessions) {
      const slotId = newSessionId();
      legacyIds.push(slotId);
      const old = new SyncClient({ serverUrl: server.url, syncKey: key, slotId, deviceName: 'laptop', stateDir: legacyDir, log: testLog, writeDebounceMs: 10 });
      await old.start();
      old.publish([session]);
      assert.ok(await old.flush());
      await old.stop();
    }
    assert.equal((await serverSlots()).filter((slot) => slot.deviceName === 'laptop').length, 3);

    const workspaceSessions = Array.from({ length: 5 }, () => sampleSession());
    const alive = new Set<number>();
    const account = new AccountSlots({ serverUrl: server.url, syncKey: key });
    const runWindow = async (pid: number, index: number): Promise<DeviceSync> => {
      alive.add(pid);
      const device = new DeviceSync({
        files: new FolderDeviceFiles(path.join(globalStorage, 'device')), window: { kind: 'workspace', key: `ws-${index}`, label: `project-${index}` }, log: testLog, pid, isAlive: (p) => alive.has(p), pollMs: 100,
      });
      await device.connect(
        (slotId, role) => new SyncClient({ serverUrl: server.url, syncKey: key, slotId, deviceName: 'laptop', stateDir: path.join(legacyDir, role === 'writer' ? 'device' : 'device-reader'), log: testLog, writeDebounceMs: 10, requestTimeoutMs: 3000 }),
        account.legacySlots(legacyDir, () => legacyIds.slice(0, 1)),
      );
      return device;
    };
    let previous: DeviceSync | undefined;
    for (let cycle = 0; cycle < 50; cycle++) {
      const index = cycle % 5;
      const window = await runWindow(100_000 + cycle, index);
      window.setWindowSessions([workspaceSessions[index]]);
      await window.flush();
      // Half the windows close cleanly, half just end; one window stays open across each switch.
      if (previous) {
        if (cycle % 2 === 0) await previous.dispose();
        else await previous.disconnect();
        alive.delete(100_000 + cycle - 1);
      }
      previous = window;
    }
    await previous!.flush();
    const expected = [...workspaceSessions, ...legacySessions].map((s) => s.id).sort();
    let laptop: Array<{ slotId: string; ids: string[] }> = [];
    const deadline = Date.now() + 10_000;
    do {
      await sleep(200);
      laptop = (await serverSlots()).filter((slot) => slot.deviceName === 'laptop');
    } while ((laptop.length !== 1 || laptop[0].ids.slice().sort().join() !== expected.join()) && Date.now() < deadline);
    assert.equal(laptop.length, 1, 'one slot for the device');
    assert.deepEqual(laptop[0].ids.slice().sort(), expected, 'it lists what every workspace will restore and what the old slots listed');
    await previous!.dispose();

    // Forget Device (from the desktop): the laptop's slot goes; the desktop stops listing its sessions.
    await eventually(() => desktop.live().length === expected.length, 10_000, 'the desktop lists the laptop sessions');
    await new AccountSlots({ serverUrl: server.url, syncKey: key }).deleteSlot(laptop[0].slotId);
    await eventually(() => desktop.live().length === 0, 10_000, 'the desktop forgot the laptop');
    assert.deepEqual((await serverSlots()).map((slot) => slot.deviceName), ['desktop']);
  });
});
