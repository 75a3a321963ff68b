import assert from 'node:assert/strict';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectionPool } from '../../src/ssh/sshConnection';
import { SshHost } from '../support/sshHost';
import { TabRecorder, sleep, testPool } from './fixtures/sessionHarness';

describe('closing with the sentinel-confirmed kill', function () {
  let tmuxHost: SshHost;
  let screenHost: SshHost;
  let pool: ConnectionPool;
  let otherPool: ConnectionPool;
  const tabs: TabRecorder[] = [];

  before(async function () {
    this.timeout(30_000);
    tmuxHost = await SshHost.start({ user: 'tetherka' });
    screenHost = await SshHost.start({ user: 'tetherkb', withoutTmux: true });
  });
  beforeEach(() => {
    pool = testPool();
    otherPool = testPool();
  });
  afterEach(() => {
    for (const tab of tabs.splice(0)) tab.session.dispose();
    pool.dispose();
    otherPool.dispose();
    tmuxHost.reboot();
    screenHost.reboot();
  });
  after(async () => {
    await tmuxHost?.dispose();
    await screenHost?.dispose();
  });

  const openPair = async (host: SshHost, preference: 'tmux' | 'screen'): Promise<[TabRecorder, TabRecorder]> => {
    const first = TabRecorder.open({ id: newSessionId(), host: host.resolved(), pool, mode: 'create', preference });
    tabs.push(first);
    await first.waitForState('attached');
    // A second client on its own connection: another device that joined.
    const second = TabRecorder.open({ id: first.session.id, host: host.resolved(), pool: otherPool, mode: 'attach', multiplexer: preference });
    tabs.push(second);
    await second.waitForState('attached');
    return [first, second];
  };

  it('kills a tmux session that only we use, and the host confirms it', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: tmuxHost.resolved(), pool, mode: 'create', preference: 'tmux' });
    tabs.push(tab);
    await tab.waitForState('attached');
    const outcome = await tab.session.kill();
    assert.deepEqual(outcome, { killed: true });
    assert.deepEqual(tmuxHost.tmuxSessions(), []);
  });

  it('refuses to kill a tmux session another client is attached to, and only detaches', async () => {
    const [first, second] = await openPair(tmuxHost, 'tmux');
    const outcome = await first.session.kill();
    assert.equal(outcome.killed, false);
    assert.equal(outcome.killed === false && outcome.reason, 'in-use');
    assert.deepEqual(tmuxHost.tmuxSessions(), [first.session.name]);
    second.type('echo other-device-still-here\r');
    await second.waitFor(/other-device-still-here\r?\n/);
    assert.equal(second.session.state, 'attached');
  });

  for (const mode of ['attach', 'control'] as const) {
    it(`a refused kill names the device of the other attached client (tmux ${mode} mode), read on the host`, async () => {
      const first = TabRecorder.open({ id: newSessionId(), host: tmuxHost.resolved(), pool, mode: 'create', preference: 'tmux', tmuxMode: mode, deviceName: 'laptop' });
      tabs.push(first);
      await first.waitForState('attached');
      const second = TabRecorder.open({ id: first.session.id, host: tmuxHost.resolved(), pool: otherPool, mode: 'attach', multiplexer: 'tmux', tmuxMode: mode, deviceName: `desk 'top' #(touch /tmp/x)` });
      tabs.push(second);
      await second.waitForState('attached');
      const outcome = await first.session.kill();
      assert.deepEqual(outcome, { killed: false, reason: 'in-use', clients: 2, attachedDevices: [`desk 'top' #(touch /tmp/x)`] });
      assert.deepEqual(tmuxHost.tmuxSessions(), [first.session.name]);
      // The other device, now alone, ends it: nothing left to name.
      assert.deepEqual(await second.session.kill(), { killed: true });
    });
  }

  it('a refused screen kill names the device that attached last', async () => {
    const first = TabRecorder.open({ id: newSessionId(), host: screenHost.resolved(), pool, mode: 'create', preference: 'screen', deviceName: 'laptop' });
    tabs.push(first);
    await first.waitForState('attached');
    const second = TabRecorder.open({ id: first.session.id, host: screenHost.resolved(), pool: otherPool, mode: 'attach', multiplexer: 'screen', deviceName: 'desktop' });
    tabs.push(second);
    await second.waitForState('attached');
    const outcome = await first.session.kill();
    assert.deepEqual(outcome, { killed: false, reason: 'in-use', clients: 1, attachedDevices: ['desktop'] });
  });

  it('mirrors two clients of one tmux session both ways', async () => {
    const [first, second] = await openPair(tmuxHost, 'tmux');
    first.type('echo typed-on-first\r');
    await second.waitFor(/typed-on-first\r?\n/);
    second.type('echo typed-on-second\r');
    await first.waitFor(/typed-on-second\r?\n/);
  });

  it('reports a session that is already gone as killed (the sentinel still comes back)', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: tmuxHost.resolved(), pool, mode: 'create', preference: 'tmux' });
    tabs.push(tab);
    await tab.waitForState('attached');
    tab.session.detach();
    tmuxHost.reboot();
    const again = TabRecorder.open({ id: tab.session.id, host: tmuxHost.resolved(), pool, mode: 'attach', multiplexer: 'tmux' });
    tabs.push(again);
    assert.deepEqual(await again.session.kill(), { killed: true });
  });

  it('kills a screen session only after our own display has left, and not while another is attached', async () => {
    const [first, second] = await openPair(screenHost, 'screen');
    const refused = await first.session.kill();
    assert.equal(refused.killed, false);
    assert.deepEqual(screenHost.screenSessions(), [first.session.name]);
    second.type('echo screen-other-alive\r');
    await second.waitFor(/screen-other-alive\r?\n/);
    const confirmed = await second.session.kill();
    assert.deepEqual(confirmed, { killed: true });
    await sleep(200);
    assert.deepEqual(screenHost.screenSessions(), []);
  });
});
