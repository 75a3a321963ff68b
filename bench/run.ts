/**
 * `npm run bench [-- --quick] [-- --only=throughput,echo,…] [-- --profile] [-- --rtt=100]`
 * (`--rtt=N[,M…]` runs the round-trip group alone at those RTTs in ms; without it, the rtt group
 * runs at 0, 50, 100 and 200 ms as part of the whole suite.)
 *
 * Runs the benchmark suite, prints a table and writes bench/results.json (git-ignored). Each figure
 * is compared with a baseline measured in the same run on the same loopback sshd (see
 * docs/benchmarks.md). Needs root: it starts throwaway sshd instances with their own test users.
 * Benchmarks are not tests: nothing in `npm test` runs them.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { BenchHost } from './lib/hosts';
import { fmt, machineInfo, median, table } from './lib/util';

const ALL = ['throughput', 'echo', 'reconnect', 'restore', 'counts', 'rtt', 'maxsessions', 'crossdevice', 'sshsync', 'sse', 'scale', 'activation', 'vsix'] as const;
type Name = (typeof ALL)[number];

function parseArgs(argv: string[]): { quick: boolean; profile: boolean; only: Set<Name>; modes: ('control' | 'attach')[]; rtts: number[] } {
  const quick = argv.includes('--quick');
  const profile = argv.includes('--profile');
  const onlyArg = argv.find((a) => a.startsWith('--only='));
  const rttArg = argv.find((a) => a.startsWith('--rtt='));
  const rtts = rttArg ? rttArg.slice('--rtt='.length).split(',').map(Number) : [0, 50, 100, 200];
  if (rtts.some((rtt) => !Number.isFinite(rtt) || rtt < 0 || rtt > 2000)) throw new Error(`--rtt takes round-trip times in ms (0 to 2000), e.g. --rtt=100`);
  // --rtt=N alone runs just the round-trip group.
  const only = new Set<Name>(onlyArg ? (onlyArg.slice('--only='.length).split(',') as Name[]) : rttArg ? ['rtt'] : ALL);
  for (const name of only) if (!ALL.includes(name)) throw new Error(`unknown benchmark ${name}; known: ${ALL.join(', ')}`);
  if (argv.includes('--help')) {
    console.log(`usage: npm run bench -- [--quick] [--profile] [--only=${ALL.join(',')}] [--modes=control,attach] [--rtt=0,50,100,200]`);
    process.exit(0);
  }
  const modeArg = argv.find((a) => a.startsWith('--modes='));
  const modes = (modeArg ? modeArg.slice('--modes='.length).split(',') : ['control', 'attach']) as ('control' | 'attach')[];
  return { quick, profile, only, modes, rtts };
}

type Row = [benchmark: string, tether: string, baseline: string, figure: string, target: string, verdict: string];

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the benchmarks start throwaway sshd hosts and test users: run them as root');
  const log = (line: string): void => console.error(line);
  const machine = machineInfo();
  log(`machine: ${JSON.stringify(machine)}`);
  const git = (args: string[]): string => {
    try {
      return execFileSync('git', args, { cwd: join(__dirname, '..'), encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  // Other people edit src/ in the same tree: record which code was measured.
  const source = { commit: git(['rev-parse', 'HEAD']), uncommittedSrcFiles: git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean) };
  const results: Record<string, unknown> = { machine, source, quick: args.quick, modes: args.modes };
  const rows: Row[] = [];
  const started = performance.now();
  const ok = (pass: boolean): string => (pass ? 'meets' : 'MISSES');
  const hosts: BenchHost[] = [];
  const run = async (name: Name, body: () => Promise<void>, resultKey: string = name): Promise<void> => {
    if (!args.only.has(name)) return;
    const t0 = performance.now();
    const loadBefore = loadavg()[0];
    log(`== ${resultKey} (load average ${loadBefore.toFixed(2)})`);
    try {
      await body();
      const entry = results[resultKey];
      if (entry && typeof entry === 'object') Object.assign(entry, { loadAverage1m: { before: loadBefore, after: loadavg()[0] } });
    } catch (error) {
      log(`!! ${resultKey} failed: ${(error as Error).stack ?? String(error)}`);
      results[resultKey] = { error: (error as Error).message };
      rows.push([resultKey, 'failed', '', (error as Error).message.slice(0, 60), '', 'ERROR']);
    }
    log(`   (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  };

  try {
    const needsHosts = ['throughput', 'echo', 'reconnect', 'restore', 'counts', 'rtt', 'maxsessions'].some((n) => args.only.has(n as Name));
    if (needsHosts) {
      // MaxSessions 100: with OpenSSH's default of 10, a host cannot take 10 tabs plus their probes
      // on Tether's one connection (see the maxsessions check and docs/benchmarks.md).
      hosts.push(await BenchHost.start('tbench1', { maxSessions: 100 }), await BenchHost.start('tbench2', { maxSessions: 100 }));
      for (const host of hosts) host.killTmuxServer();
    }
    const terminal = needsHosts ? (require('./terminal') as typeof import('./terminal')) : undefined;
    const topts = { quick: args.quick, profile: args.profile, log };

    let countHost: BenchHost | undefined;
    // The terminal benchmarks run twice: tmux control mode (the shipped default, tether.tmux.mode)
    // and plain tmux attach (tmux older than 3.2, or the setting).
    for (const mode of args.modes) {
      terminal?.setTmuxMode(mode);
      const key = (name: string): string => (mode === 'control' ? name : `${name}_attach`);
      const label = `[${mode}] `;
      const runMode = (name: Name, body: () => Promise<void>): Promise<void> => run(name, body, key(name));
      await runMode('throughput', async () => {
        const r = await terminal!.throughput(hosts[0], topts);
        if (mode === 'control') r.raw = await terminal!.rawThroughput(hosts[0], topts);
        results[key('throughput')] = r;
        rows.push([`${label}Output throughput (${r.bytes / 1e6} MB via tmux)`, `${fmt(r.tetherMBps, 1)} MB/s`, `${fmt(r.opensshMBps, 1)} MB/s`, `${fmt(r.ratio, 3)}x`, '>= 0.95x', ok(r.ratio >= 0.95)]);
        if (r.raw) rows.push([`  same bytes without tmux (${r.raw.bytes / 1e6} MB, plain shell)`, `${fmt(r.raw.tetherMBps, 1)} MB/s`, `${fmt(r.raw.opensshMBps, 1)} MB/s`, `${fmt(r.raw.ratio, 3)}x`, '(diagnostic)', '']);
      });
      await runMode('echo', async () => {
        const r = await terminal!.keystrokeEcho(hosts[0], topts);
        results[key('echo')] = r;
        rows.push([`${label}Keystroke echo p50 (${r.keystrokes} keys, cat in tmux)`, `${fmt(r.tether.p50, 3)} ms`, `${fmt(r.openssh.p50, 3)} ms`, `${r.p50DeltaMs >= 0 ? '+' : ''}${fmt(r.p50DeltaMs, 3)} ms`, '<= +0.2 ms', ok(r.p50DeltaMs <= 0.2)]);
        rows.push([`${label}Keystroke echo p99`, `${fmt(r.tether.p99, 3)} ms`, `${fmt(r.openssh.p99, 3)} ms`, `${r.p99DeltaMs >= 0 ? '+' : ''}${fmt(r.p99DeltaMs, 3)} ms`, '(report)', '']);
      });
      await runMode('reconnect', async () => {
        const r = await terminal!.reconnect(hosts[0], topts);
        results[key('reconnect')] = r;
        rows.push([`${label}Reconnect, cut to live (p50 of ${r.trials})`, `${fmt(r.tetherLive.p50, 1)} ms`, `${fmt(r.openssh.p50, 1)} ms`, `${r.deltaP50Ms >= 0 ? '+' : ''}${fmt(r.deltaP50Ms, 1)} ms`, '<= 1 s p50', ok(r.tetherLive.p50 <= 1000)]);
      });
      await runMode('restore', async () => {
        const r = await terminal!.restore([hosts[0], hosts[1]], topts);
        results[key('restore')] = r;
        rows.push([`${label}Restore ${r.tabs} tabs / ${r.hosts} hosts, ${r.historyLines} lines each`, `${fmt(r.tetherTotalMs, 0)} ms`, `${fmt(r.opensshSequentialMs, 0)} ms`, `${fmt(r.tetherTotalMs / r.opensshSequentialMs, 2)}x, ${r.connectsPerHost} conn/host`, '<= 2 s, 1 conn/host', ok(r.tetherTotalMs <= 2000 && r.connectsPerHost === 1)]);
      });
      await runMode('rtt', async () => {
        const { atRtt } = require('./rtt') as typeof import('./rtt');
        const all: Record<string, unknown> = {};
        results[key('rtt')] = all;
        for (const rttMs of args.rtts) {
          log(`  -- RTT ${rttMs} ms (load average ${loadavg()[0].toFixed(2)})`);
          const r = await atRtt([hosts[0], hosts[1]], rttMs, { quick: args.quick, log });
          all[`${rttMs}ms`] = { ...r, loadAverage1m: loadavg()[0] };
          const at = `${label}RTT ${rttMs} ms: `;
          const goal = rttMs === 100;
          const verdict = (pass: boolean): string => (goal ? ok(pass) : '(report)');
          rows.push([`${at}new tab, command visible (p50, ${r.newTab.execs} exec)`, `${fmt(r.newTab.tether.p50, 0)} ms`, `${fmt(r.newTab.openssh.p50, 0)} ms ssh -tt new-session`, `${fmt(r.newTab.ratio, 2)}x`, '<= 1.0x at 100 ms', verdict(r.newTab.ratio <= 1.0)]);
          rows.push([`${at}reconnect, cut to live (p50, ${r.reconnect.execs} exec)`, `${fmt(r.reconnect.tether.p50, 0)} ms`, `${fmt(r.reconnect.openssh.p50, 0)} ms fresh ssh attach`, `${fmt(r.reconnect.ratio, 2)}x`, '<= 1.0x at 100 ms', verdict(r.reconnect.ratio <= 1.0)]);
          rows.push([`${at}restore ${r.restore.tabs} tabs / ${r.restore.hosts} hosts (${r.restore.execs} exec, ${r.restore.connects} conn)`, `${fmt(r.restore.tetherMs, 0)} ms`, `${fmt(r.restore.opensshSequentialMs, 0)} ms 20 seq / ${fmt(r.restore.opensshOneMs, 0)} ms one`, `${fmt(r.restore.ratioToOne, 2)}x one`, '<= 1.5x one at 100 ms', verdict(r.restore.ratioToOne <= 1.5)]);
          rows.push([`${at}join from a 2nd device (p50, ${r.join.execs} exec)`, `${fmt(r.join.tether.p50, 0)} ms`, `${fmt(r.join.openssh.p50, 0)} ms ssh attach`, `${fmt(r.join.ratio, 2)}x`, '(report)', '']);
          rows.push([`${at}keystroke echo p50`, `${fmt(r.echo.tether.p50, 2)} ms`, `${fmt(r.echo.openssh.p50, 2)} ms`, `${r.echo.p50DeltaMs >= 0 ? '+' : ''}${fmt(r.echo.p50DeltaMs, 2)} ms`, '<= +1 ms at 100 ms', verdict(r.echo.p50DeltaMs <= 1)]);
        }
      });
      await runMode('counts', async () => {
        countHost ??= await BenchHost.start('tbenchc', { countTmux: true, maxSessions: 100 });
        if (!hosts.includes(countHost)) hosts.push(countHost);
        results[key('counts')] = await terminal!.countOperations(countHost, log);
      });
    }
    // Issue 17: a program that floods a control-mode tab runs about as fast as in attach mode.
    const controlRun = results.throughput as { tetherSeconds?: number[]; bytes?: number } | undefined;
    const attachRun = results.throughput_attach as { tetherSeconds?: number[] } | undefined;
    if (controlRun?.tetherSeconds?.length && attachRun?.tetherSeconds?.length) {
      const controlSeconds = median(controlRun.tetherSeconds);
      const attachSeconds = median(attachRun.tetherSeconds);
      const ratio = controlSeconds / attachSeconds;
      results.controlVsAttach = { controlSeconds, attachSeconds, ratio };
      rows.push([`yes | head -c ${controlRun.bytes}: run time, control / attach mode`, `${fmt(controlSeconds, 2)} s`, `${fmt(attachSeconds, 2)} s attach`, `${fmt(ratio, 3)}x`, '<= 1.1x', ok(ratio <= 1.1)]);
    }
    await run('maxsessions', async () => {
      const defaultsHost = await BenchHost.start('tbenchm');
      hosts.push(defaultsHost);
      const r = await terminal!.sessionLimit(defaultsHost);
      results.maxsessions = r;
      log(`  sshd defaults: ${r.attached} of ${r.tabsOpened} tabs attached${r.failure ? `; first failure: ${r.failure}` : ''}`);
      rows.push([`Tabs on one host, sshd defaults (MaxSessions 10)`, `${r.attached} of ${r.tabsOpened} attach`, '—', r.failure ? r.failure.slice(0, 90) : '', 'all (not a target)', r.failed ? 'PROBLEM' : 'ok']);
    });
    await run('crossdevice', async () => {
      const { crossDevice } = require('./sync');
      const r = await crossDevice({ quick: args.quick, log });
      results.crossdevice = r;
      for (const c of r.configs) {
        rows.push([
          c.variant === 'shipped'
            ? `Cross-device latency as shipped, ${c.slots} slots (${c.changes} changes, ${c.spacingMs} ms apart)`
            : `Cross-device latency, transport only (writes at once), ${c.slots} slots (${c.changes} changes)`,
          `p50 ${fmt(c.endToEnd.p50, 1)} / p99 ${fmt(c.endToEnd.p99, 1)} ms`,
          `SSE write p50 ${fmt(c.serverReceiveToStreamWrite.p50, 2)} / p99 ${fmt(c.serverReceiveToStreamWrite.p99, 2)} ms`,
          `+${fmt(c.endToEnd.p50 - c.serverReceiveToStreamWrite.p50, 1)} ms p50`,
          'p50 <= 50, p99 <= 200 ms',
          ok(c.endToEnd.p50 <= 50 && c.endToEnd.p99 <= 200),
        ]);
      }
      if (r.burst) {
        rows.push([
          `Cross-device, bursts of ${r.burst.changesPerBurst} changes at once as shipped (${r.burst.rounds} bursts, 2 slots)`,
          `last change seen p50 ${fmt(r.burst.lastChangeSeen.p50, 1)} / p99 ${fmt(r.burst.lastChangeSeen.p99, 1)} ms`,
          '',
          `writes per burst max ${r.burst.writesPerBurst.max}`,
          '<= 2 writes per burst',
          ok(r.burst.writesPerBurst.max <= 2),
        ]);
      }
      if (r.presence) {
        rows.push([
          `Presence: device quits normally -> offline elsewhere (${r.presence.trials} trials)`,
          `p50 ${fmt(r.presence.quit.p50, 1)} / max ${fmt(r.presence.quit.max, 1)} ms`,
          '', '', '<= 1 s', ok(r.presence.quit.max <= 1000),
        ]);
        rows.push([
          `Presence: device killed (kill -9) -> offline elsewhere (${r.presence.trials} trials)`,
          `p50 ${fmt(r.presence.killed.p50, 1)} / max ${fmt(r.presence.killed.max, 1)} ms`,
          '', '', '<= 35 s', ok(r.presence.killed.max <= 35_000),
        ]);
        rows.push([
          `Presence: device's network vanishes (no FIN; shipped ${r.presence.leaseSeconds} s lease) -> offline elsewhere (${r.presence.networkGone.n} trials)`,
          `p50 ${fmt(r.presence.networkGone.p50 / 1000, 1)} / max ${fmt(r.presence.networkGone.max / 1000, 1)} s`,
          '', '', '<= 35 s', ok(r.presence.networkGone.max <= 35_000),
        ]);
      }
    });
    await run('sshsync', async () => {
      const { sshCrossDevice } = require('./sshSync') as typeof import('./sshSync');
      const r = await sshCrossDevice({ quick: args.quick, log });
      results.sshsync = r;
      for (const run of r.runs) {
        const target = run.watcher === 'sh' ? 300 : 50;
        rows.push([
          `Cross-device latency over SSH, ${run.watcher} watcher, p50 (${run.changes} changes)`,
          `${fmt(run.endToEnd.p50, 1)} ms`,
          `${fmt(r.execRoundTrip.p50, 1)} ms exec`,
          `${fmt(run.endToEnd.p50 / r.execRoundTrip.p50, 1)}x, p99 ${fmt(run.endToEnd.p99, 0)} ms`,
          `<= ${target} ms p50`,
          ok(run.endToEnd.p50 <= target),
        ]);
      }
      if (!r.inotifyAvailable) rows.push(['Cross-device latency over SSH, inotify watcher', 'not run', '—', 'no inotifywait on this host (apt-get install inotify-tools)', '<= 50 ms p50', '']);
    });
    await run('sse', async () => {
      const { sseFanout } = require('./sse');
      const r = await sseFanout({ quick: args.quick, log });
      results.sse = r;
      rows.push([
        `SSE fan-out: ${r.streams} streams, one process`,
        `p99 ${fmt(r.delivery.p99, 1)} ms (p50 ${fmt(r.delivery.p50, 1)})`,
        '—',
        `${fmt(r.bytesPerStream / 1024, 1)} KiB RSS/stream`,
        'p99 <= 100 ms',
        ok(r.delivery.p99 <= 100 && r.streams >= 10_000),
      ]);
    });
    await run('scale', async () => {
      const { scale } = require('./scale') as typeof import('./scale');
      const r = await scale({ quick: args.quick, log });
      results.scale = r;
      const base = r.variants.find((v) => v.name === 'baseline');
      const ours = r.variants.find((v) => v.name === 'tether');
      if (!base || !ours) throw new Error('the scale benchmark ran no variants');
      ours.phases.forEach((p, i) => {
        const b = base.phases[i];
        const many = p.writers > 1;
        rows.push([
          `Scale: 2 instances, one PostgreSQL, ${p.label}, ${r.accounts} accounts x ${r.streamsPerAccount} streams on B (load ${fmt(p.loadAverage1m, 1)})`,
          `${fmt(p.writesPerSecond, 0)} w/s, p50 ${fmt(p.delivery.p50, 1)} / p99 ${fmt(p.delivery.p99, 1)} ms, lost ${p.lost}`,
          `${fmt(b.writesPerSecond, 0)} w/s, p50 ${fmt(b.delivery.p50, 1)} / p99 ${fmt(b.delivery.p99, 1)} ms (${base.commit})`,
          `${fmt(p.writesPerSecond / b.writesPerSecond, 2)}x w/s`,
          many ? '>= 1000 w/s, p99 <= 100 ms, 0 lost' : 'p50 <= baseline, 0 lost',
          many
            ? ok(p.writesPerSecond >= 1000 && p.delivery.p99 <= 100 && p.lost === 0 && p.failedWrites === 0)
            : ok(p.delivery.p50 <= b.delivery.p50 && p.lost === 0 && p.failedWrites === 0),
        ]);
      });
    });
    await run('activation', async () => {
      const { activation } = require('./activation');
      const r = await activation({ quick: args.quick, log });
      results.activation = r;
      rows.push([`Activation (bundled, stub vscode; median of ${r.runs})`, `${fmt(r.totalMs.p50, 1)} ms`, '—', `load ${fmt(r.requireMs.p50, 1)} + activate ${fmt(r.activateMs.p50, 1)} ms`, '<= 30 ms', ok(r.totalMs.p50 <= 30)]);
    });
    await run('vsix', async () => {
      const { vsixSize } = require('./activation');
      const r = await vsixSize(log);
      results.vsix = r;
      rows.push(['.vsix size', `${fmt(r.bytes / 1024, 1)} KiB`, '—', `${r.files} files, extension.js ${fmt(r.extensionJsBytes / 1024, 1)} KiB`, 'report', '']);
    });
  } finally {
    for (const host of hosts) await host.dispose().catch(() => undefined);
  }

  results.elapsedSeconds = Math.round((performance.now() - started) / 1000);
  results.rows = rows;
  const out = join(__dirname, 'results.json');
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(table(['Benchmark', 'Tether', 'Baseline (same run)', 'Figure', 'Target', 'Verdict'], rows));
  console.log(`\n${args.quick ? 'quick run; ' : ''}${results.elapsedSeconds} s; details in ${out}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
