import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usedBy } from '../../src/sync/liveSessions';
import { deriveSyncKeys, generateSyncKey } from '../../src/sync/syncKey';
import { parseSshSyncUrl } from '../../src/sync/sshSyncUrl';
import { poolConnector, SshSyncTransport } from '../../src/sync/sshTransport';
import type { SyncTransport } from '../../src/sync/syncTransport';
import type { ConnectionPool } from '../../src/ssh/sshConnection';
import { inventoryScript, parseInventory } from '../../src/multiplexer/hostInventory';
import { hostCapabilities } from '../../src/multiplexer/hostCapabilities';
import { SshHost } from '../support/sshHost';
import { eventually, sleep } from './fixtures/sessionHarness';
import { TestDevice } from './fixtures/testDevice';
import { ServerProcess } from './sync/harness';

// The same story with both transports: the sync server, and files on the session host itself over
// each device's shared SSH connection (issue 15: a sync host that is also a session host).
for (const transport of ['server', 'ssh'] as const)
describe(`cross-device sessions: two devices, one host, sync through ${transport === 'server' ? 'the sync server' : 'that SSH host'}`, function () {
  this.timeout(120_000);
  let host: SshHost;
  let server: ServerProcess;
  let laptop: TestDevice;
  let desktop: TestDevice;

  before(async function () {
    host = await SshHost.start({ user: 'tetherx' });
    server = await ServerProcess.start(mkdtempSync(join(tmpdir(), 'tether-server-data-')));
  });

  beforeEach(async () => {
    const key = generateSyncKey();
    const hosts = () => host.resolved({ label: 'shared-host' });
    const viaSsh =
      transport === 'ssh'
        ? (pool: ConnectionPool): SyncTransport => {
            const resolved = host.resolved({ label: 'shared-host' });
            return new SshSyncTransport({ location: parseSshSyncUrl(`ssh://${host.user}@127.0.0.1:${host.port}`), token: deriveSyncKeys(key).token, ...poolConnector(pool, () => resolved), watcher: 'sh' });
          }
        : undefined;
    laptop = new TestDevice('laptop', server.url, key, hosts, viaSsh);
    desktop = new TestDevice('desktop', server.url, key, hosts, viaSsh);
    await Promise.all([laptop.goOnline(), desktop.goOnline()]);
    await eventually(() => laptop.cross.syncState === 'live' && desktop.cross.syncState === 'live', 10_000, 'both devices live');
  });

  afterEach(async () => {
    await laptop?.dispose();
    await desktop?.dispose();
    host.reboot();
  });

  after(async () => {
    await server?.stop();
    await host?.dispose();
  });

  for (const tmuxMode of ['attach', 'control'] as const)
  it(`tells the whole story in tmux ${tmuxMode} mode: list, join, mirror, close one, close the last`, async () => {
    laptop.tmuxMode = desktop.tmuxMode = tmuxMode;
    const started = Date.now();
    const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
    await eventually(() => desktop.live().some((session) => session.id === tab.session.id), 15_000, 'desktop lists the session');
    console.log(`      (the desktop listed the laptop's session ${Date.now() - started} ms after the tab opened)`);
    const listed = desktop.live().find((session) => session.id === tab.session.id)!;
    assert.equal(listed.deviceName, 'laptop');

    tab.type('echo before-join-marker\r');
    await tab.waitFor(/before-join-marker\r?\n/);
    const joined = await desktop.join(listed);
    assert.equal(joined.session.state, 'attached');
    assert.match(joined.plain, /before-join-marker/, 'the join replayed the scrollback');
    joined.type('echo typed-on-desktop\r');
    await tab.waitFor(/typed-on-desktop\r?\n/);
    tab.type('echo typed-on-laptop\r');
    await joined.waitFor(/typed-on-laptop\r?\n/);

    // The desktop closes: the laptop lists the session, so it only detaches.
    const first = await desktop.close(tab.session.id);
    assert.equal(first.action, 'detached');
    assert.deepEqual(host.tmuxSessions(), [tab.session.name]);
    tab.type('echo laptop-still-live\r');
    await tab.waitFor(/laptop-still-live\r?\n/);

    // The laptop closes last: the session is killed, confirmed, and tombstoned everywhere.
    // The desktop's withdrawal reaches the laptop, and its client has left the host.
    await eventually(() => laptop.cross.closeVerdict(tab.session.id).kill, 15_000, 'the desktop no longer lists the session');
    await eventually(() => host.tmux(`list-clients -t '=${tab.session.name}'`).trim().split('\n').filter(Boolean).length === 1, 15_000, 'one client left');
    const last = await laptop.close(tab.session.id);
    assert.equal(last.action, 'killed');
    assert.deepEqual(host.tmuxSessions(), []);
    await eventually(() => desktop.live().every((session) => session.id !== tab.session.id), 15_000, 'the row disappears');
  });

  it('keeps a session alive while an asleep device still lists it', async () => {
    const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
    await eventually(() => desktop.live().some((session) => session.id === tab.session.id), 15_000);
    const joined = await desktop.join(desktop.live().find((session) => session.id === tab.session.id)!);
    // The laptop goes to sleep with its tab open: its manifest stays on the server.
    await laptop.goOffline();
    tab.session.dispose();
    await sleep(300);
    const result = await desktop.close(joined.session.id);
    assert.equal(result.action, 'detached');
    assert.match(result.action === 'detached' ? result.why : '', /laptop/);
    assert.deepEqual(host.tmuxSessions(), [tab.session.name]);
  });

  it('closes the other device’s tab when a session is killed, with a line naming who ended it', async () => {
    const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
    await eventually(() => desktop.live().some((session) => session.id === tab.session.id), 15_000);
    const joined = await desktop.join(desktop.live().find((session) => session.id === tab.session.id)!);
    joined.type('echo ready\r');
    await joined.waitFor(/ready\r?\n/);
    // The deliberate kill from the laptop: refused while the desktop's client is attached.
    const refused = await laptop.cross.kill(laptop.tabs.get(tab.session.id)!.session);
    assert.equal(refused.action, 'detached');
    assert.deepEqual(host.tmuxSessions(), [tab.session.name]);
    laptop.tabs.delete(tab.session.id);
    laptop.publish();
    await eventually(() => desktop.cross.closeVerdict(tab.session.id).kill, 15_000, 'laptop withdrew its entry');
    const killed = await desktop.close(joined.session.id);
    assert.equal(killed.action, 'killed');
    assert.deepEqual(host.tmuxSessions(), []);
  });

  it('ends the tabs and the listing on both devices when the session is killed from outside', async () => {
    const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
    await eventually(() => desktop.live().some((session) => session.id === tab.session.id), 15_000);
    const joined = await desktop.join(desktop.live().find((session) => session.id === tab.session.id)!);
    host.tmux(`kill-session -t '=${tab.session.name}'`);
    await tab.exited;
    await joined.exited;
    assert.match(tab.plain, /no longer exists on host/);
    assert.match(joined.plain, /no longer exists on host/);
    // The probe confirmed it: each device tombstones it, and no list shows it any more.
    laptop.cross.ended(tab.session.id);
    desktop.cross.ended(tab.session.id);
    laptop.tabs.delete(tab.session.id);
    desktop.tabs.delete(tab.session.id);
    await eventually(() => laptop.live().length === 0 && desktop.live().length === 0, 15_000);
    assert.deepEqual(host.tmuxSessions(), []);
  });

  it('withdraws this device’s entries when it opts out, without touching persistence', async () => {
    const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
    await eventually(() => desktop.live().some((session) => session.id === tab.session.id), 15_000);
    laptop.cross.setEnabled(false);
    await eventually(() => desktop.live().length === 0, 15_000, 'entries withdrawn');
    assert.equal(tab.session.state, 'attached');
    assert.deepEqual(laptop.live(), [], 'an opted-out device shows nothing');
    assert.deepEqual(host.tmuxSessions(), [tab.session.name]);
  });

  // Over SSH every write and read is an exec on the host (a round took ~12 s at a load average of
  // 20), so that transport runs 20 rounds to keep the suite's time bounded.
  const rounds = transport === 'ssh' ? 20 : 50;
  it(`never kills a session in use and leaves none unlisted when both close at once (${rounds} rounds)`, async function () {
    this.timeout(transport === 'ssh' ? 900_000 : 600_000);
    let killed = 0;
    for (let round = 0; round < rounds; round++) {
      const tab = await laptop.open(host.resolved({ label: 'shared-host' }));
      await eventually(() => desktop.live().some((session) => session.id === tab.session.id), 15_000);
      const joined = await desktop.join(desktop.live().find((session) => session.id === tab.session.id)!);
      await eventually(() => laptop.cross.closeVerdict(tab.session.id).kill === false, 15_000, 'laptop sees the desktop listing');
      const [a, b] = await Promise.all([laptop.close(tab.session.id), desktop.close(joined.session.id)]);
      // Eventually the session is gone, since no device uses it any more.
      await eventually(() => !host.tmuxSessions().includes(tab.session.name), 30_000, `round ${round}: session not left orphaned (${a.action}/${b.action})`);
      if (a.action === 'killed' || b.action === 'killed') killed++;
    }
    console.log(`      (${rounds} simultaneous closes: ${killed} killed at close, ${rounds - killed} by the last device to let go)`);
  });
});

describe('the Hosts view inventory on a real host', function () {
  this.timeout(60_000);
  let host: SshHost;
  let server: ServerProcess;
  let laptop: TestDevice;
  let desktop: TestDevice;

  before(async () => {
    host = await SshHost.start({ user: 'tetherinv' });
    server = await ServerProcess.start(mkdtempSync(join(tmpdir(), 'tether-server-data-')));
    const key = generateSyncKey();
    laptop = new TestDevice('laptop', server.url, key, () => host.resolved());
    desktop = new TestDevice('desktop', server.url, key, () => host.resolved());
    await Promise.all([laptop.goOnline(), desktop.goOnline()]);
  });
  after(async () => {
    await laptop?.dispose();
    await desktop?.dispose();
    await server?.stop();
    await host?.dispose();
  });

  it('marks each session as open here, open on another device, or an orphan no device lists', async () => {
    const mine = await desktop.open(host.resolved());
    const theirs = await laptop.open(host.resolved());
    // An orphan: a session a crashed device created and never published.
    const orphan = await laptop.open(host.resolved());
    laptop.tabs.delete(orphan.session.id);
    orphan.session.detach();
    laptop.publish();
    // The laptop's blobs reach the desktop in order (with the orphan, then without): wait until the
    // desktop holds the last one, then read every row from that one state.
    assert.ok(await laptop.client!.flush(), 'the laptop wrote its last manifest');
    const connection = await desktop.pool.acquire(host.resolved());
    const inventory = parseInventory((await connection.runScript(inventoryScript(await hostCapabilities(connection)))).output);
    const rowsNow = (): Map<string, string | undefined> => {
      const slots = desktop.client!.getRemoteState().slots;
      return new Map(inventory.map((session) => [session.id, usedBy(session.id, new Set(desktop.tabs.keys()), slots, desktop.client!.slotId)]));
    };
    let rows = rowsNow();
    await eventually(() => {
      rows = rowsNow();
      return rows.get(theirs.session.id) !== undefined && rows.get(orphan.session.id) === undefined;
    }, 15_000, "the desktop holds the laptop's last manifest");
    assert.equal(rows.get(mine.session.id), 'open here');
    assert.equal(rows.get(theirs.session.id), 'open on laptop');
    assert.ok(rows.has(orphan.session.id));
    assert.equal(rows.get(orphan.session.id), undefined, 'an orphan is listed by no device');
    assert.equal(inventory.find((session) => session.id === theirs.session.id)?.attachedClients, 1);
    assert.equal(inventory.find((session) => session.id === orphan.session.id)?.attachedClients, 0);
  });
});
