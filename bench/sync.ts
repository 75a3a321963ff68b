/**
 * Cross-device latency: slot A changes its manifest (SyncClient.publish) until slot B's
 * onDidChangeRemote fires with that change, over the real sync server on loopback, with 2, 10 and
 * 100 slots on one account (the other slots are live SyncClients in child processes, so every
 * change is fanned out to all of them). Baseline: the server's own part, from receiving the PUT to
 * writing the event to the streams (stamped by bench/sync/serverProbe.cjs).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as readline from 'node:readline';
import type { SessionEntry } from '../src/sync/blob';
import { DEFAULT_WRITE_DEBOUNCE_MS, SyncClient } from '../src/sync/syncClient';
import { writeFileAtomic } from '../src/sync/atomicFile';
import { formatSyncKey, generateSyncKey, parseSyncKey } from '../src/sync/syncKey';
import { newSessionId } from '../src/common/sessionId';
import { ProbedServer } from './sync/server';
import { DEFAULT_STREAM_LEASE_SECONDS } from '../src/sync/httpTransport';
import { TcpProxy } from '../test/support/tcpProxy';
import { sampleSession } from '../test/integration/sync/harness';
import { Summary, sleep, summarize, waitUntil, wallMs } from './lib/util';

export interface CrossDeviceConfig {
  slots: number;
  changes: number;
  /** 'shipped': SyncClient's defaults (write grouping window, batched saves); 'transport': writeDebounceMs 0. */
  variant: 'shipped' | 'transport';
  /** Pause after B has seen a change before the next one. */
  spacingMs: number;
  /** PUTs of slot A the server received during the run. */
  writes: number;
  endToEnd: Summary;
  /** Server: PUT received -> blob event written to the last stream. */
  serverReceiveToStreamWrite: Summary;
  serverReceiveToFirstStreamWrite: Summary;
  /** A: publish() -> the server has the PUT's headers (debounce timer, state fsync, seal, fetch). */
  publishToServerReceive: Summary;
  /** B: last stream write -> onDidChangeRemote (SSE parse, decrypt, validate). */
  streamWriteToRemoteEvent: Summary;
  streamsPerFanout: number;
}

export interface CrossDeviceResult {
  configs: CrossDeviceConfig[];
  /** One SyncClient state save (writeFileAtomic: write, fsync, rename, fsync dir) of ~2 KB, alone. */
  stateSaveMs: Summary;
  production?: { changes: number; writeDebounceMs: number; endToEnd: Summary };
  /** A burst of changes published in one go, shipped defaults, 2 slots. */
  burst?: { rounds: number; changesPerBurst: number; writesPerBurst: Summary; lastChangeSeen: Summary; writeWindowMs: number };
  presence?: PresenceResult;
}

export interface PresenceResult {
  trials: number;
  /** A device stops normally (SyncClient.stop, as on quit): until another device shows it offline. */
  quit: Summary;
  /** A device's process is killed with SIGKILL: until another device shows it offline. */
  killed: Summary;
  /** A device's network vanishes (a frozen proxy: no FIN, no RST): until another device shows it offline. */
  networkGone: Summary;
  leaseSeconds: number;
}

const startedAt = Date.now() - 60_000;
function session(title: string, id: string): SessionEntry {
  return sampleSession({ id, title, startedAt, cwd: '/home/dev/project' });
}

function startPassive(serverUrl: string, syncKey: string, slotIds: string[], stateDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', join(__dirname, 'sync', 'passive.ts'), JSON.stringify({ serverUrl, syncKey, slotIds, stateDir })], {
    cwd: join(__dirname, '..'),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"ready"')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`passive clients exited with ${code}`)));
  });
}

async function stopPassive(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

export async function measure(slots: number, changes: number, writeDebounceMs: number | undefined, spacingMs: number, log: (line: string) => void, burst = 0): Promise<{ e2e: number[]; config?: CrossDeviceConfig; writesPerBurst?: number[] }> {
  const server = await ProbedServer.start(['--heartbeat-ms', '15000']);
  const stateDir = mkdtempSync(join(tmpdir(), 'tether-bench-sync-'));
  const syncKey = formatSyncKey(generateSyncKey());
  const key = parseSyncKey(syncKey);
  const children: ChildProcess[] = [];
  const clients: SyncClient[] = [];
  try {
    // Passive slots in up to two child processes.
    const passiveIds = Array.from({ length: slots - 2 }, () => newSessionId());
    const groups = passiveIds.length > 20 ? [passiveIds.slice(0, passiveIds.length / 2), passiveIds.slice(passiveIds.length / 2)] : passiveIds.length ? [passiveIds] : [];
    for (const group of groups) children.push(await startPassive(server.url, syncKey, group, stateDir));
    const make = (name: string): SyncClient =>
      new SyncClient({ serverUrl: server.url, syncKey: key, slotId: newSessionId(), deviceName: name, stateDir, requestTimeoutMs: 30_000, ...(process.env.TETHER_BENCH_LOG ? { log: { debug: (m: string) => console.error(name, m), info: (m: string) => console.error(name, m), warn: (m: string) => console.error(name, m), error: (m: string) => console.error(name, m) } } : {}), ...(writeDebounceMs === undefined ? {} : { writeDebounceMs }) });
    const a = make('device A');
    const b = make('device B');
    clients.push(a, b);
    const sessionId = newSessionId();
    let wanted = '';
    let seenAt = 0;
    b.onDidChangeRemote((remote) => {
      if (!wanted || seenAt) return;
      const slot = remote.slots.find((s) => s.slotId === a.slotId);
      if (slot?.blob.sessions.some((s) => s.title === wanted)) seenAt = wallMs();
    });
    a.publish([session('start', sessionId)]);
    await Promise.all([a.start(), b.start()]);
    await a.flush();
    await waitUntil(() => a.state.state === 'live' && b.state.state === 'live' && b.getRemoteState().slots.length === slots - 1, 60_000, () =>
      `all slots visible to B (A ${a.state.state}, B ${b.state.state}, B lists ${b.getRemoteState().slots.length} of ${slots - 1})`, 10);
    await sleep(500);
    const e2e: number[] = [];
    const marks: { publishedAt: number; seenAt: number }[] = [];
    if (burst > 0) {
      // `changes` bursts of `burst` changes each, published in one go; time until B has the last one.
      const bursts: { publishedAt: number; seenAt: number }[] = [];
      for (let i = 0; i < changes; i++) {
        seenAt = 0;
        const publishedAt = wallMs();
        for (let j = 0; j < burst; j++) {
          wanted = `burst-${i}-${j}`;
          a.publish([session(wanted, sessionId)]);
        }
        await waitUntil(() => seenAt > 0, 30_000, `burst ${i} at B`, 0);
        e2e.push(seenAt - publishedAt);
        bursts.push({ publishedAt, seenAt });
        await sleep(Math.max(spacingMs, 300)); // let the grouping window pass: the next burst starts quiet
      }
      for (const client of clients) await client.stop();
      clients.length = 0;
      const records = (await server.stop()).filter((r) => r.slotId === a.slotId && r.receivedAt !== undefined);
      const writesPerBurst = bursts.map((b, i) => records.filter((r) => r.receivedAt! >= b.publishedAt && r.receivedAt! < (bursts[i + 1]?.publishedAt ?? Infinity)).length);
      log(`  burst of ${burst} changes x ${changes}: writes per burst max ${Math.max(...writesPerBurst)}, last change seen p50 ${summarize(e2e).p50.toFixed(1)} ms`);
      return { e2e, writesPerBurst };
    }
    for (let i = 0; i < changes; i++) {
      wanted = `change-${i}`;
      seenAt = 0;
      const publishedAt = wallMs();
      a.publish([session(wanted, sessionId)]);
      await waitUntil(() => seenAt > 0, 30_000, `change ${i} at B`, 0);
      e2e.push(seenAt - publishedAt);
      marks.push({ publishedAt, seenAt });
      if (spacingMs) await sleep(spacingMs);
    }
    log(`  ${slots} slots, ${changes} changes${writeDebounceMs === undefined ? ` (as shipped, ${spacingMs} ms apart)` : ''}: p50 ${summarize(e2e).p50.toFixed(1)} ms, p99 ${summarize(e2e).p99.toFixed(1)} ms`);
    for (const client of clients) await client.stop();
    clients.length = 0;
    for (const child of children) await stopPassive(child);
    children.length = 0;
    const records = (await server.stop()).filter((r) => r.slotId === a.slotId && r.receivedAt !== undefined);
    // Match each change with the fan-out the server did for it (the one received inside its window).
    const serverPart: number[] = [];
    const serverFirst: number[] = [];
    const before: number[] = [];
    const after: number[] = [];
    let streams = 0;
    for (const mark of marks) {
      const record = records.find((r) => r.receivedAt! >= mark.publishedAt && r.receivedAt! <= mark.seenAt);
      if (!record) continue;
      serverPart.push(record.lastWrite - record.receivedAt!);
      serverFirst.push(record.firstWrite - record.receivedAt!);
      before.push(record.receivedAt! - mark.publishedAt);
      after.push(mark.seenAt - record.lastWrite);
      streams = Math.max(streams, record.streams);
    }
    return {
      e2e,
      config: {
        slots,
        changes,
        variant: writeDebounceMs === undefined ? 'shipped' : 'transport',
        spacingMs,
        writes: records.filter((r) => r.receivedAt! >= marks[0]!.publishedAt).length,
        endToEnd: summarize(e2e),
        serverReceiveToStreamWrite: summarize(serverPart),
        serverReceiveToFirstStreamWrite: summarize(serverFirst),
        publishToServerReceive: summarize(before),
        streamWriteToRemoteEvent: summarize(after),
        streamsPerFanout: streams,
      },
    };
  } finally {
    for (const client of clients) await client.stop();
    for (const child of children) await stopPassive(child).catch(() => undefined);
    await server.stop().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function stateSaveCost(): Promise<Summary> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-bench-fsync-'));
  try {
    const content = JSON.stringify({ format: 1, padding: 'x'.repeat(2000) });
    const samples: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      await writeFileAtomic(join(dir, 'sync-state.json'), content);
      samples.push(performance.now() - t0);
    }
    return summarize(samples);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Presence: how long until another device shows a device offline, when it quits normally
 * (SyncClient.stop, which the extension runs on deactivate), when its process is killed (SIGKILL:
 * the kernel closes its sockets) and when its network vanishes (a frozen proxy: only the lease tells). B watches; the other device is in this process (quit) or in a
 * child process (killed).
 */
export async function presence(trials: number, networkTrials: number, log: (line: string) => void): Promise<PresenceResult> {
  const server = await ProbedServer.start(['--heartbeat-ms', '15000']);
  const stateDir = mkdtempSync(join(tmpdir(), 'tether-bench-presence-'));
  const syncKey = formatSyncKey(generateSyncKey());
  const key = parseSyncKey(syncKey);
  const b = new SyncClient({ serverUrl: server.url, syncKey: key, slotId: newSessionId(), deviceName: 'watcher', stateDir });
  const online = (slotId: string): boolean | undefined => b.getRemoteState().slots.find((s) => s.slotId === slotId)?.online;
  const quit: number[] = [];
  const killed: number[] = [];
  const networkGone: number[] = [];
  try {
    await b.start();
    await waitUntil(() => b.state.state === 'live', 30_000, 'watcher live', 10);
    for (let i = 0; i < trials; i++) {
      const a = new SyncClient({ serverUrl: server.url, syncKey: key, slotId: newSessionId(), deviceName: `quitter-${i}`, stateDir });
      a.publish([session('present', newSessionId())]);
      await a.start();
      await waitUntil(() => online(a.slotId) === true, 30_000, 'quitter online at the watcher', 1);
      const t0 = wallMs();
      await a.stop();
      await waitUntil(() => online(a.slotId) === false, 60_000, 'quitter offline at the watcher', 1);
      quit.push(wallMs() - t0);

      const slotId = newSessionId();
      const child = await startPassive(server.url, syncKey, [slotId], stateDir);
      await waitUntil(() => online(slotId) === true, 30_000, 'killed device online at the watcher', 1);
      const t1 = wallMs();
      child.kill('SIGKILL');
      await waitUntil(() => online(slotId) === false, 60_000, 'killed device offline at the watcher', 1);
      killed.push(wallMs() - t1);
    }
    // The network goes: the device's connection is frozen (nothing arrives, nothing closes) and
    // new connections are refused. Only the stream lease (shipped default) tells the server.
    for (let i = 0; i < networkTrials; i++) {
      const proxy = await TcpProxy.start(Number(new URL(server.url).port));
      const c = new SyncClient({ serverUrl: `http://127.0.0.1:${proxy.port}`, syncKey: key, slotId: newSessionId(), deviceName: `vanishing-${i}`, stateDir });
      try {
        c.publish([session('present', newSessionId())]);
        await c.start();
        await waitUntil(() => online(c.slotId) === true, 30_000, 'vanishing device online at the watcher', 1);
        // Cut at a random point of the renewal cycle, as a real network drop would.
        await sleep(Math.random() * ((DEFAULT_STREAM_LEASE_SECONDS * 1000) / 3));
        proxy.freeze();
        proxy.setRefusing(true);
        const t2 = wallMs();
        await waitUntil(() => online(c.slotId) === false, 120_000, 'vanishing device offline at the watcher', 10);
        networkGone.push(wallMs() - t2);
      } finally {
        await c.stop();
        await proxy.close();
      }
    }
  } finally {
    await b.stop();
    await server.stop().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
  const result = { trials, quit: summarize(quit), killed: summarize(killed), networkGone: summarize(networkGone), leaseSeconds: DEFAULT_STREAM_LEASE_SECONDS };
  log(`  presence: quit -> offline p50 ${result.quit.p50.toFixed(1)} / max ${result.quit.max.toFixed(1)} ms; kill -9 -> offline p50 ${result.killed.p50.toFixed(1)} / max ${result.killed.max.toFixed(1)} ms (${trials} trials); network gone -> offline p50 ${(result.networkGone.p50 / 1000).toFixed(1)} / max ${(result.networkGone.max / 1000).toFixed(1)} s (${networkTrials} trials)`);
  return result;
}

/** Changes as a person makes them: after B has the previous one, and past the grouping window. */
export const SHIPPED_SPACING_MS = 150;

export async function crossDevice(options: { quick: boolean; log: (line: string) => void }): Promise<CrossDeviceResult> {
  const changes = options.quick ? 100 : 500;
  const stateSaveMs = await stateSaveCost();
  options.log(`  one state save (writeFileAtomic, fsync): p50 ${stateSaveMs.p50.toFixed(2)} ms, p99 ${stateSaveMs.p99.toFixed(2)} ms`);
  const configs: CrossDeviceConfig[] = [];
  // As the extension ships it (default write grouping, batched cache saves), 100 changes.
  for (const slots of [2, 10, 100]) {
    const { config } = await measure(slots, 100, undefined, SHIPPED_SPACING_MS, options.log);
    configs.push(config!);
  }
  // The transport alone: every change written at once (writeDebounceMs 0), back to back.
  for (const slots of options.quick ? [2, 100] : [2, 10, 100]) {
    const { config } = await measure(slots, changes, 0, 0, options.log);
    configs.push(config!);
  }
  // Bursts: 20 changes published in one go, shipped defaults.
  const burstRounds = options.quick ? 10 : 20;
  const burstRun = await measure(2, burstRounds, undefined, 0, options.log, 20);
  const burst = { rounds: burstRounds, changesPerBurst: 20, writesPerBurst: summarize(burstRun.writesPerBurst!), lastChangeSeen: summarize(burstRun.e2e), writeWindowMs: DEFAULT_WRITE_DEBOUNCE_MS };
  const presenceResult = await presence(options.quick ? 5 : 10, options.quick ? 2 : 4, options.log);
  return { configs, stateSaveMs, burst, presence: presenceResult };
}
