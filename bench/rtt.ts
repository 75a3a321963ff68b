/**
 * Terminal operations at real round-trip times (issue 16): every figure is measured through the
 * same shaped TCP proxy (test/support/tcpProxy.ts) for Tether and for the OpenSSH client, in one run, at
 * RTT 0, 50, 100 and 200 ms (or one, with --rtt=N). Tether runs as the extension does: one pool,
 * capabilities cached per host after the first use. Round trips per operation are counted as the
 * session channels (exec) each one opens after the SSH handshake.
 */
import { BenchHost } from './lib/hosts';
import { installInstrumentation, takeCounts } from './lib/instrument';
import { OpenSshTab, TetherTab, benchPool, markerCommand, openSshAttach, openTetherTab, waitAttached } from './lib/clients';
import { TcpProxy } from '../test/support/tcpProxy';
import { Summary, round, sleep, summarize, waitUntil } from './lib/util';

export const RTTS = [0, 50, 100, 200] as const;

export interface RttResult {
  rttMs: number;
  newTab: { tether: Summary; openssh: Summary; ratio: number; execs: number };
  reconnect: { tether: Summary; openssh: Summary; ratio: number; execs: number };
  restore: { tabs: number; hosts: number; tetherMs: number; opensshSequentialMs: number; opensshOneMs: number; ratioToOne: number; execs: number; connects: number };
  join: { tether: Summary; openssh: Summary; ratio: number; execs: number };
  echo: { tether: Summary; openssh: Summary; p50DeltaMs: number };
}

async function closeAll(tabs: TetherTab[]): Promise<void> {
  for (const tab of tabs) tab.session.detach();
}

/** Spawn to marker visible: the command typed at once, run by the shell once the tab is up. */
async function tetherCommandVisible(tab: TetherTab, startedAt: number): Promise<number> {
  const { typed, marker } = markerCommand('UP');
  tab.session.write(`${typed}\r`);
  return (await tab.watch.waitFor(marker, 60_000)) - startedAt;
}

async function sshCommandVisible(ssh: OpenSshTab): Promise<number> {
  const { typed, marker } = markerCommand('UP');
  ssh.write(`${typed}\r`);
  return (await ssh.watch.waitFor(marker, 60_000)) - ssh.spawnedAt;
}

export async function atRtt(hosts: [BenchHost, BenchHost], rttMs: number, options: { quick: boolean; log: (line: string) => void }): Promise<RttResult> {
  const trials = options.quick ? 3 : 5;
  const link = { oneWayDelayMs: rttMs / 2 };
  installInstrumentation();
  const proxies = [await TcpProxy.start(hosts[0].port, { link, delayedEnd: true }), await TcpProxy.start(hosts[1].port, { link, delayedEnd: true })];
  const [proxy] = proxies;
  const host = hosts[0];
  const pool = benchPool();
  try {
    // Warm the pool's capability cache, as any earlier tab of the window would have. dispose()
    // closes the pool's connections and keeps what it learned: each trial below connects afresh.
    const warm = openTetherTab(pool, host, { mode: 'create', port: proxy.port });
    await waitAttached(warm, 60_000);
    await warm.session.kill();
    pool.dispose();

    // ---- new tab: fresh connection, command to visible output ---------------------------------
    const newTether: number[] = [];
    const newSsh: number[] = [];
    let newExecs = 0;
    for (let trial = 0; trial < trials; trial++) {
      takeCounts();
      const startedAt = performance.now();
      const tab = openTetherTab(pool, host, { mode: 'create', port: proxy.port });
      newTether.push(await tetherCommandVisible(tab, startedAt));
      if (trial === 0) newExecs = takeCounts().execTotal;
      await tab.session.kill();
      pool.dispose();
      const ssh = openSshAttach(host, '', { cols: 120, rows: 40 }, [], 'exec tmux -L bench new-session', proxy.port);
      try {
        newSsh.push(await sshCommandVisible(ssh));
      } finally {
        await ssh.close();
        host.run('tmux -L bench kill-server 2>/dev/null || true');
      }
    }

    // ---- reconnect: cut, then the marker redrawn -----------------------------------------------
    const recPool = benchPool();
    const recTether: number[] = [];
    const recSsh: number[] = [];
    let recExecs = 0;
    const tab = openTetherTab(recPool, host, { mode: 'create', port: proxy.port, reconnect: { baseDelayMs: 500, maxDelayMs: 5000, jitter: 0.5 } });
    await waitAttached(tab, 60_000);
    const { typed, marker } = markerCommand('LIVE');
    tab.session.write(`clear; ${typed}\r`);
    await tab.watch.waitFor(marker, 30_000);
    await tab.watch.settle(200 + rttMs);
    try {
      for (let trial = 0; trial < trials; trial++) {
        tab.stateAt.delete('attached');
        const seen = tab.watch.waitFor(marker, 60_000);
        takeCounts();
        const start = performance.now();
        proxy.cut();
        recTether.push((await seen) - start);
        await waitUntil(() => tab.stateAt.has('attached'), 30_000, 'attached');
        if (trial === 0) recExecs = takeCounts().execTotal;
        await tab.watch.settle(150 + rttMs);
        const ssh = openSshAttach(host, tab.session.id, { cols: 120, rows: 40 }, [], undefined, proxy.port);
        try {
          recSsh.push((await ssh.watch.waitFor(marker, 60_000)) - ssh.spawnedAt);
        } finally {
          await ssh.close();
        }
        await tab.watch.settle(150 + rttMs);
      }

      // ---- join from a second device: its own pool, replay and attach while this tab stays ----
      const joinTether: number[] = [];
      const joinSsh: number[] = [];
      let joinExecs = 0;
      for (let trial = 0; trial < trials; trial++) {
        const device2 = benchPool();
        takeCounts();
        const start = performance.now();
        const joined = openTetherTab(device2, host, { mode: 'attach', id: tab.session.id, multiplexer: 'tmux', replayLines: 2000, port: proxy.port });
        joinTether.push((await joined.watch.waitFor(marker, 60_000)) - start);
        await waitAttached(joined, 30_000);
        if (trial === 0) joinExecs = takeCounts().execTotal;
        joined.session.detach();
        device2.dispose();
        const ssh = openSshAttach(host, tab.session.id, { cols: 120, rows: 40 }, [], undefined, proxy.port);
        try {
          joinSsh.push((await ssh.watch.waitFor(marker, 60_000)) - ssh.spawnedAt);
        } finally {
          await ssh.close();
        }
        await tab.watch.settle(100 + rttMs);
      }

      // ---- keystroke echo: cat in the session, one key at a time ------------------------------
      tab.session.write('clear; cat\r');
      await tab.watch.settle(300 + rttMs);
      const keys = options.quick ? 20 : 40;
      const echoTether = await echoLoop(keys, (text) => tab.session.write(text), tab.watch);
      const ssh = openSshAttach(host, tab.session.id, { cols: 120, rows: 40 }, [], undefined, proxy.port);
      let echoSsh: number[];
      try {
        await ssh.watch.settle(500 + rttMs * 3, 30_000);
        echoSsh = await echoLoop(keys, (text) => ssh.write(text), ssh.watch);
      } finally {
        await ssh.close();
      }
      tab.session.write('\x03');

      const result: Omit<RttResult, 'restore'> = {
        rttMs,
        newTab: { tether: summarize(newTether), openssh: summarize(newSsh), ratio: round(median(newTether) / median(newSsh)), execs: newExecs },
        reconnect: { tether: summarize(recTether), openssh: summarize(recSsh), ratio: round(median(recTether) / median(recSsh)), execs: recExecs },
        join: { tether: summarize(joinTether), openssh: summarize(joinSsh), ratio: round(median(joinTether) / median(joinSsh)), execs: joinExecs },
        echo: { tether: summarize(echoTether), openssh: summarize(echoSsh), p50DeltaMs: round(median(echoTether) - median(echoSsh)) },
      };
      await tab.session.kill();
      recPool.dispose();
      const restore = await restoreAt(hosts, proxies, options);
      options.log(`  rtt ${rttMs} ms: new tab ${result.newTab.ratio}x, reconnect ${result.reconnect.ratio}x, restore ${restore.ratioToOne}x one, join ${result.join.ratio}x, echo ${result.echo.p50DeltaMs} ms`);
      return { ...result, restore };
    } finally {
      if (tab.session.state !== 'ended') await tab.session.kill();
      recPool.dispose();
    }
  } finally {
    pool.dispose();
    for (const p of proxies) await p.close();
    for (const h of hosts) h.killTmuxServer();
  }
}

/** 20 sessions on 2 hosts, each with 200 lines of history; all restored at once by a fresh pool. */
async function restoreAt(hosts: [BenchHost, BenchHost], proxies: TcpProxy[], options: { log: (line: string) => void }): Promise<RttResult['restore']> {
  const perHost = 10;
  const lastLine = 'history line 00200';
  const setup = benchPool();
  const ids: { index: number; id: string; tmuxVersion?: string }[] = [];
  const made: TetherTab[] = [];
  try {
    for (let index = 0; index < 2; index++) {
      for (let i = 0; i < perHost; i++) {
        const tab = openTetherTab(setup, hosts[index], { mode: 'create' });
        await waitAttached(tab, 60_000);
        tab.session.write(`clear; seq -f 'history line %05g' 200\r`);
        await tab.watch.waitFor(lastLine, 60_000);
        made.push(tab);
        ids.push({ index, id: tab.session.id, tmuxVersion: tab.session.tmuxVersion });
      }
    }
  } finally {
    await closeAll(made);
    setup.dispose();
  }
  await sleep(300);
  const pool = benchPool();
  takeCounts();
  const start = performance.now();
  // As TabManager restores: with the tmux version the snapshot recorded.
  const tabs = ids.map(({ index, id, tmuxVersion }) => openTetherTab(pool, hosts[index], { mode: 'attach', id, multiplexer: 'tmux', tmuxVersion, replayLines: 2000, port: proxies[index].port }));
  await Promise.all(tabs.map(async (tab) => {
    await tab.watch.waitFor(lastLine, 120_000);
    await waitAttached(tab, 60_000);
  }));
  const tetherMs = performance.now() - start;
  const counts = takeCounts();
  await closeAll(tabs);
  pool.dispose();
  await sleep(300);
  const seqStart = performance.now();
  let oneMs = 0;
  for (const { index, id } of ids) {
    const ssh = openSshAttach(hosts[index], id, { cols: 120, rows: 40 }, [], undefined, proxies[index].port);
    try {
      await ssh.watch.waitFor(lastLine, 60_000);
      if (oneMs === 0) oneMs = performance.now() - ssh.spawnedAt;
    } finally {
      await ssh.close();
    }
  }
  const sequential = performance.now() - seqStart;
  options.log(`  restore: tether ${tetherMs.toFixed(0)} ms, openssh 20 sequential ${sequential.toFixed(0)} ms, one ${oneMs.toFixed(0)} ms`);
  return {
    tabs: ids.length,
    hosts: 2,
    tetherMs: round(tetherMs, 1),
    opensshSequentialMs: round(sequential, 1),
    opensshOneMs: round(oneMs, 1),
    ratioToOne: round(tetherMs / oneMs),
    execs: counts.execTotal,
    connects: counts.connects,
  };
}

function median(values: readonly number[]): number {
  return summarize(values).p50;
}

async function echoLoop(count: number, write: (text: string) => void, watch: TetherTab['watch']): Promise<number[]> {
  const samples: number[] = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < count; i++) {
    const key = letters[i % 26];
    const seen = watch.waitFor(key, 10_000);
    const start = performance.now();
    write(key);
    samples.push((await seen) - start);
    await sleep(5);
  }
  return samples;
}
