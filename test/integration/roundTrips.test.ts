/**
 * Round trips per operation (issue 16), counted as the session channels each operation opens on a
 * real sshd: with the host's capabilities cached, a reconnect, a restore and a re-attach each take
 * exactly one exec after the handshake (check, replay and attach in one script). Then the same
 * session at 200 ms RTT through the TCP proxy: keys typed during a reconnect arrive exactly once,
 * and input is not held behind a flood of output.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Client } from 'ssh2';
import { openScriptChannel } from '../../src/ssh/remoteExec';
import { SshConnection } from '../../src/ssh/sshConnection';
import { SshHost, testKeys } from '../support/sshHost';
import { HostSuite, eventually, sleep, testPool } from './fixtures/sessionHarness';

for (const tmuxMode of ['attach', 'control'] as const)
describe(`round trips per operation (tmux ${tmuxMode} mode)`, function () {
  const suite = new HostSuite({ user: 'tetherrtt' }, { proxy: true, tabs: { tmuxMode } });
  const connection = (): SshConnection => {
    const live = suite.pool.peek(suite.resolved());
    assert.ok(live, 'an open connection');
    return live;
  };

  beforeEach(() => {
    suite.proxy.setLink({ oneWayDelayMs: 0 });
  });

  it('a new tab: detect once per host, then one exec (create, check and attach in one script)', async () => {
    // A new window: its pool knows nothing about the host yet.
    suite.pool.dispose();
    suite.pool = testPool();
    const first = suite.open();
    await first.waitForState('attached');
    assert.equal(connection().execChannels, 2, 'detect + the attach script');
    const second = suite.open();
    await second.waitForState('attached');
    assert.equal(connection().execChannels, 3, 'capabilities are cached per host: one exec');
    second.type('echo made-$((6*7))\r');
    await second.waitFor(/made-42/);
  });

  it('a reconnect after a cut connection: exactly one exec after the handshake', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    const before = connection();
    suite.proxy.cut();
    await tab.waitFor(() => tab.session.state === 'attached' && suite.pool.peek(suite.resolved()) !== undefined && suite.pool.peek(suite.resolved()) !== before, 20_000, 're-attach');
    // A new connection (the old one was cut) on which the tab opened one channel and nothing else.
    assert.equal(connection().execChannels, 1);
    tab.type('echo back-$((40+2))\r');
    await tab.waitFor(/back-42/);
  });

  it('a re-attach on a live connection (the client was detached): one exec', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    const live = connection();
    const opened = live.execChannels;
    suite.host.tmux(`detach-client -s '=${tab.session.name}'`);
    await eventually(() => live.execChannels > opened && tab.session.state === 'attached', 15_000, 're-attach');
    await sleep(300);
    assert.equal(live.execChannels, opened + 1);
  });

  it('a restore with history replay: one exec, and a gone session is reported by that same exec', async () => {
    const made = suite.open();
    await made.waitForState('attached');
    made.type('echo history-line-$((1+1))\r');
    await made.waitFor(/history-line-2/);
    // What the tab snapshot records, then a restart: a new pool that knows nothing of the host.
    const tmuxVersion = made.session.tmuxVersion;
    assert.match(tmuxVersion ?? '', /^\d+\.\d+/, 'the tab knows its tmux version for the snapshot');
    made.session.detach();
    suite.pool.dispose();
    suite.pool = testPool();
    const restored = suite.open({ id: made.session.id, mode: 'attach', multiplexer: 'tmux', tmuxVersion, replayLines: 100 });
    await restored.waitForState('attached');
    await restored.waitFor(/history-line-2/);
    assert.equal(connection().execChannels, 1, 'the recorded version spares the detect');
    restored.session.detach();
    // A snapshot from before versions were recorded: detect, then the one attach script.
    suite.pool.dispose();
    suite.pool = testPool();
    const older = suite.open({ id: made.session.id, mode: 'attach', multiplexer: 'tmux', replayLines: 100 });
    await older.waitForState('attached');
    assert.equal(connection().execChannels, 2, 'detect + the attach script');
    older.session.detach();
    suite.pool.dispose();
    suite.pool = testPool();
    suite.host.tmux(`kill-session -t '=${made.session.name}'`);
    const gone = suite.open({ id: made.session.id, mode: 'attach', multiplexer: 'tmux', tmuxVersion, replayLines: 100 });
    assert.equal(await gone.exited, 1);
    assert.match(gone.plain, /no longer exists on host/);
    assert.equal(connection().execChannels, 1);
    assert.deepEqual(suite.host.tmuxSessions(), [], 'an attach never creates');
  });

  it('at 200 ms RTT, keys typed during a reconnect arrive exactly once', async function () {
    this.timeout(90_000);
    suite.proxy.setLink({ oneWayDelayMs: 100, jitterMs: 5 });
    const tab = suite.open();
    await tab.waitForState('attached', 30_000);
    suite.host.run('rm -f "$HOME/typed"');
    suite.proxy.cut();
    await tab.waitFor(() => tab.session.state !== 'attached', 15_000, 'the drop noticed');
    // Typed in pieces while the tab reconnects: held, then sent once after the attach.
    for (const piece of ['printf k', 'ey', 's >> "$HOME/ty', 'ped"\r']) {
      tab.type(piece);
      await sleep(20);
    }
    await tab.waitForState('attached', 30_000);
    await eventually(() => suite.host.run('cat "$HOME/typed" 2>/dev/null || true') === 'keys', 20_000, 'the typed command ran');
    await sleep(1500);
    assert.equal(suite.host.run('cat "$HOME/typed"'), 'keys', 'typed exactly once');
  });

  it('at 200 ms RTT, input is not held behind a flood of output', async function () {
    this.timeout(90_000);
    suite.proxy.setLink({ oneWayDelayMs: 100 });
    const tab = suite.open();
    await tab.waitForState('attached', 30_000);
    tab.type('while :; do echo floodfloodfloodfloodfloodfloodfloodfloodflood; done\r');
    const floodSeen = (): number => tab.text.split('floodfloodflood').length;
    await tab.waitFor(() => floodSeen() > 200, 30_000, 'the flood');
    tab.type('\x03');
    tab.type('echo stopped-$((2+3))\r');
    await tab.waitFor(/stopped-5/, 30_000, 'the interrupt and the next command');
  });
});

describe('a terminal channel on the wire (real sshd)', function () {
  let host: SshHost;

  before(async function () {
    this.timeout(30_000);
    host = await SshHost.start({ user: 'tetherwire' });
  });

  after(async () => {
    await host?.dispose();
  });

  it('sends pty-req and exec back to back, as OpenSSH does, not one reply apart', async () => {
    const events: string[] = [];
    const client = new Client();
    const hostKey = Buffer.from(host.knownHostsLine().split(' ')[2], 'base64');
    await new Promise<void>((resolve, reject) => {
      client.on('ready', () => resolve()).on('error', reject);
      client.connect({
        host: '127.0.0.1',
        port: host.port,
        username: host.user,
        privateKey: readFileSync(testKeys().clientKey),
        hostVerifier: (key: Buffer) => key.equals(hostKey),
        debug: (line: string) => {
          if (/CHANNEL_REQUEST \(r:\d+, (pty-req|exec)|Inbound: CHANNEL_(SUCCESS|FAILURE)/.test(line)) events.push(line.replace(/exec: .*/, 'exec'));
        },
      });
    });
    try {
      const channel = await openScriptChannel(client, 'echo on-a-tty; tty >/dev/null && echo is-a-tty', { term: 'xterm-256color', cols: 80, rows: 24 });
      const output = await new Promise<string>((resolve) => {
        let text = '';
        channel.on('data', (chunk: Buffer) => (text += chunk.toString()));
        channel.on('close', () => resolve(text));
      });
      assert.match(output, /is-a-tty/, 'the command ran on the pty');
      const pty = events.findIndex((line) => /pty-req/.test(line));
      const exec = events.findIndex((line) => /exec/.test(line));
      const firstReply = events.findIndex((line) => /Inbound/.test(line));
      assert.ok(pty >= 0 && exec > pty, events.join('\n'));
      assert.ok(exec < firstReply, `exec went out before the pty-req's reply:\n${events.join('\n')}`);
    } finally {
      client.end();
    }
  });
});
