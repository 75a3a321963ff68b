/**
 * Terminal benchmarks against loopback sshd hosts: output throughput, keystroke echo, reconnect,
 * restore, and the round trips / tmux invocations each operation costs. Every Tether figure has an
 * OpenSSH baseline measured in the same run against the same sshd and tmux server.
 */
import { readFileSync } from 'node:fs';
import { ConnectionPool } from '../src/ssh/sshConnection';
import { TcpProxy } from '../test/support/tcpProxy';
import { BenchHost } from './lib/hosts';
import { Counts, installInstrumentation, startTimeline, takeCounts, takeTimeline } from './lib/instrument';
import { OpenSshTab, TetherTab, benchPool, setTmuxMode, markerCommand, openSshAttach, openTetherTab, waitAttached } from './lib/clients';
import { Summary, median, round, sleep, summarize, waitUntil } from './lib/util';
import { startProfile } from './lib/profile';
import { useImmediateFlush, useNoDelay } from './lib/variants';

export interface TerminalOptions {
  quick: boolean;
  profile: boolean;
  log: (line: string) => void;
}

export interface ThroughputResult {
  bytes: number;
  trials: number;
  tetherSeconds: number[];
  opensshSeconds: number[];
  tetherMBps: number;
  opensshMBps: number;
  ratio: number;
  tetherDeliveredChars: number;
  opensshDeliveredBytes: number;
  tetherDataEvents: number;
  profileTop?: string[];
  /** The proposed OutputBatcher fix, one trial. */
  immediateFlushSeconds?: number;
  /** CPU seconds per run: the host's tmux server and this (Tether) process, against wall seconds. */
  cpu: { who: string; wallSeconds: number; tmuxServerCpuSeconds: number; benchProcessCpuSeconds: number }[];
  /** The same bytes without tmux: Tether's plain-shell tab vs `ssh -tt host` typing into a login shell. */
  raw?: { bytes: number; tetherSeconds: number[]; opensshSeconds: number[]; tetherMBps: number; opensshMBps: number; ratio: number; immediateFlushSeconds: number; profileTop?: string[] };
}

export interface EchoResult {
  keystrokes: number;
  tether: Summary;
  openssh: Summary;
  p50DeltaMs: number;
  p99DeltaMs: number;
  variants?: Record<string, Summary>;
}

export interface ReconnectResult {
  trials: number;
  tetherLive: Summary;
  tetherAttachedState: Summary;
  /** The proposed fix (TCP_NODELAY on the ssh2 socket), patched in. */
  tetherNoDelayLive: Summary;
  timelineNoDelay: string[];
  openssh: Summary;
  deltaP50Ms: number;
  counts: Counts;
  /** The first trial, event by event, from the cut. */
  timeline: string[];
}

export interface RestoreResult {
  tabs: number;
  hosts: number;
  historyLines: number;
  tetherTotalMs: number;
  tetherAllAttachedMs: number;
  opensshSequentialMs: number;
  connectsPerHost: number;
  counts: Counts;
  /** ms from start at which each tab reported 'attached', sorted. */
  attachedAtEach: number[];
}

async function cleanupTabs(tabs: TetherTab[]): Promise<void> {
  for (const tab of tabs) tab.session.dispose();
}

/** Creates a tmux session through Tether and waits until its shell prompt has settled. */
async function createSettledTab(pool: ConnectionPool, host: BenchHost, size = { cols: 120, rows: 40 }): Promise<TetherTab> {
  const tab = openTetherTab(pool, host, { mode: 'create', size });
  await waitAttached(tab);
  await tab.watch.settle(300);
  return tab;
}

// ---- throughput ---------------------------------------------------------------------------------

/** One Tether client attached to an existing session (attach mode, as restore and join do). */
async function attachTether(pool: ConnectionPool, host: BenchHost, id: string): Promise<TetherTab> {
  const tab = openTetherTab(pool, host, { mode: 'attach', id, multiplexer: 'tmux', size: { cols: 120, rows: 40 } });
  await waitAttached(tab);
  await tab.watch.settle(300);
  return tab;
}

/** CPU seconds (user+system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Types `command` and resolves with the ms until `marker` arrives. */
async function timeCommand(watch: TetherTab['watch'], write: (text: string) => void, command: string, marker: string, timeoutMs: number): Promise<number> {
  const start = performance.now();
  const done = watch.waitFor(marker, timeoutMs);
  write(command);
  return (await done) - start;
}

export async function throughput(host: BenchHost, options: TerminalOptions): Promise<ThroughputResult> {
  const bytes = options.quick ? 50_000_000 : 200_000_000;
  const trials = options.quick ? 1 : 2;
  const line = 'the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopq';
  const produce = (typed: string): string => `clear; yes '${line}' | head -c ${bytes}; ${typed}\r`;
  const pool = benchPool();
  const tetherSeconds: number[] = [];
  const opensshSeconds: number[] = [];
  let tetherDeliveredChars = 0;
  let opensshDeliveredBytes = 0;
  let tetherDataEvents = 0;
  let profileTop: string[] | undefined;
  let immediateFlushSeconds: number | undefined;
  let tmuxPid = 0;
  const cpu: ThroughputResult['cpu'] = [];
  const sample = (): { tmux: number; self: number } => {
    const usage = process.cpuUsage();
    return { tmux: cpuSeconds(tmuxPid), self: (usage.user + usage.system) / 1e6 };
  };
  const noteCpu = (who: string, ms: number, before: { tmux: number; self: number }): void => {
    const after = sample();
    cpu.push({ who, wallSeconds: round(ms / 1000), tmuxServerCpuSeconds: round(after.tmux - before.tmux, 2), benchProcessCpuSeconds: round(after.self - before.self, 2) });
  };
  try {
    // One session; exactly one client attached at a time, both at 120x40.
    const creator = await createSettledTab(pool, host, { cols: 120, rows: 40 });
    const id = creator.session.id;
    creator.session.detach();
    tmuxPid = Number(host.tmux(`display-message -p -t '=tether_${id}' '#{pid}'`).trim());
    try {
      for (let trial = 0; trial < trials; trial++) {
        // Alternate who goes first so warm-up favours neither.
        const order = trial % 2 === 0 ? ['tether', 'openssh'] : ['openssh', 'tether'];
        for (const who of order) {
          const { typed, marker } = markerCommand('TPUT_DONE');
          if (who === 'tether') {
            const tab = await attachTether(pool, host, id);
            const units = tab.watch.units;
            const events = tab.watch.chunks;
            const profile = options.profile && trial === 0 ? startProfile() : undefined;
            const before = sample();
            const ms = await timeCommand(tab.watch, (t) => tab.session.write(t), produce(typed), marker, 300_000);
            noteCpu('tether', ms, before);
            if (profile) profileTop = await profile.stop('throughput-tether');
            tetherSeconds.push(ms / 1000);
            tetherDeliveredChars += tab.watch.units - units;
            tetherDataEvents += tab.watch.chunks - events;
            await tab.watch.settle(200);
            tab.session.detach();
          } else {
            const ssh = openSshAttach(host, id);
            try {
              await ssh.watch.settle(400);
              const units = ssh.watch.units;
              const before = sample();
              const ms = await timeCommand(ssh.watch, ssh.write, produce(typed), marker, 300_000);
              noteCpu('openssh', ms, before);
              opensshSeconds.push(ms / 1000);
              opensshDeliveredBytes += ssh.watch.units - units;
              await ssh.watch.settle(200);
            } finally {
              await ssh.close();
            }
          }
          options.log(`  throughput trial ${trial + 1}/${trials} ${who}: ${(who === 'tether' ? tetherSeconds : opensshSeconds).slice(-1)[0].toFixed(2)} s`);
        }
      }
      // The proposed OutputBatcher fix (flush at setImmediate), one run, for comparison only.
      const { typed, marker } = markerCommand('TPUT_DONE');
      const tab = await attachTether(pool, host, id);
      useImmediateFlush(true);
      try {
        immediateFlushSeconds = (await timeCommand(tab.watch, (t) => tab.session.write(t), produce(typed), marker, 300_000)) / 1000;
      } finally {
        useImmediateFlush(false);
      }
      options.log(`  throughput tether with setImmediate flush: ${immediateFlushSeconds.toFixed(2)} s`);
      await tab.watch.settle(200);
      await tab.session.kill();
    } finally {
      host.tmux(`kill-session -t '=tether_${id}'`);
    }
  } finally {
    pool.dispose();
  }
  const tetherMBps = bytes / 1e6 / median(tetherSeconds);
  const opensshMBps = bytes / 1e6 / median(opensshSeconds);
  return {
    bytes,
    trials,
    tetherSeconds: tetherSeconds.map((s) => round(s)),
    opensshSeconds: opensshSeconds.map((s) => round(s)),
    tetherMBps: round(tetherMBps, 1),
    opensshMBps: round(opensshMBps, 1),
    ratio: round(tetherMBps / opensshMBps),
    tetherDeliveredChars: Math.round(tetherDeliveredChars / trials),
    opensshDeliveredBytes: Math.round(opensshDeliveredBytes / trials),
    tetherDataEvents: Math.round(tetherDataEvents / trials),
    profileTop,
    immediateFlushSeconds: immediateFlushSeconds === undefined ? undefined : round(immediateFlushSeconds),
    cpu,
  };
}

/** Tether's byte path without tmux in the way: a plain-shell tab (AttachDriver + OutputBatcher on an ssh2 shell channel). */
export async function rawThroughput(host: BenchHost, options: TerminalOptions): Promise<NonNullable<ThroughputResult['raw']>> {
  const bytes = 200_000_000;
  const trials = options.quick ? 1 : 3;
  const line = 'the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopq';
  const produce = (typed: string): string => `yes '${line}' | head -c ${bytes}; ${typed}\r`;
  const pool = benchPool();
  const tetherSeconds: number[] = [];
  const opensshSeconds: number[] = [];
  let immediateFlushSeconds = NaN;
  let profileTop: string[] | undefined;
  try {
    const tab = openTetherTab(pool, host, { mode: 'create', preference: 'none', size: { cols: 120, rows: 40 } });
    await waitAttached(tab);
    await tab.watch.settle(300);
    const ssh = openSshAttach(host, '', { cols: 120, rows: 40 }, [], 'exec bash -l');
    await ssh.watch.settle(400);
    try {
      for (let trial = 0; trial < trials; trial++) {
        for (const who of trial % 2 === 0 ? ['tether', 'openssh'] : ['openssh', 'tether']) {
          const { typed, marker } = markerCommand('RAW_DONE');
          if (who === 'tether') {
            const profile = options.profile && trial === 0 ? startProfile() : undefined;
            tetherSeconds.push((await timeCommand(tab.watch, (t) => tab.session.write(t), produce(typed), marker, 120_000)) / 1000);
            if (profile) profileTop = await profile.stop('raw-throughput-tether');
            await tab.watch.settle(100);
          } else {
            opensshSeconds.push((await timeCommand(ssh.watch, ssh.write, produce(typed), marker, 120_000)) / 1000);
            await ssh.watch.settle(100);
          }
        }
      }
      const { typed, marker } = markerCommand('RAW_DONE');
      useImmediateFlush(true);
      try {
        immediateFlushSeconds = (await timeCommand(tab.watch, (t) => tab.session.write(t), produce(typed), marker, 120_000)) / 1000;
      } finally {
        useImmediateFlush(false);
      }
    } finally {
      await ssh.close();
      tab.session.dispose();
    }
  } finally {
    pool.dispose();
  }
  const tetherMBps = bytes / 1e6 / median(tetherSeconds);
  const opensshMBps = bytes / 1e6 / median(opensshSeconds);
  options.log(`  raw (no tmux): tether ${tetherMBps.toFixed(0)} MB/s, openssh ${opensshMBps.toFixed(0)} MB/s, setImmediate flush ${(bytes / 1e6 / immediateFlushSeconds).toFixed(0)} MB/s`);
  return {
    bytes,
    tetherSeconds: tetherSeconds.map((x) => round(x)),
    opensshSeconds: opensshSeconds.map((x) => round(x)),
    tetherMBps: round(tetherMBps, 1),
    opensshMBps: round(opensshMBps, 1),
    ratio: round(tetherMBps / opensshMBps),
    immediateFlushSeconds: round(immediateFlushSeconds),
    profileTop,
  };
}

// ---- keystroke echo -----------------------------------------------------------------------------

async function echoLoop(count: number, write: (text: string) => void, watch: TetherTab['watch']): Promise<number[]> {
  const samples: number[] = [];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < count; i++) {
    if (i > 0 && i % 50 === 0) {
      // Ctrl-U: the line discipline erases the line, so it never wraps; not timed.
      write('\x15');
      await watch.settle(15);
    }
    const key = letters[i % 26];
    const seen = watch.waitFor(key, 5000);
    const start = performance.now();
    write(key);
    samples.push((await seen) - start);
  }
  return samples;
}

export async function keystrokeEcho(host: BenchHost, options: TerminalOptions): Promise<EchoResult> {
  const keystrokes = options.quick ? 400 : 2000;
  const rounds = 2;
  const pool = benchPool();
  try {
    const creator = await createSettledTab(pool, host);
    const id = creator.session.id;
    creator.session.write('clear; cat\r');
    await creator.watch.settle(300);
    creator.session.detach();
    const tether: number[] = [];
    const openssh: number[] = [];
    let immediate: number[] = [];
    try {
      // One client at a time, both 120x40; rounds alternate so neither gets a quieter machine.
      for (let r = 0; r < rounds; r++) {
        const tab = await attachTether(pool, host, id);
        await echoLoop(50, (t) => tab.session.write(t), tab.watch);
        tether.push(...(await echoLoop(keystrokes / rounds, (t) => tab.session.write(t), tab.watch)));
        if (r === 0) {
          // The proposed OutputBatcher fix (flush at setImmediate), patched in for comparison only.
          useImmediateFlush(true);
          try {
            immediate = await echoLoop(keystrokes / rounds, (t) => tab.session.write(t), tab.watch);
          } finally {
            useImmediateFlush(false);
          }
        }
        tab.session.detach();
        options.log(`  echo tether round ${r + 1}: p50 ${median(tether).toFixed(3)} ms`);
        const ssh = openSshAttach(host, id);
        try {
          await ssh.watch.settle(400);
          await echoLoop(50, ssh.write, ssh.watch);
          openssh.push(...(await echoLoop(keystrokes / rounds, ssh.write, ssh.watch)));
        } finally {
          await ssh.close();
        }
        options.log(`  echo openssh round ${r + 1}: p50 ${median(openssh).toFixed(3)} ms`);
      }
    } finally {
      host.tmux(`kill-session -t '=tether_${id}'`);
    }
    options.log(`  echo tether with setImmediate flush: p50 ${median(immediate).toFixed(3)} ms`);
    const t = summarize(tether);
    const o = summarize(openssh);
    return {
      keystrokes,
      tether: t,
      openssh: o,
      p50DeltaMs: round(t.p50 - o.p50),
      p99DeltaMs: round(t.p99 - o.p99),
      variants: { 'tether, OutputBatcher flush at setImmediate (proposed)': summarize(immediate) },
    };
  } finally {
    pool.dispose();
  }
}

// ---- reconnect ----------------------------------------------------------------------------------

export async function reconnect(host: BenchHost, options: TerminalOptions): Promise<ReconnectResult> {
  const trials = options.quick ? 5 : 15;
  installInstrumentation();
  const proxy = await TcpProxy.start(host.port, { delayedEnd: true });
  const pool = benchPool();
  const live: number[] = [];
  const attachedState: number[] = [];
  const openssh: number[] = [];
  let counts: Counts | undefined;
  let timeline: string[] = [];
  let timelineNoDelay: string[] = [];
  const noDelayLive: number[] = [];
  try {
    const tab = openTetherTab(pool, host, { mode: 'create', port: proxy.port, reconnect: { baseDelayMs: 500, maxDelayMs: 5000, jitter: 0.5 } });
    await waitAttached(tab);
    await tab.watch.settle(300);
    const { typed, marker } = markerCommand('LIVE');
    tab.session.write(`clear; ${typed}\r`);
    await tab.watch.waitFor(marker, 10_000);
    await tab.watch.settle(200);
    const cutAndWait = async (record: boolean): Promise<{ live: number; attached: number; timeline: string[] }> => {
      tab.stateAt.delete('attached');
      const seen = tab.watch.waitFor(marker, 30_000);
      if (record) startTimeline();
      const closedAt: number[] = [];
      const onState = (state: string): void => void (state === 'reconnecting' && closedAt.push(performance.now()));
      tab.session.on('state', onState);
      const start = performance.now();
      proxy.cut();
      const end = await seen;
      tab.session.off('state', onState);
      await waitUntil(() => tab.stateAt.has('attached'), 10_000, 'attached state');
      let lines: string[] = [];
      if (record) {
        lines = takeTimeline(start);
        if (closedAt[0]) lines.push(`${(closedAt[0] - start).toFixed(1).padStart(7)} ms session state: reconnecting`);
        lines.push(`${(tab.stateAt.get('attached')! - start).toFixed(1).padStart(7)} ms session state: attached`);
        lines.push(`${(end - start).toFixed(1).padStart(7)} ms marker redrawn ('data' event): live`);
        lines.sort((a, b) => parseFloat(a) - parseFloat(b));
      }
      await tab.watch.settle(150);
      return { live: end - start, attached: tab.stateAt.get('attached')! - start, timeline: lines };
    };
    try {
      for (let trial = 0; trial < trials; trial++) {
        takeCounts();
        const shipped = await cutAndWait(trial === 0);
        live.push(shipped.live);
        attachedState.push(shipped.attached);
        const c = takeCounts();
        if (trial === 0) {
          counts = c;
          timeline = shipped.timeline;
        }
        // The same, with the proposed TCP_NODELAY fix patched in (applies to the next connect).
        useNoDelay(true);
        try {
          const fixed = await cutAndWait(trial === 0);
          noDelayLive.push(fixed.live);
          if (trial === 0) timelineNoDelay = fixed.timeline;
        } finally {
          useNoDelay(false);
        }
        // Put the shipped (Nagle) connection back for the next trial.
        await cutAndWait(false);

        // Baseline: a fresh OpenSSH connection (through the same proxy) plus tmux attach, until the same marker is drawn.
        const ssh: OpenSshTab = openSshAttach(host, tab.session.id, { cols: 120, rows: 40 }, [], undefined, proxy.port);
        try {
          const drawn = await ssh.watch.waitFor(marker, 30_000);
          openssh.push(drawn - ssh.spawnedAt);
        } finally {
          await ssh.close();
        }
        await tab.watch.settle(150);
      }
    } finally {
      await tab.session.kill();
    }
  } finally {
    pool.dispose();
    await proxy.close();
  }
  const t = summarize(live);
  const o = summarize(openssh);
  options.log(`  reconnect: tether p50 ${t.p50.toFixed(1)} ms, with TCP_NODELAY ${median(noDelayLive).toFixed(1)} ms, openssh p50 ${o.p50.toFixed(1)} ms`);
  return { trials, tetherLive: t, tetherAttachedState: summarize(attachedState), openssh: o, deltaP50Ms: round(t.p50 - o.p50), counts: counts!, timeline, tetherNoDelayLive: summarize(noDelayLive), timelineNoDelay };
}

// ---- restore ------------------------------------------------------------------------------------

export async function restore(hosts: [BenchHost, BenchHost], options: TerminalOptions): Promise<RestoreResult> {
  const tabsPerHost = 10;
  const historyLines = 2000;
  const lastLine = `history line ${String(historyLines).padStart(5, '0')}`;
  installInstrumentation();
  // Set-up: 20 sessions with 2,000 lines of history each, then every client detaches.
  const setupPool = benchPool();
  const ids: { host: BenchHost; id: string; tmuxVersion?: string }[] = [];
  const created: TetherTab[] = [];
  try {
    for (const host of hosts) {
      for (let i = 0; i < tabsPerHost; i++) created.push(await createSettledTab(setupPool, host, { cols: 120, rows: 40 }));
    }
    // One at a time: 20 sessions printing at once on 2 cores only makes the set-up slower.
    for (const tab of created) {
      const done = tab.watch.waitFor(lastLine, 60_000).catch((error: Error) => {
        throw new Error(`${error.message} (set-up of ${tab.session.name}, state ${tab.session.state})`);
      });
      tab.session.write(`clear; seq -f 'history line %05g abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ' ${historyLines}\r`);
      await done;
    }
    await created[created.length - 1].watch.settle(200);
    // With the tmux version, as the tab snapshot records it.
    created.forEach((tab, index) => ids.push({ host: hosts[index < tabsPerHost ? 0 : 1], id: tab.session.id, tmuxVersion: tab.session.tmuxVersion }));
  } finally {
    await cleanupTabs(created);
    setupPool.dispose();
  }
  await sleep(300);

  let result: RestoreResult | undefined;
  try {
    // Tether: a fresh pool (as after an editor restart) and every tab attaching at once, like TabManager.restore.
    takeCounts();
    const pool = benchPool();
    const start = performance.now();
    const tabs = ids.map(({ host, id, tmuxVersion }) => {
      const tab = openTetherTab(pool, host, { mode: 'attach', id, multiplexer: 'tmux', tmuxVersion, replayLines: historyLines, size: { cols: 120, rows: 40 } });
      return tab;
    });
    const liveAt: number[] = [];
    let attachedAtEach: number[] = [];
    await Promise.all(
      tabs.map(async (tab) => {
        await waitAttached(tab, 60_000);
        // Live: attached and the screen drawn. Attach mode draws after the channel opens; control
        // mode writes its state sync before it reports attached. Either way: the last output
        // before 150 ms of quiet, and never before 'attached'.
        await waitUntil(() => tab.watch.units > 0, 30_000, 'screen drawn', 1);
        await tab.watch.settle(150, 30_000);
        liveAt.push(Math.max(tab.watch.lastAt, tab.stateAt.get('attached')!));
      }),
    );
    attachedAtEach = tabs.map((t) => round(t.stateAt.get('attached')! - start, 0)).sort((a, b) => a - b);
    const total = Math.max(...liveAt) - start;
    const allAttached = Math.max(...tabs.map((t) => t.stateAt.get('attached')!)) - start;
    const counts = takeCounts();
    const replayed = tabs.every((t) => t.watch.units > 2000 * 60);
    if (!replayed) options.log('  warning: not every restored tab received its history replay');
    await cleanupTabs(tabs);
    pool.dispose();
    options.log(`  restore: tether ${total.toFixed(0)} ms for ${tabs.length} tabs, ${counts.connects} SSH connections`);

    // Baseline: 20 sequential OpenSSH connect + attach, each until the last history line is drawn.
    await sleep(300);
    const baseStart = performance.now();
    for (const { host, id } of ids) {
      const ssh = openSshAttach(host, id);
      try {
        await ssh.watch.waitFor(lastLine, 30_000);
      } finally {
        await ssh.close();
      }
    }
    const baseline = performance.now() - baseStart;
    options.log(`  restore: openssh ${baseline.toFixed(0)} ms for 20 sequential attaches`);
    result = {
      tabs: ids.length,
      hosts: hosts.length,
      historyLines,
      tetherTotalMs: round(total, 1),
      tetherAllAttachedMs: round(allAttached, 1),
      opensshSequentialMs: round(baseline, 1),
      connectsPerHost: counts.connects / hosts.length,
      counts,
      attachedAtEach,
    };
  } finally {
    for (const host of hosts) host.killTmuxServer();
  }
  return result;
}

// ---- counting pass ------------------------------------------------------------------------------

export interface OperationCounts {
  sshConnects: number;
  execChannels: number;
  execByKind: Record<string, number>;
  tmuxInvocations: number;
  tmuxCommands: string[];
}

/** One of each operation against a host whose tmux is wrapped by a logger; not timed. */
export async function countOperations(host: BenchHost, log: (line: string) => void): Promise<Record<string, OperationCounts>> {
  installInstrumentation();
  const proxy = await TcpProxy.start(host.port, { delayedEnd: true });
  const result: Record<string, OperationCounts> = {};
  const take = (name: string): void => {
    const c = takeCounts();
    const calls = host.takeTmuxCalls();
    result[name] = { sshConnects: c.connects, execChannels: c.execTotal, execByKind: c.exec, tmuxInvocations: calls.length, tmuxCommands: calls.map((l) => l.split(' ').slice(0, 3).join(' ')) };
  };
  try {
    takeCounts();
    host.takeTmuxCalls();
    // New tab, first on the host (connect + detect).
    let pool = benchPool();
    const first = openTetherTab(pool, host, { mode: 'create', port: proxy.port });
    await waitAttached(first);
    await first.watch.settle(300);
    take('new tab (first on host)');
    const second = openTetherTab(pool, host, { mode: 'create', port: proxy.port });
    await waitAttached(second);
    await second.watch.settle(300);
    take('new tab (host already connected)');
    // Reconnect: cut the connection under both tabs.
    proxy.cut();
    await sleep(100);
    await waitUntil(() => first.session.state === 'attached' && second.session.state === 'attached', 20_000, 'both re-attached');
    await first.watch.settle(300);
    take('reconnect (2 tabs, 1 host)');
    const ids = [first.session.id, second.session.id];
    first.session.dispose();
    second.session.dispose();
    pool.dispose();
    await sleep(200);
    takeCounts();
    host.takeTmuxCalls();
    // Restore: two tabs from a snapshot, with replay.
    pool = benchPool();
    const restored = ids.map((id) => openTetherTab(pool, host, { mode: 'attach', id, multiplexer: 'tmux', replayLines: 2000, port: proxy.port }));
    for (const tab of restored) await waitAttached(tab);
    await restored[0].watch.settle(300);
    take('restore (2 tabs, 1 host)');
    for (const tab of restored) await tab.session.kill();
    take('kill (per 2 tabs)');
    pool.dispose();
  } finally {
    await proxy.close();
    host.killTmuxServer();
  }
  log(`  counts: ${JSON.stringify(Object.fromEntries(Object.entries(result).map(([k, v]) => [k, `${v.sshConnects} conn, ${v.execChannels} exec, ${v.tmuxInvocations} tmux`])))}`);
  return result;
}


// ---- channels per connection ---------------------------------------------------------------------

export interface SessionLimitResult {
  tabsOpened: number;
  attached: number;
  failed: number;
  failure?: string;
}

/**
 * Not a timing: how many tabs one host takes when its sshd keeps OpenSSH's default MaxSessions (10
 * sessions per connection). Tether puts every tab of a host, and every probe, on one connection.
 */
export async function sessionLimit(host: BenchHost, tabsOpened = 12): Promise<SessionLimitResult> {
  const pool = benchPool();
  const tabs: TetherTab[] = [];
  try {
    for (let i = 0; i < tabsOpened; i++) {
      const tab = openTetherTab(pool, host, { mode: 'create' });
      tabs.push(tab);
      await waitUntil(() => tab.session.state === 'attached' || tab.session.state === 'ended', 20_000, 'tab settled', 10).catch(() => undefined);
    }
    await sleep(300);
    const failedTab = tabs.find((tab) => tab.session.state !== 'attached');
    const failure = failedTab ? ((failedTab.watch as unknown as { tail: string }).tail.match(/\[tether\] ([^\x1b]*)/)?.[1] ?? failedTab.session.state) : undefined;
    return { tabsOpened, attached: tabs.filter((tab) => tab.session.state === 'attached').length, failed: tabs.filter((tab) => tab.session.state !== 'attached').length, failure };
  } finally {
    await cleanupTabs(tabs);
    pool.dispose();
    host.killTmuxServer();
  }
}

export { setTmuxMode };
