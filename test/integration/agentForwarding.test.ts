/**
 * Agent forwarding that survives reconnects, against real sshd, tmux and ssh-agent: inside the
 * session SSH_AUTH_SOCK is ~/.tether/agent/<id>.sock, and `ssh-add -l` there lists the device's
 * key before and after the cable is pulled, and the newest device's key once a second one joins.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newSessionId } from '../../src/common/sessionId';
import { SshAgent } from './fixtures/sshAgent';
import { SshHost, testKeys } from '../support/sshHost';
import { TabRecorder, testPool } from './fixtures/sessionHarness';
import { TcpProxy } from '../support/tcpProxy';

function fingerprint(publicKeyFile: string): string {
  return execFileSync('ssh-keygen', ['-lf', publicKeyFile], { encoding: 'utf8' }).split(' ')[1];
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

describe('agent forwarding that survives reconnects (real sshd, tmux, ssh-agent)', function () {
  let host: SshHost;
  let proxy: TcpProxy;
  let agent: SshAgent;
  let otherAgent: SshAgent;
  let otherKey: string;

  before(async function () {
    this.timeout(30_000);
    host = await SshHost.start({ user: 'tetherfwd' });
    proxy = await TcpProxy.start(host.port);
    agent = await SshAgent.start([testKeys().clientKey]);
    // The second device's agent holds a different key, so the session shows whose agent it reaches.
    otherKey = join(mkdtempSync(join(tmpdir(), 'tether-fwd-key-')), 'device2_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'device-2', '-f', otherKey]);
    otherAgent = await SshAgent.start([otherKey]);
  });
  after(async () => {
    await proxy?.close();
    await host?.dispose();
    agent?.stop();
    otherAgent?.stop();
  });

  async function listedKeys(tab: TabRecorder, round: string): Promise<string> {
    tab.type(`echo ${round}-start; echo "sock=$SSH_AUTH_SOCK"; ssh-add -l; echo ${round}-end\r`);
    await tab.waitFor(new RegExp(`${round}-start\\r?\\n[\\s\\S]*${round}-end\\r?\\n`), 15_000, round);
    const text = tab.plain;
    const from = text.lastIndexOf(`${round}-start\r\n`) >= 0 ? text.lastIndexOf(`${round}-start\r\n`) : text.lastIndexOf(`${round}-start\n`);
    return text.slice(from, text.lastIndexOf(`${round}-end`));
  }

  it('lists the key before and after a cut and reconnect, and the second device\'s once it joins', async () => {
    const mine = fingerprint(`${testKeys().clientKey}.pub`);
    const theirs = fingerprint(`${otherKey}.pub`);
    const device1 = testPool({ env: { ...process.env, SSH_AUTH_SOCK: agent.socket }, forwardAgent: true });
    const device2 = testPool({ env: { ...process.env, SSH_AUTH_SOCK: otherAgent.socket }, forwardAgent: true });
    const id = newSessionId();
    const resolved = host.resolved({ port: proxy.port });
    try {
      const tab = TabRecorder.open({ id, host: resolved, pool: device1, mode: 'create', preference: 'tmux' });
      await tab.waitForState('attached');

      const before = await listedKeys(tab, 'round1');
      assert.match(before, new RegExp(`sock=${escape(host.home)}/\\.tether/agent/${id}\\.sock`));
      assert.match(before, new RegExp(escape(mine)));
      const dir = host.run('stat -c %a "$HOME/.tether/agent"').trim();
      assert.equal(dir, '700');

      // Pull the cable: the old forwarded socket dies with its connection; the reconnect re-points.
      const oldTarget = host.run(`readlink "$HOME/.tether/agent/${id}.sock"`).trim();
      proxy.cut();
      await tab.waitFor(() => tab.states.includes('reconnecting'), 15_000, 'reconnecting');
      await tab.waitForState('attached', 20_000);
      const after = await listedKeys(tab, 'round2');
      assert.match(after, new RegExp(escape(mine)), `after the reconnect: ${after}`);
      assert.notEqual(host.run(`readlink "$HOME/.tether/agent/${id}.sock"`).trim(), oldTarget, 'a new forwarded socket');

      // A second device joins: the newest attach wins, and the first device's shell sees it.
      const joined = TabRecorder.open({ id, host: resolved, pool: device2, mode: 'attach', multiplexer: 'tmux' });
      await joined.waitForState('attached');
      const both = await listedKeys(tab, 'round3');
      assert.match(both, new RegExp(escape(theirs)), `after device 2 joined: ${both}`);
      assert.doesNotMatch(both, new RegExp(escape(mine)));
      joined.session.detach();
      tab.session.dispose();
    } finally {
      device1.dispose();
      device2.dispose();
    }
  });

  it('leaves SSH_AUTH_SOCK alone when forwarding is off', async () => {
    const pool = testPool({ env: { ...process.env, SSH_AUTH_SOCK: agent.socket }, forwardAgent: false });
    const id = newSessionId();
    try {
      const tab = TabRecorder.open({ id, host: host.resolved(), pool, mode: 'create', preference: 'tmux' });
      await tab.waitForState('attached');
      const listed = await listedKeys(tab, 'off');
      assert.doesNotMatch(listed, /\.tether\/agent/);
      assert.doesNotMatch(listed, new RegExp(escape(fingerprint(`${testKeys().clientKey}.pub`))));
      assert.throws(() => readFileSync(join(host.home, '.tether', 'agent', `${id}.sock`)));
      tab.session.dispose();
    } finally {
      pool.dispose();
    }
  });
});
