/**
 * Renders bench/results.json as Markdown (the tables in docs/benchmarks.md):
 *   node --require tsx/cjs bench/report.ts [results.json]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WRITE_DEBOUNCE_MS } from '../src/sync/syncClient';

type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const file = process.argv[2] ?? join(__dirname, 'results.json');
const r = JSON.parse(readFileSync(file, 'utf8')) as Any;
const out: string[] = [];
const md = (header: string[], rows: (string | number)[][]): void => {
  out.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`), '');
};
const f = (n: number, d = 1): string => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(d) : String(n));
const load = (x: Any | undefined): string => (x?.loadAverage1m ? `${f(x.loadAverage1m.before, 1)} → ${f(x.loadAverage1m.after, 1)}` : '');

const m = r.machine as Any;
out.push('### Machine', '');
md(['nproc', 'CPU', 'memory', 'kernel', 'node', 'tmux', 'OpenSSH', 'ssh2', 'ulimit -n', 'run at'], [[m.nproc, m.cpuModel, `${m.memoryGiB} GiB`, m.kernel, m.node, m.tmux, m.openssh, m.ssh2, m.fdLimit, m.date]]);

if (r.source) out.push(`Code measured: commit \`${String(r.source.commit).slice(0, 7)}\`${r.source.uncommittedSrcFiles?.length ? ` plus uncommitted changes to ${r.source.uncommittedSrcFiles.length} file(s) under src/` : ', no uncommitted changes under src/'}.`, '');
out.push('### Results', '');
md(['Benchmark', 'Tether', 'Baseline (same run)', 'Figure', 'Target', 'Verdict'], (r.rows as string[][]).map((row) => row.map((c) => c.replace(/\|/g, '\\|'))));

for (const [suffix, modeName] of [['', 'control mode'], ['_attach', 'attach mode']]) {
if (r['throughput' + suffix] && !r['throughput' + suffix].error) {
  const t = r['throughput' + suffix] as Any;
  out.push(`### Throughput details, ${modeName} (load average ${load(t)})`, '');
  md(['run', 'Tether s', 'OpenSSH s'], t.tetherSeconds.map((s: number, i: number) => [i + 1, f(s, 2), f(t.opensshSeconds[i], 2)]));
  out.push(`Delivered per run (tmux redraws, not the 200 MB): Tether ${t.tetherDeliveredChars} chars in ${t.tetherDataEvents} 'data' events, OpenSSH ${t.opensshDeliveredBytes} bytes. With the proposed setImmediate flush: ${f(t.immediateFlushSeconds, 2)} s.`, '');
  md(['client', 'wall s', 'tmux server CPU s', 'bench process CPU s'], (t.cpu as Any[]).map((c) => [c.who, f(c.wallSeconds, 2), f(c.tmuxServerCpuSeconds, 2), f(c.benchProcessCpuSeconds, 2)]));
  if (t.raw) out.push(`Without tmux (${t.raw.bytes / 1e6} MB into a plain shell): Tether ${t.raw.tetherSeconds.join(', ')} s, OpenSSH ${t.raw.opensshSeconds.join(', ')} s; setImmediate flush ${f(t.raw.immediateFlushSeconds, 2)} s.`, '');
}
if (r['echo' + suffix] && !r['echo' + suffix].error) {
  const e = r['echo' + suffix] as Any;
  out.push(`### Keystroke echo details, ${modeName} (load average ${load(e)})`, '');
  const rows: (string | number)[][] = [['Tether (shipped)', ...['p50', 'p99', 'min', 'max'].map((k) => f(e.tether[k], 3))], ['OpenSSH', ...['p50', 'p99', 'min', 'max'].map((k) => f(e.openssh[k], 3))]];
  for (const [name, s] of Object.entries(e.variants ?? {}) as [string, Any][]) rows.push([name, ...['p50', 'p99', 'min', 'max'].map((k) => f(s[k], 3))]);
  md(['client', 'p50 ms', 'p99 ms', 'min ms', 'max ms'], rows);
}
if (r['reconnect' + suffix] && !r['reconnect' + suffix].error) {
  const x = r['reconnect' + suffix] as Any;
  out.push(`### Reconnect details, ${modeName} (load average ${load(x)})`, '');
  md(['', 'p50 ms', 'p99 ms', 'min ms', 'max ms'], [
    ['Tether, cut → live (redraw received)', ...['p50', 'p99', 'min', 'max'].map((k) => f(x.tetherLive[k]))],
    ["Tether, cut → state 'attached'", ...['p50', 'p99', 'min', 'max'].map((k) => f(x.tetherAttachedState[k]))],
    ['Tether + TCP_NODELAY (proposed), cut → live', ...['p50', 'p99', 'min', 'max'].map((k) => f(x.tetherNoDelayLive[k]))],
    ['OpenSSH fresh connect + attach', ...['p50', 'p99', 'min', 'max'].map((k) => f(x.openssh[k]))],
  ]);
  out.push('First trial, as shipped:', '', '```', ...x.timeline, '```', '', 'First trial, TCP_NODELAY patched in:', '', '```', ...x.timelineNoDelay, '```', '');
}
if (r['restore' + suffix] && !r['restore' + suffix].error) {
  const x = r['restore' + suffix] as Any;
  out.push(`### Restore details, ${modeName} (load average ${load(x)})`, '');
  if (x.attachedAtEach) out.push(`Each tab attached at (ms): ${x.attachedAtEach.join(', ')}.`, '');
  out.push(`${x.tabs} tabs on ${x.hosts} hosts, ${x.historyLines} lines each: all live after ${f(x.tetherTotalMs, 0)} ms (all attached at ${f(x.tetherAllAttachedMs, 0)} ms); ${x.counts.connects} SSH connections; exec channels ${JSON.stringify(x.counts.exec)}. OpenSSH, 20 sequential connect + attach: ${f(x.opensshSequentialMs, 0)} ms.`, '');
}
if (r['counts' + suffix] && !r['counts' + suffix].error) {
  out.push(`### Round trips and tmux invocations per operation, ${modeName}`, '');
  md(['operation', 'SSH connects', 'exec channels (round trips)', 'by kind', 'tmux invocations on the host'], Object.entries(r['counts' + suffix] as Record<string, Any>).filter(([k]) => k !== 'loadAverage1m').map(([k, v]) => [k, v.sshConnects, v.execChannels, Object.entries(v.execByKind).map(([a, b]) => `${a} ${b}`).join(', '), `${v.tmuxInvocations} (${[...new Set(v.tmuxCommands as string[])].join('; ')})`]));
}
}
if (r.maxsessions && !r.maxsessions.error) {
  out.push('### Tabs per host with sshd defaults', '', `${r.maxsessions.attached} of ${r.maxsessions.tabsOpened} tabs opened one after another on one host with OpenSSH's default MaxSessions (10) attached; the others ended with: ${r.maxsessions.failure ?? '—'}.`, '');
}
if (r.crossdevice && !r.crossdevice.error) {
  const c = r.crossdevice as Any;
  out.push(`### Cross-device latency details (load average ${load(c)})`, '');
  md(['variant', 'slots', 'changes', 'spacing ms', 'PUTs', 'end to end p50 / p99', 'A: publish → server receive', 'server: receive → last stream write', 'B: stream write → event', 'streams per fan-out'], (c.configs as Any[]).map((x) => [x.variant ?? 'transport', x.slots, x.changes, x.spacingMs ?? 0, x.writes ?? '', `${f(x.endToEnd.p50)} / ${f(x.endToEnd.p99)}`, `${f(x.publishToServerReceive.p50)} / ${f(x.publishToServerReceive.p99)}`, `${f(x.serverReceiveToStreamWrite.p50, 2)} / ${f(x.serverReceiveToStreamWrite.p99, 2)}`, `${f(x.streamWriteToRemoteEvent.p50)} / ${f(x.streamWriteToRemoteEvent.p99)}`, x.streamsPerFanout]));
  out.push(`One fsync'd state save on this disk (writeFileAtomic), for reference (no longer on the send path): p50 ${f(c.stateSaveMs.p50, 2)} ms, p99 ${f(c.stateSaveMs.p99, 2)} ms. Write grouping window as shipped: ${DEFAULT_WRITE_DEBOUNCE_MS} ms.`, '');
  if (c.burst) out.push(`Bursts (${c.burst.rounds} × ${c.burst.changesPerBurst} changes published in one go, shipped defaults): writes per burst p50 ${c.burst.writesPerBurst.p50}, max ${c.burst.writesPerBurst.max}; last change seen on B p50 ${f(c.burst.lastChangeSeen.p50)} ms, p99 ${f(c.burst.lastChangeSeen.p99)} ms.`, '');
  if (c.presence) out.push(`Presence (${c.presence.trials} trials): a device that quits (SyncClient.stop) shows offline on another after p50 ${f(c.presence.quit.p50)} ms (max ${f(c.presence.quit.max)}); a device killed with SIGKILL after p50 ${f(c.presence.killed.p50)} ms (max ${f(c.presence.killed.max)}).`, '');
}
if (r.sse && !r.sse.error) {
  const s = r.sse as Any;
  out.push(`### SSE fan-out details (load average ${load(s)})`, '');
  out.push(`${s.streams} of ${s.requested} streams open (${s.failedToOpen} failed) from ${s.clientProcesses} client processes${s.sourceAddresses ? ` and ${s.sourceAddresses} loopback addresses (per-address caps on: 32 streams, 64 connections)` : ''} in ${f(s.openSeconds)} s. Server RSS ${f(s.rssBeforeBytes / 2 ** 20)} → ${f(s.rssAfterBytes / 2 ** 20)} MiB (${f(s.bytesPerStream / 1024, 2)} KiB per stream); heap ${f(s.heapBeforeBytes / 2 ** 20)} → ${f(s.heapAfterBytes / 2 ** 20)} MiB (${f(s.heapBytesPerStream / 1024, 2)} KiB per stream).`, '');
  md(['write', 'delivery p50 ms', 'p99 ms', 'max ms', 'server receive → last write ms'], (s.perWrite as Any[]).map((w, i) => [i + 1, f(w.p50), f(w.p99), f(w.max), f(w.serverLastWrite)]));
  out.push(`All writes: delivery p50 ${f(s.delivery.p50)} ms, p99 ${f(s.delivery.p99)} ms (n = ${s.delivery.n}, missing ${s.missing}); server receive → first write p50 ${f(s.serverFirstWrite.p50)} ms, → last write p50 ${f(s.serverLastWrite.p50)} ms, max ${f(s.serverLastWrite.max)} ms.`, '');
}
if (r.scale && !r.scale.error) {
  const x = r.scale as Any;
  out.push(`### Scale details: 2 server instances on one PostgreSQL ${x.postgres.version} (${x.accounts} accounts x ${x.streamsPerAccount} streams on B, ${x.blobBytes}-byte blobs)`, '');
  out.push(`PostgreSQL settings: ${Object.entries(x.postgres.settings).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  const rows: (string | number)[][] = [];
  for (const v of x.variants as Any[]) {
    for (const p of v.phases as Any[]) {
      rows.push([`${v.name} (${v.commit})`, p.label, f(p.writesPerSecond, 0), `${f(p.delivery.p50)} / ${f(p.delivery.p99)}`, `${f(p.ack.p50)} / ${f(p.ack.p99)}`, `${p.lost} / ${p.failedWrites} / ${p.orderViolations}`, f(p.perWrite.walSyncs, 3), `${f(p.cpuMsPerWrite.serverA, 2)} / ${f(p.cpuMsPerWrite.serverB, 2)} / ${f(p.cpuMsPerWrite.postgres, 2)} / ${f(p.cpuMsPerWrite.bench, 2)}`, f(p.loadAverage1m)]);
    }
  }
  md(['server', 'writers', 'writes/s', 'delivery p50 / p99 ms', 'ack p50 / p99 ms', 'lost / failed / out of order', 'WAL flushes per write', 'CPU ms per write: A / B / PostgreSQL / bench', 'load 1m'], rows);
}
if (r.activation && !r.activation.error) {
  const a = r.activation as Any;
  out.push(`### Activation details (load average ${load(a)})`, '');
  md(['bundle', 'require p50 ms', 'activate() p50 ms', 'total p50 / p99 ms', 'until idle p50 ms'], [
    [`shipped (${f(a.bundleBytes / 1024)} KiB)`, f(a.requireMs.p50), f(a.activateMs.p50, 2), `${f(a.totalMs.p50)} / ${f(a.totalMs.p99)}`, f(a.settledMs.p50)],
    ['ssh2 not loaded at activation (diagnostic)', f(a.withoutSsh2.requireMs.p50), f(a.withoutSsh2.activateMs.p50, 2), `${f(a.withoutSsh2.totalMs.p50)} / ${f(a.withoutSsh2.totalMs.p99)}`, ''],
  ]);
}
if (r.vsix && !r.vsix.error) {
  out.push('### .vsix contents', '', '```', ...(r.vsix.listing as string[]), '```', '');
}
out.push(`Whole run: ${r.elapsedSeconds} s${r.quick ? ' (--quick)' : ''}.`);
console.log(out.join('\n'));
