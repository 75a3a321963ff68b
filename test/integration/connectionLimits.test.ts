import assert from 'node:assert/strict';
import { newSessionId } from '../../src/common/sessionId';
import { TERMINALS_PER_CONNECTION } from '../../src/ssh/sshConnection';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from './fixtures/sessionHarness';

describe('many tabs on one host (sshd MaxSessions 10, the default)', function () {
  this.timeout(120_000);
  let host: SshHost;
  before(async () => {
    host = await SshHost.start({ user: 'tethermany' });
  });
  after(async () => host?.dispose());

  for (const tmuxMode of ['attach', 'control'] as const) {
    it(`opens 12 ${tmuxMode} tabs (11 at once), spreading them over connections, and probes still run`, async () => {
      const pool = testPool();
      const open = (): TabRecorder => TabRecorder.open({ id: newSessionId(), host: host.resolved(), pool, mode: 'create', preference: 'tmux', tmuxMode });
      // The first tab starts the host's tmux server; the other eleven then open at once.
      const first = open();
      await first.waitForState('attached');
      const tabs = [first, ...Array.from({ length: 11 }, open)];
      try {
        await Promise.all(tabs.map((tab) => tab.waitForState('attached', 60_000)));
        for (const [index, tab] of tabs.entries()) tab.type(`echo tab-${index}-ok\r`);
        await Promise.all(tabs.map((tab, index) => tab.waitFor(new RegExp(`tab-${index}-ok\\r?\\n`))));
        assert.ok(pool.connectionCount(host.resolved()) >= Math.ceil(12 / TERMINALS_PER_CONNECTION));
        assert.equal(host.tmuxSessions().length, 12);
        // A probe (here: a kill with its sentinel) still gets a channel.
        assert.deepEqual(await tabs[0].session.kill(), { killed: true });
      } finally {
        for (const tab of tabs) tab.session.dispose();
        pool.dispose();
        host.reboot();
      }
    });
  }
});
