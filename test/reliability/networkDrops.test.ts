/**
 * Network drops: the SSH connection is cut (TCP reset) 100 times at random moments, during heavy
 * output and during typing, and hung (packets dropped, no FIN) a few times. Counts sessions lost,
 * duplicated sessions on the host, and tabs left stuck (not 'attached' again within the bound).
 */
import assert from 'node:assert/strict';
import { newSessionId } from '../../src/common/sessionId';
import type { ConnectionPool } from '../../src/ssh/sshConnection';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { TcpProxy } from '../support/tcpProxy';
import { median, report, rng, sleep } from './common';

const CUTS = Number(process.env.TETHER_REL_CUTS ?? 100);
const FREEZES = Number(process.env.TETHER_REL_FREEZES ?? 3);
/** A tab that is not attached again this long after a drop counts as stuck. */
const REATTACH_BOUND_MS = 30_000;

describe('reliability: network drops', function () {
  this.timeout(900_000);
  let host: SshHost;
  let proxy: TcpProxy;
  let pool: ConnectionPool;
  const tabs: TabRecorder[] = [];

  before(async function () {
    host = await SshHost.start({ user: 'tetherreld' });
    host.reboot();
    proxy = await TcpProxy.start(host.port);
    pool = testPool();
  });

  after(async () => {
    for (const tab of tabs) tab.session.dispose();
    pool?.dispose();
    await proxy?.close();
    await host?.dispose();
  });

  const panePid = (tab: TabRecorder): string => host.tmux(`display -p -t '=${tab.session.name}:' '#{pane_pid}'`).trim();

  /** Host-side truth: which of our sessions are missing, and how many sessions are extra. */
  const audit = (expected: string[]): { lost: number; duplicates: number } => {
    const onHost = host.tmuxSessions();
    const lost = expected.filter((name) => !onHost.includes(name)).length;
    const duplicates = onHost.length - (expected.length - lost);
    return { lost, duplicates };
  };

  const allAttached = (): boolean => tabs.every((tab) => tab.session.state === 'attached');

  async function waitAllAttached(boundMs: number): Promise<{ ok: boolean; ms: number }> {
    const started = Date.now();
    while (!allAttached()) {
      if (tabs.some((tab) => tab.session.state === 'ended')) return { ok: false, ms: Date.now() - started };
      if (Date.now() - started > boundMs) return { ok: false, ms: Date.now() - started };
      await sleep(10);
    }
    return { ok: true, ms: Date.now() - started };
  }

  it(`survives ${CUTS} cuts during heavy output and typing, and ${FREEZES} hung links: no session lost, none duplicated, no tab stuck`, async () => {
    const seed = Number(process.env.TETHER_REL_SEED ?? Date.now() % 1_000_000);
    console.log(`      (seed ${seed}; set TETHER_REL_SEED to repeat)`);
    const random = rng(seed);
    const resolved = host.resolved({ port: proxy.port, label: 'drop-host' });
    for (let i = 0; i < 4; i++) tabs.push(TabRecorder.open({ id: newSessionId(), host: resolved, pool, mode: 'create', preference: 'tmux' }));
    await Promise.all(tabs.map((tab) => tab.waitForState('attached', 20_000)));
    const [out1, out2, typist1, typist2] = tabs;
    const typists = [typist1, typist2];
    const names = tabs.map((tab) => tab.session.name);

    // Heavy output: ~200 lines every 50 ms in two tabs, each with a counter that proves the same process runs on.
    for (const tab of [out1, out2]) tab.type('n=0; while :; do n=$((n+1)); echo "counter $n"; seq 1 200; sleep 0.05; done\r');
    // tmux redraws a screen rather than replaying a stream, so lines may be skipped: read the highest counter.
    const highest = (tab: TabRecorder): number => Math.max(0, ...[...tab.plain.slice(-50_000).matchAll(/counter (\d+)/g)].map((m) => Number(m[1])));
    await out1.waitFor(() => highest(out1) >= 3, 15_000, 'output loop 1');
    await out2.waitFor(() => highest(out2) >= 3, 15_000, 'output loop 2');
    const pids = new Map(tabs.map((tab) => [tab.session.id, panePid(tab)]));
    assert.ok([...pids.values()].every((pid) => /^\d+$/.test(pid)), 'pane pids readable');

    let lost = 0;
    let duplicates = 0;
    let stuck = 0;
    let ended = 0;
    let typedOk = 0;
    let typedLost = 0;
    let firstLineLost = 0;
    let lateNotLost = 0;
    let lostAfterTyping = 0;
    const reattachMs: number[] = [];
    let duringOutput = 0;
    let duringTyping = 0;

    for (let i = 0; i < CUTS; i++) {
      const typing = i % 2 === 1;
      let typer: NodeJS.Timeout | undefined;
      if (typing) {
        duringTyping++;
        // Keystrokes stream in while the cable is pulled; what is lost mid-cut is lost, the tab must not be.
        let k = 0;
        typer = setInterval(() => {
          for (const tab of typists) tab.type(String.fromCharCode(97 + (k % 26)));
          k++;
        }, 5);
      } else {
        duringOutput++;
      }
      await sleep(20 + Math.floor(random() * 480));
      const reconnectsBefore = tabs.map((tab) => tab.states.filter((state) => state === 'reconnecting').length);
      const cutAt = Date.now();
      proxy.cut();
      if (typer) {
        await sleep(Math.floor(random() * 100));
        clearInterval(typer);
      }
      // Every tab must notice the drop (the reset reaches it asynchronously), then be attached again.
      while (Date.now() - cutAt < REATTACH_BOUND_MS && tabs.some((tab, n) => tab.states.filter((state) => state === 'reconnecting').length <= reconnectsBefore[n])) await sleep(5);
      const result = await waitAllAttached(Math.max(0, REATTACH_BOUND_MS - (Date.now() - cutAt)));
      result.ms = Date.now() - cutAt;
      if (!result.ok) {
        stuck += tabs.filter((tab) => tab.session.state !== 'attached' && tab.session.state !== 'ended').length;
        ended += tabs.filter((tab) => tab.session.state === 'ended').length;
        console.log(`      cut ${i}: tabs not attached within ${REATTACH_BOUND_MS} ms: ${tabs.map((tab) => tab.session.state).join(', ')}`);
        break;
      }
      reattachMs.push(result.ms);
      const audited = audit(names);
      lost += audited.lost;
      duplicates += Math.max(0, audited.duplicates);
      // The tab works after the drop: a fresh line typed now is run by the same shell. It starts with
      // Ctrl-U to clear what the storm left on the line; written in the few ms between 'attached' and
      // tmux putting the pty in raw mode, the Ctrl-U is eaten by the pty's cooked line discipline
      // (same root cause as the skipped test in concurrency.test.ts), the line then runs glued to the
      // leftovers, and it is typed again. A tab that never answers is stuck.
      const typist = typists[i % 2];
      let answered = false;
      let retries = 0;
      for (let attempt = 0; attempt < 3 && !answered; attempt++) {
        if (attempt > 0) retries++;
        typist.type(`\x15echo mark-${i}-${attempt}-$((40+2))\r`);
        try {
          await typist.waitFor(new RegExp(`mark-${i}-${attempt}-42`), 4_000);
          answered = true;
        } catch {
          /* typed again below */
        }
      }
      if (retries > 0) {
        // Lost, or only slow (a loaded machine)? A slow line still shows up.
        await sleep(1000);
        for (let attempt = 0; attempt < retries; attempt++) {
          if (new RegExp(`mark-${i}-${attempt}-42`).test(typist.plain)) lateNotLost++;
          else {
            firstLineLost++;
            if (typing) lostAfterTyping++;
            if (process.env.TETHER_REL_DEBUG) console.log(`      cut ${i} (${typing ? 'typing' : 'output'}): line ${attempt} lost; tail ${JSON.stringify(typist.text.slice(-700))}`);
          }
        }
      }
      if (answered) typedOk++;
      else {
        typedLost++;
        console.log(`      cut ${i}: the shell never ran a typed line; state ${typist.session.state}; tail ${JSON.stringify(typist.plain.slice(-300))}`);
      }
      // Keep memory flat: the recorders only need recent output.
      for (const tab of tabs) if (tab.text.length > 200_000) tab.text = tab.text.slice(-20_000);
    }

    // Hung links: no FIN, no RST; only the keepalive can tell.
    const detectMs: number[] = [];
    let freezeStuck = 0;
    for (let f = 0; f < FREEZES && stuck === 0; f++) {
      await sleep(200 + Math.floor(random() * 300));
      const frozenAt = Date.now();
      proxy.freeze();
      let detected = false;
      while (Date.now() - frozenAt < 20_000) {
        if (tabs.every((tab) => tab.session.state !== 'attached')) {
          detected = true;
          break;
        }
        await sleep(20);
      }
      detectMs.push(Date.now() - frozenAt);
      proxy.thaw();
      proxy.cut(); // the link heals; the half-open sockets from the hang are gone for good
      if (!detected) freezeStuck += tabs.filter((tab) => tab.session.state === 'attached').length;
      const result = await waitAllAttached(REATTACH_BOUND_MS);
      if (!result.ok) freezeStuck += tabs.filter((tab) => tab.session.state !== 'attached').length;
      const audited = audit(names);
      lost += audited.lost;
      duplicates += Math.max(0, audited.duplicates);
      typist1.type(`\x15echo thawed-${f}-$((40+2))\r`);
      await typist1.waitFor(new RegExp(`thawed-${f}-42`), 10_000);
    }

    const final = await waitAllAttached(REATTACH_BOUND_MS);
    if (!final.ok) stuck += tabs.filter((tab) => tab.session.state !== 'attached').length;
    // The same shells run in the same panes: a recreated session would have new ones.
    let recreated = 0;
    for (const tab of tabs) if (tab.session.state !== 'ended' && panePid(tab) !== pids.get(tab.session.id)) recreated++;
    const before = highest(out1);
    await out1.waitFor(() => highest(out1) >= before + 2, 10_000, 'the output loop kept running');
    ended += tabs.filter((tab) => tab.session.state === 'ended').length;

    report({
      scenario: 'Network drops (TcpProxy.cut, RST)',
      iterations: CUTS,
      counts: {
        'during output': duringOutput,
        'during typing': duringTyping,
        'tabs x cuts': CUTS * tabs.length,
        'sessions lost': lost,
        'duplicates': duplicates,
        'stuck tabs': stuck,
        'tabs ended': ended,
        'recreated shells': recreated,
        'typed line ran after re-attach': `${typedOk}/${typedOk + typedLost}`,
        'first line not run as typed (retyped)': firstLineLost,
        'of which after a typing storm': lostAfterTyping,
        'typed line slow > 4 s (not lost)': lateNotLost,
        'cut to re-attach median ms': median(reattachMs),
        'cut to re-attach max ms': Math.max(0, ...reattachMs),
      },
    });
    report({
      scenario: 'Hung link (TcpProxy.freeze, no FIN)',
      iterations: FREEZES,
      counts: { 'detected by keepalive': detectMs.length - (freezeStuck > 0 ? 1 : 0), 'detect max ms': Math.max(0, ...detectMs), 'stuck tabs': freezeStuck },
    });

    assert.equal(stuck, 0, 'tabs stuck after a cut');
    assert.equal(ended, 0, 'tabs ended by a drop');
    assert.equal(lost, 0, 'sessions lost');
    assert.equal(duplicates, 0, 'duplicate sessions on the host');
    assert.equal(recreated, 0, 'sessions recreated (new pane process)');
    assert.equal(typedLost, 0, 'a line typed after re-attach did not run');
    assert.equal(freezeStuck, 0, 'hung links not detected or not recovered');
    assert.deepEqual(host.tmuxSessions().sort(), [...names].sort());
  });

  it('delivers a line typed the moment a tab reports attached again after a drop', async () => {
    const tab = TabRecorder.open({ id: newSessionId(), host: host.resolved({ port: proxy.port, label: 'drop-host' }), pool, mode: 'create', preference: 'tmux' });
    tabs.push(tab);
    await tab.waitForState('attached', 20_000);
    let lost = 0;
    const rounds = 20;
    for (let i = 0; i < rounds; i++) {
      await sleep(300);
      const typed = new Promise<void>((resolve) => {
        const onState = (state: string): void => {
          if (state !== 'attached') return;
          tab.session.off('state', onState);
          tab.type(`echo early-${i}-$((40+2))\r`);
          resolve();
        };
        tab.session.on('state', onState);
      });
      proxy.cut();
      await typed;
      try {
        await tab.waitFor(new RegExp(`early-${i}-42`), 5_000);
      } catch {
        lost++;
        tab.type('\x15');
      }
    }
    report({ scenario: 'Line typed at the moment of re-attach', iterations: rounds, counts: { 'lines lost': lost } });
    assert.equal(lost, 0, 'keystrokes typed right after the tab reports attached were lost');
  });
});
