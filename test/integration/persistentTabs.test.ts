import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectError, ConnectionPool } from '../../src/ssh/sshConnection';
import { SshHost } from '../support/sshHost';
import { HostSuite, TabRecorder, eventually, sleep, testPool } from './fixtures/sessionHarness';
import { TcpProxy } from '../support/tcpProxy';

for (const tmuxMode of ['attach', 'control'] as const)
describe(`persistent tabs against a real sshd (tmux ${tmuxMode} mode)`, function () {
  const suite = new HostSuite({ user: 'tethera' }, { proxy: true, tabs: { tmuxMode } });

  it('creates tmux session tether_<id> on socket -L tether with its options, and runs commands', async () => {
    const tab = suite.open({ cwd: '/tmp' });
    await tab.waitForState('attached');
    tab.type('echo "hello from $(pwd)"\r');
    await tab.waitFor(/hello from \/tmp/);
    assert.deepEqual(suite.host.tmuxSessions(), [tab.session.name]);
    const target = `-t '=${tab.session.name}:'`;
    assert.match(suite.host.tmux(`show-options ${target} status`), /status off/);
    assert.match(suite.host.tmux(`show-options ${target} prefix`), /prefix None/);
    assert.match(suite.host.tmux(`show-window-options ${target} window-size`), /window-size latest/);
    assert.equal(tab.session.multiplexer, 'tmux');
  });

  it('keeps the inner shell free of TMUX so the user’s own tmux works', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    tab.type('echo "tmux-var:[${TMUX}]"\r');
    await tab.waitFor(/tmux-var:\[\]/);
  });

  it('survives a cut connection: re-attaches and the process inside keeps counting', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    tab.type('i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done\r');
    await tab.waitFor(/tick 5\b/);
    const panePid = suite.host.tmux(`display -p -t '=${tab.session.name}:' '#{pane_pid}'`).trim();
    const connectionsBefore = suite.proxy.connections;
    suite.proxy.cut();
    await tab.waitFor(/reconnecting/);
    await tab.waitFor(() => tab.session.state === 'attached' && suite.proxy.connections > connectionsBefore, 15_000, 're-attach');
    const seen = [...tab.plain.matchAll(/tick (\d+)/g)].map((match) => Number(match[1]));
    const highest = Math.max(...seen);
    await tab.waitFor(new RegExp(`tick ${highest + 3}\\b`));
    // The same shell runs in the same pane (a recreated session would have a new one), and no session was added.
    assert.equal(suite.host.tmux(`display -p -t '=${tab.session.name}:' '#{pane_pid}'`).trim(), panePid);
    assert.deepEqual(suite.host.tmuxSessions(), [tab.session.name]);
  });

  it('notices a hung link (no FIN) through keepalive and re-attaches when it heals', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    suite.proxy.freeze();
    await tab.waitFor(/reconnecting/, 20_000);
    suite.proxy.thaw();
    await tab.waitForState('attached', 20_000);
    tab.type('echo still-here\r');
    await tab.waitFor(/still-here/);
    assert.deepEqual(suite.host.tmuxSessions(), [tab.session.name]);
  });

  it('ends the tab with a message when the tmux server is killed, and recreates nothing', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    suite.host.reboot();
    const code = await tab.exited;
    assert.notEqual(code, 0);
    assert.match(tab.plain, /no longer exists on host/);
    await sleep(500);
    assert.deepEqual(suite.host.tmuxSessions(), []);
  });

  it('ends the tab with a message when the host rebooted while the connection was down', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    suite.proxy.setRefusing(true);
    suite.proxy.cut();
    await tab.waitFor(/reconnecting/);
    suite.host.reboot();
    suite.proxy.setRefusing(false);
    const code = await tab.exited;
    assert.equal(code, 1);
    assert.match(tab.plain, /no longer exists on host/);
    assert.deepEqual(suite.host.tmuxSessions(), []);
  });

  it('closes the tab with the shell’s exit status when the user types exit, without reconnecting', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    tab.type('exit 3\r');
    assert.equal(await tab.exited, 3);
    assert.doesNotMatch(tab.plain, /reconnecting|no longer exists/);
  });

  it('follows resizes of the tab, and ignores a zero-sized one', async () => {
    const tab = suite.open();
    await tab.waitForState('attached');
    tab.session.resize({ cols: 132, rows: 40 });
    tab.session.resize({ cols: 0, rows: 0 });
    await sleep(300);
    tab.type('stty size\r');
    await tab.waitFor(/40 132/);
  });

  it('treats a hostile working directory as data: no command runs, the shell starts in $HOME', async () => {
    const canary = `/tmp/tether-canary-${process.pid}`;
    rmSync(canary, { force: true });
    const tab = suite.open({ cwd: `/nonexistent'; touch ${canary}; echo '$(touch ${canary})\`touch ${canary}\`` });
    await tab.waitForState('attached');
    tab.type('echo "cwd=$(pwd)"\r');
    await tab.waitFor(/cwd=\//);
    assert.match(tab.plain, new RegExp(`cwd=${suite.host.home}`));
    assert.equal(existsSync(canary), false);
  });

  it('refuses an invalid session ID before anything reaches the host', () => {
    assert.throws(() => suite.open({ id: 'abc; touch /tmp/x' }), /invalid Tether session ID/);
  });

  it('shares one SSH connection among the tabs of a host', async () => {
    const before = suite.proxy.connections;
    const first = suite.open();
    const second = suite.open();
    await first.waitForState('attached');
    await second.waitForState('attached');
    assert.equal(suite.proxy.connections - before, 1);
    assert.equal(suite.host.tmuxSessions().length, 2);
  });

  it('refuses a changed host key before authentication', async () => {
    const impostor = await SshHost.start({ user: 'tethera' });
    try {
      // known_hosts lists the real host's key for the impostor's address.
      const resolved = impostor.resolved({ knownHostsFile: undefined });
      const { writeFileSync } = await import('node:fs');
      writeFileSync(resolved.knownHostsFiles[0], `${suite.host.knownHostsLine(impostor.port)}\n`);
      await assert.rejects(suite.pool.acquire(resolved), (error: unknown) => {
        assert.ok(ConnectError.is(error));
        assert.equal(error.reason, 'host-key');
        assert.match(error.message, /changed/);
        assert.match(error.message, /SHA256:/);
        return true;
      });
      await sleep(300);
      const log = impostor.log();
      assert.match(log, /Connection from 127\.0\.0\.1/);
      assert.doesNotMatch(log, /publickey|Accepted|Failed|userauth/i, 'no authentication attempt reached the impostor');
    } finally {
      await impostor.dispose();
    }
  });

  it('asks about an unknown host key and stops when the user refuses', async () => {
    let asked = '';
    const refusing = testPool({ confirmUnknown: async () => ((asked = 'yes'), false) });
    const resolved = suite.host.resolved();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(resolved.knownHostsFiles[0], '');
    await assert.rejects(refusing.acquire(resolved), (error: unknown) => ConnectError.is(error) && error.reason === 'host-key');
    assert.equal(asked, 'yes');
    refusing.dispose();
  });

  it('connects through a ProxyJump hop, verifying both host keys', async () => {
    const jump = await SshHost.start({ user: 'tetherjump' });
    try {
      const target = suite.host.resolved({ label: 'behind-jump', proxyJump: [jump.resolved()] });
      const tab = TabRecorder.open({ id: newSessionId(), host: target, pool: suite.pool, mode: 'create', preference: 'tmux' });
      suite.tabs.push(tab);
      await tab.waitForState('attached');
      tab.type('echo via-jump\r');
      await tab.waitFor(/via-jump/);
      await eventually(() => /Accepted publickey for tetherjump/.test(jump.log()), 5000, 'jump host log');
    } finally {
      await jump.dispose();
    }
  });
});

describe('hosts without tmux', function () {
  let noTmux: SshHost;
  let bare: SshHost;
  let proxy: TcpProxy;
  let pool: ConnectionPool;
  const tabs: TabRecorder[] = [];

  before(async function () {
    this.timeout(30_000);
    noTmux = await SshHost.start({ user: 'tetherb', withoutTmux: true });
    bare = await SshHost.start({ user: 'tetherc', withoutTmux: true, withoutScreen: true });
    proxy = await TcpProxy.start(noTmux.port);
  });
  beforeEach(() => (pool = testPool()));
  afterEach(() => {
    for (const tab of tabs.splice(0)) tab.session.dispose();
    pool.dispose();
    noTmux.reboot();
  });
  after(async () => {
    await proxy?.close();
    await noTmux?.dispose();
    await bare?.dispose();
  });

  it('falls back to GNU screen, which survives a cut connection', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: noTmux.resolved({ port: proxy.port }), pool, mode: 'create', preference: 'auto' });
    tabs.push(tab);
    await tab.waitForState('attached');
    assert.equal(tab.session.multiplexer, 'screen');
    tab.type('export MARK=kept-$$; echo "mark=$MARK"\r');
    await tab.waitFor(/mark=kept-\d+/);
    const mark = /mark=(kept-\d+)/.exec(tab.plain)![1];
    assert.deepEqual(noTmux.screenSessions(), [tab.session.name]);
    proxy.cut();
    await tab.waitFor(/reconnecting/);
    await tab.waitForState('attached');
    tab.type('echo "again=$MARK"\r');
    await tab.waitFor(new RegExp(`again=${mark}`));
  });

  it('ends a screen tab with a message when its session is killed', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: noTmux.resolved(), pool, mode: 'create', preference: 'screen' });
    tabs.push(tab);
    await tab.waitForState('attached');
    noTmux.reboot();
    assert.equal(await tab.exited, 1);
    assert.match(tab.plain, /no longer exists on host/);
    assert.deepEqual(noTmux.screenSessions(), []);
  });

  it('opens a plain shell on a host with neither, and says it will not survive a disconnect', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: bare.resolved(), pool, mode: 'create', preference: 'auto' });
    tabs.push(tab);
    await tab.waitForState('attached');
    assert.equal(tab.session.multiplexer, 'none');
    assert.match(tab.plain, /neither tmux nor GNU screen.*will not survive a disconnect/);
    tab.type('echo plain-$((6*7))\r');
    await tab.waitFor(/plain-42/);
  });

  it('gives a plain shell when the setting says none, even where tmux exists', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: noTmux.resolved(), pool, mode: 'create', preference: 'none' });
    tabs.push(tab);
    await tab.waitForState('attached');
    assert.equal(tab.session.multiplexer, 'none');
    assert.match(tab.plain, /will not survive a disconnect/);
  });

  it('says so when tmux is required but missing', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: noTmux.resolved(), pool, mode: 'create', preference: 'tmux' });
    tabs.push(tab);
    await tab.waitForState('attached');
    assert.match(tab.plain, /tmux is not installed on the host/);
  });
});
