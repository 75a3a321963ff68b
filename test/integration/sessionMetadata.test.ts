/**
 * Session metadata on the host, seen by two devices (two connection pools, two device names) over a
 * real sshd with real tmux and screen: a deliberate detach is explained in both devices' Hosts view
 * data, and a rename is seen by the other device and survives a restore.
 */
import assert from 'node:assert/strict';
import { HostSession, inventoryScript, parseInventory } from '../../src/multiplexer/hostInventory';
import { hostCapabilities, scriptsFor } from '../../src/multiplexer/hostCapabilities';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectionPool } from '../../src/ssh/sshConnection';
import { decodeSnapshot, encodeSnapshot, parseTitles, TabRecord } from '../../src/session/tabSnapshot';
import { describeHostSession } from '../../src/editor/hostSessionText';
import { SshHost } from '../support/sshHost';
import { TabRecorder, sleep, testPool } from './fixtures/sessionHarness';

describe('session metadata on the host, across devices', function () {
  let tmuxHost: SshHost;
  let screenHost: SshHost;
  let laptop: ConnectionPool;
  let desktop: ConnectionPool;
  const tabs: TabRecorder[] = [];

  before(async function () {
    this.timeout(30_000);
    tmuxHost = await SshHost.start({ user: 'tethermda' });
    screenHost = await SshHost.start({ user: 'tethermdb', withoutTmux: true });
  });
  beforeEach(() => {
    laptop = testPool();
    desktop = testPool();
  });
  afterEach(() => {
    for (const tab of tabs.splice(0)) tab.session.dispose();
    laptop.dispose();
    desktop.dispose();
    tmuxHost.reboot();
    screenHost.reboot();
  });
  after(async () => {
    await tmuxHost?.dispose();
    await screenHost?.dispose();
  });

  /** What a device's Hosts view gets for a session: one inventory over its own connection. */
  const hostsViewRow = async (pool: ConnectionPool, host: SshHost, id: string): Promise<HostSession | undefined> => {
    const connection = await pool.acquire(host.resolved());
    const output = (await connection.runScript(inventoryScript(await hostCapabilities(connection)), 15_000)).output;
    return parseInventory(output).find((session) => session.id === id);
  };

  for (const kind of ['tmux', 'screen'] as const) {
    it(`a detach on purpose shows "detached from laptop" in the Hosts view of both devices (${kind})`, async () => {
      const host = kind === 'tmux' ? tmuxHost : screenHost;
      const tab = TabRecorder.open({ id: newSessionId(), host: host.resolved(), pool: laptop, mode: 'create', preference: kind, deviceName: 'laptop' });
      tabs.push(tab);
      await tab.waitForState('attached');
      assert.equal(await tab.session.markDetached(), true);
      tab.session.detach();
      for (const [device, pool] of [['laptop', laptop], ['desktop', desktop]] as const) {
        let row: HostSession | undefined;
        for (let i = 0; i < 40; i++) {
          row = await hostsViewRow(pool, host, tab.session.id);
          if (row?.attachedClients === 0) break;
          await sleep(250);
        }
        assert.ok(row, `${device} sees the session`);
        const text = describeHostSession(row, 'box', Date.now());
        assert.equal(text.orphan, false, `${device}: no orphan warning`);
        assert.match(text.description, /^detached from laptop just now · started/, device);
      }
      // Attaching again clears the detach: the session is in use again.
      const again = TabRecorder.open({ id: tab.session.id, host: host.resolved(), pool: desktop, mode: 'attach', multiplexer: kind, deviceName: 'desktop' });
      tabs.push(again);
      await again.waitForState('attached');
      const row = await hostsViewRow(laptop, host, tab.session.id);
      assert.equal(row?.meta?.detachedBy, undefined);
      assert.equal(row?.meta?.device, 'desktop');
    });

    it(`a rename is seen on the other device and after a restore (${kind})`, async () => {
      const host = kind === 'tmux' ? tmuxHost : screenHost;
      const first = TabRecorder.open({ id: newSessionId(), host: host.resolved(), pool: laptop, mode: 'create', preference: kind, deviceName: 'laptop' });
      tabs.push(first);
      await first.waitForState('attached');
      const second = TabRecorder.open({ id: first.session.id, host: host.resolved(), pool: desktop, mode: 'attach', multiplexer: kind, deviceName: 'desktop' });
      tabs.push(second);
      await second.waitForState('attached');
      assert.equal(await first.session.setTitle(`deploy logs #(touch /tmp/x) $(id)`), true);
      // The other device: its Hosts view, and its open tab's periodic directory refresh.
      const row = await hostsViewRow(desktop, host, first.session.id);
      assert.equal(describeHostSession(row!, 'box', Date.now()).label, 'deploy logs #(touch /tmp/x) $(id)');
      const connection = await desktop.acquire(host.resolved());
      const scripts = scriptsFor(kind, await hostCapabilities(connection));
      const listing = (await connection.runScript(scripts.currentDirectories([first.session.id]), 15_000)).output;
      assert.equal(parseTitles(listing).get(first.session.id), 'deploy logs #(touch /tmp/x) $(id)');
      // A restore: the snapshot carries the title, and so does the host.
      const record: TabRecord = { id: first.session.id, hostLabel: 'box', user: host.user, hostName: '127.0.0.1', port: host.resolved().port, multiplexer: kind, name: 'deploy logs', location: 'panel', startedAt: Date.now(), title: 'deploy logs #(touch /tmp/x) $(id)' };
      first.session.dispose();
      const [restored] = decodeSnapshot(JSON.parse(JSON.stringify(encodeSnapshot([record])))).tabs;
      assert.equal(restored.name, 'deploy logs #(touch /tmp/x) $(id)');
      const back = TabRecorder.open({ id: restored.id, host: host.resolved(), pool: laptop, mode: 'attach', multiplexer: kind, deviceName: 'laptop' });
      tabs.push(back);
      await back.waitForState('attached');
      assert.equal((await hostsViewRow(laptop, host, restored.id))?.meta?.title, 'deploy logs #(touch /tmp/x) $(id)');
    });
  }
});
