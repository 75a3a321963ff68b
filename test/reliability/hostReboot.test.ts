/**
 * Host reboots: the tmux server (or the screen sessions) is killed while tabs are attached, while
 * they are reconnecting, and while VS Code is closed before a restore. Every affected tab must end
 * with the "no longer exists" message, and no session may appear on the host (a dead session is
 * never resurrected as an empty shell).
 */
import assert from 'node:assert/strict';
import { newSessionId } from '../../src/common/sessionId';
import type { ConnectionPool } from '../../src/ssh/sshConnection';
import { TabRecord, decodeSnapshot, encodeSnapshot } from '../../src/session/tabSnapshot';
import type { ResolvedHost } from '../../src/ssh/sshConfig';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { TcpProxy } from '../support/tcpProxy';
import { report, sleep, waitUntil } from './common';

const ROUNDS = Number(process.env.TETHER_REL_REBOOT_ROUNDS ?? 10);
const END_BOUND_MS = 30_000;
const GONE = /no longer exists on host/;
let createRetries = 0;

describe('reliability: host reboots', function () {
  this.timeout(600_000);
  let tmuxHost: SshHost;
  let screenHost: SshHost;
  let tmuxProxy: TcpProxy;
  let screenProxy: TcpProxy;
  const pools: ConnectionPool[] = [];
  const tabs: TabRecorder[] = [];

  before(async function () {
    tmuxHost = await SshHost.start({ user: 'tetherrelr' });
    screenHost = await SshHost.start({ user: 'tetherrels', withoutTmux: true });
    tmuxHost.reboot();
    screenHost.reboot();
    tmuxProxy = await TcpProxy.start(tmuxHost.port);
    screenProxy = await TcpProxy.start(screenHost.port);
  });

  afterEach(() => {
    for (const tab of tabs.splice(0)) tab.session.dispose();
    for (const pool of pools.splice(0)) pool.dispose();
    tmuxProxy.setRefusing(false);
    screenProxy.setRefusing(false);
    tmuxHost.reboot();
    screenHost.reboot();
  });

  after(async () => {
    await tmuxProxy?.close();
    await screenProxy?.close();
    await tmuxHost?.dispose();
    await screenHost?.dispose();
  });

  const hosts = (): { tmux: ResolvedHost; screen: ResolvedHost } => ({
    tmux: tmuxHost.resolved({ port: tmuxProxy.port, label: 'reboot-tmux' }),
    screen: screenHost.resolved({ port: screenProxy.port, label: 'reboot-screen' }),
  });

  const sessionsOnHosts = (): string[] => [...tmuxHost.tmuxSessions(), ...screenHost.screenSessions()].sort();

  /** Two tmux tabs and one screen tab, attached, each with a line of output. */
  async function openSet(pool: ConnectionPool, attempt = 0): Promise<TabRecorder[]> {
    const { tmux, screen } = hosts();
    const set = [
      TabRecorder.open({ id: newSessionId(), host: tmux, pool, mode: 'create', preference: 'tmux' }),
      TabRecorder.open({ id: newSessionId(), host: tmux, pool, mode: 'create', preference: 'tmux' }),
      TabRecorder.open({ id: newSessionId(), host: screen, pool, mode: 'create', preference: 'screen' }),
    ];
    tabs.push(...set);
    await Promise.all(set.map((tab) => tab.waitFor(() => tab.session.state === 'attached' || tab.session.state === 'ended', 20_000, 'attached')));
    if (set.some((tab) => tab.session.state === 'ended')) {
      // Setting up is not under test: a create that could not connect is retried (and counted).
      createRetries++;
      console.log(`      a tab could not be created (${JSON.stringify(set.find((tab) => tab.session.state === 'ended')!.plain.slice(-200))}); retrying`);
      for (const tab of set) tab.session.dispose();
      tmuxHost.reboot();
      screenHost.reboot();
      if (attempt >= 2) throw new Error('could not open the tabs three times');
      return openSet(pool, attempt + 1);
    }
    for (const tab of set) tab.type('echo before-reboot-$((20+1))\r');
    await Promise.all(set.map((tab) => tab.waitFor(/before-reboot-21/)));
    return set;
  }

  interface Tally {
    affected: number;
    endedWithMessage: number;
    endedWithoutMessage: number;
    stillOpen: number;
    resurrected: number;
    newSessions: number;
  }
  const tally = (): Tally => ({ affected: 0, endedWithMessage: 0, endedWithoutMessage: 0, stillOpen: 0, resurrected: 0, newSessions: 0 });

  async function settle(affected: TabRecorder[], t: Tally): Promise<void> {
    t.affected += affected.length;
    const deadline = Date.now() + END_BOUND_MS;
    while (affected.some((tab) => tab.session.state !== 'ended') && Date.now() < deadline) await sleep(25);
    for (const tab of affected) {
      if (tab.session.state !== 'ended') {
        t.stillOpen++;
        if (tab.session.state === 'attached') t.resurrected++;
        console.log(`      tab ${tab.session.name} still ${tab.session.state}: ${JSON.stringify(tab.plain.slice(-300))}`);
      } else if (tab.exitCode === 1 && GONE.test(tab.plain)) {
        t.endedWithMessage++;
      } else {
        t.endedWithoutMessage++;
        console.log(`      tab ${tab.session.name} ended with ${tab.exitCode}: ${JSON.stringify(tab.plain.slice(-300))}`);
      }
    }
    // Give a wrong create a moment to show itself.
    await sleep(300);
    t.newSessions += sessionsOnHosts().length;
  }

  function check(name: string, t: Tally): void {
    report({
      scenario: `Host reboot: ${name}`,
      iterations: ROUNDS,
      counts: {
        'tabs affected': t.affected,
        'ended with message': t.endedWithMessage,
        'ended without message': t.endedWithoutMessage,
        'stuck (not ended)': t.stillOpen,
        'resurrected as empty shell': t.resurrected,
        'new sessions on host': t.newSessions,
        'set-up retries (not under test)': createRetries,
      },
    });
    assert.equal(t.endedWithMessage, t.affected, 'every affected tab ends with the message');
    assert.equal(t.resurrected, 0);
    assert.equal(t.newSessions, 0, 'no session appeared on the host');
  }

  it(`kills the tmux server and the screen sessions while tabs are attached (${ROUNDS} rounds)`, async () => {
    const t = tally();
    for (let round = 0; round < ROUNDS; round++) {
      const pool = testPool();
      pools.push(pool);
      const set = await openSet(pool);
      tmuxHost.reboot();
      screenHost.reboot();
      await settle(set, t);
      pool.dispose();
    }
    check('tmux server / screen sessions killed while attached', t);
  });

  it(`kills them while the tabs are reconnecting (${ROUNDS} rounds)`, async () => {
    const t = tally();
    for (let round = 0; round < ROUNDS; round++) {
      const pool = testPool();
      pools.push(pool);
      const set = await openSet(pool);
      tmuxProxy.setRefusing(true);
      screenProxy.setRefusing(true);
      tmuxProxy.cut();
      screenProxy.cut();
      await waitUntil(() => set.every((tab) => tab.session.state === 'reconnecting'), 15_000, 'all tabs reconnecting');
      // Half the rounds kill at once, half after a few failed attempts.
      await sleep(round % 2 === 0 ? 0 : 1500);
      tmuxHost.reboot();
      screenHost.reboot();
      tmuxProxy.setRefusing(false);
      screenProxy.setRefusing(false);
      await settle(set, t);
      pool.dispose();
    }
    check('killed while tabs reconnect', t);
  });

  it(`kills them while VS Code is closed, then restores from the snapshot (${ROUNDS} rounds)`, async () => {
    const t = tally();
    let survivorsRestored = 0;
    let survivors = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const pool = testPool();
      pools.push(pool);
      const set = await openSet(pool);
      const records: TabRecord[] = set.map((tab) => ({
        id: tab.session.id,
        hostLabel: tab.session.host.label,
        user: tab.session.host.user,
        hostName: tab.session.host.hostName,
        port: tab.session.host.port,
        multiplexer: tab.session.multiplexer!,
        name: `${tab.session.host.label} · ${tab.session.id.slice(0, 6)}`,
        location: 'panel',
        startedAt: Date.now(),
      }));
      const stored = JSON.parse(JSON.stringify(encodeSnapshot(records)));
      // The crash: every object dropped, every connection dead without a goodbye.
      tmuxProxy.cut();
      screenProxy.cut();
      for (const tab of set) tab.session.dispose();
      pool.dispose();
      // Even rounds: a reboot (everything gone). Odd rounds: only the first tmux session is killed.
      let doomed: string[];
      if (round % 2 === 0) {
        tmuxHost.reboot();
        screenHost.reboot();
        doomed = set.map((tab) => tab.session.id);
      } else {
        tmuxHost.tmux(`kill-session -t '=${set[0].session.name}'`);
        doomed = [set[0].session.id];
      }
      const expectedAfter = sessionsOnHosts();
      const fresh = testPool();
      pools.push(fresh);
      const { tmux, screen } = hosts();
      const restored = decodeSnapshot(stored).tabs.map((record) => {
        const tab = TabRecorder.open({ id: record.id, host: record.multiplexer === 'screen' ? screen : tmux, pool: fresh, mode: 'attach', multiplexer: record.multiplexer, replayLines: 2000 });
        tabs.push(tab);
        return tab;
      });
      const affected = restored.filter((tab) => doomed.includes(tab.session.id));
      const alive = restored.filter((tab) => !doomed.includes(tab.session.id));
      t.affected += affected.length;
      const deadline = Date.now() + END_BOUND_MS;
      while (affected.some((tab) => tab.session.state !== 'ended') && Date.now() < deadline) await sleep(25);
      for (const tab of affected) {
        if (tab.session.state === 'ended' && tab.exitCode === 1 && GONE.test(tab.plain)) t.endedWithMessage++;
        else if (tab.session.state === 'ended') t.endedWithoutMessage++;
        else {
          t.stillOpen++;
          if (tab.session.state === 'attached') t.resurrected++;
        }
      }
      for (const tab of alive) {
        survivors++;
        await tab.waitForState('attached', 20_000);
        assert.match(tab.plain, /before-reboot-21/, 'a surviving session is restored with its scrollback');
        tab.type('echo restored-$((30+3))\r');
        await tab.waitFor(/restored-33/);
        survivorsRestored++;
      }
      await sleep(300);
      const after = sessionsOnHosts();
      t.newSessions += after.filter((name) => !expectedAfter.includes(name)).length;
      for (const tab of restored) tab.session.dispose();
      fresh.dispose();
      tmuxHost.reboot();
      screenHost.reboot();
    }
    report({
      scenario: 'Host reboot: while VS Code closed, then restore (survivors)',
      iterations: ROUNDS,
      counts: { 'surviving sessions': survivors, 're-attached with scrollback': survivorsRestored },
    });
    check('killed while VS Code closed, then restore', t);
    assert.equal(survivorsRestored, survivors);
  });
});
