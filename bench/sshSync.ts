/**
 * Cross-device latency through an SSH host (issue 15): slot A publishes a change until slot B's
 * onDidChangeRemote fires with it, both SyncClients on SshSyncTransport over their own connection
 * to one loopback sshd. Once with the POSIX sh watcher (polls 4×/s), once with inotifywait when the
 * host has it. Baseline, same run, same connection: one exec round trip (`true`), the floor of any
 * operation of this transport (a write is one exec, a read another).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { SessionEntry } from '../src/sync/blob';
import { SyncClient } from '../src/sync/syncClient';
import { deriveSyncKeys, generateSyncKey } from '../src/sync/syncKey';
import { parseSshSyncUrl } from '../src/sync/sshSyncUrl';
import { poolConnector, SshSyncTransport } from '../src/sync/sshTransport';
import { newSessionId } from '../src/common/sessionId';
import { sampleSession } from '../test/integration/sync/harness';
import { testPool } from '../test/integration/fixtures/sessionHarness';
import { BenchHost } from './lib/hosts';
import { Summary, sleep, summarize, waitUntil, wallMs } from './lib/util';

export interface SshSyncWatcherResult {
  watcher: 'sh' | 'inotify';
  changes: number;
  endToEnd: Summary;
}

export interface SshSyncResult {
  /** One exec round trip on the shared connection. */
  execRoundTrip: Summary;
  runs: SshSyncWatcherResult[];
  /** Whether the host had inotifywait (else the inotify run is skipped). */
  inotifyAvailable: boolean;
}

function hasInotifywait(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v inotifywait'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function sshCrossDevice(options: { quick: boolean; log: (line: string) => void }): Promise<SshSyncResult> {
  const changes = options.quick ? 15 : 60;
  const host = await BenchHost.start('tbenchs');
  const root = mkdtempSync(join(tmpdir(), 'tether-bench-sshsync-'));
  const pools = [testPool(), testPool()];
  try {
    const resolved = host.resolved();
    // Baseline: exec round trips on an open connection.
    const connection = await pools[0].acquire(resolved);
    const rtts: number[] = [];
    for (let i = 0; i < changes; i++) {
      const t0 = wallMs();
      await connection.runScript('true');
      rtts.push(wallMs() - t0);
    }
    const inotifyAvailable = hasInotifywait();
    const runs: SshSyncWatcherResult[] = [];
    for (const watcher of inotifyAvailable ? (['sh', 'inotify'] as const) : (['sh'] as const)) {
      const key = generateSyncKey();
      const clients = ['a', 'b'].map(
        (name, index) =>
          new SyncClient({
            serverUrl: '',
            transport: new SshSyncTransport({
              location: parseSshSyncUrl(`ssh://${host.user}@127.0.0.1:${host.port}/~/.tether/bench-${watcher}`),
              token: deriveSyncKeys(key).token,
              ...poolConnector(pools[index], () => resolved),
              watcher: watcher === 'sh' ? 'sh' : 'auto',
            }),
            syncKey: key,
            slotId: newSessionId(),
            deviceName: name,
            stateDir: join(root, `${watcher}-${name}`),
            writeDebounceMs: 0,
          }),
      );
      const [a, b] = clients;
      await Promise.all(clients.map((c) => c.start()));
      await waitUntil(() => a.state.state === 'live' && b.state.state === 'live', 30_000, 'both live', 20);
      const latencies: number[] = [];
      for (let i = 0; i < changes + 2; i++) {
        const session: SessionEntry = sampleSession({ title: `change ${i}` });
        const t0 = wallMs();
        a.publish([session]);
        await waitUntil(() => b.getRemoteState().slots.some((slot) => slot.blob.sessions.some((s) => s.id === session.id)), 30_000, `change ${i} seen`, 1);
        // The first two warm the connection and the watcher.
        if (i >= 2) latencies.push(wallMs() - t0);
        await sleep(50);
      }
      await Promise.all(clients.map((c) => c.stop()));
      const endToEnd = summarize(latencies);
      options.log(`  ssh sync (${watcher} watcher): p50 ${endToEnd.p50} ms, p99 ${endToEnd.p99} ms over ${latencies.length} changes`);
      runs.push({ watcher, changes: latencies.length, endToEnd });
    }
    return { execRoundTrip: summarize(rtts), runs, inotifyAvailable };
  } finally {
    pools.forEach((pool) => pool.dispose());
    await host.dispose();
    rmSync(root, { recursive: true, force: true });
  }
}
