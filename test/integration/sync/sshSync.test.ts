import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, promises as fs, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { SessionEntry } from '../../../src/sync/blob';
import { type RemoteState, SyncClient, type SyncStateChange } from '../../../src/sync/syncClient';
import type { Logger } from '../../../src/common/logger';
import { deriveSyncKeys, generateSyncKey } from '../../../src/sync/syncKey';
import { parseSshSyncUrl } from '../../../src/sync/sshSyncUrl';
import { poolConnector, SshSyncTransport, sshAccountId } from '../../../src/sync/sshTransport';
import { newSessionId } from '../../../src/common/sessionId';
import type { ConnectionPool } from '../../../src/ssh/sshConnection';
import { SshHost } from '../../support/sshHost';
import { TcpProxy } from '../../support/tcpProxy';
import { eventually, testPool } from '../fixtures/sessionHarness';
import { sampleSession, tempRoot } from './harness';

/**
 * Sync through an SSH host (issue 15): SyncClient over SshSyncTransport, against a real sshd on
 * 127.0.0.1. Each "device" has its own connection pool (its own SSH connection), as two machines would.
 */

function until(client: SyncClient, predicate: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscriptions.forEach((s) => s.dispose());
      reject(new Error(`timed out waiting for ${what} (state ${JSON.stringify(client.state)})`));
    }, timeoutMs);
    const check = (): void => {
      if (!predicate()) return;
      clearTimeout(timer);
      subscriptions.forEach((s) => s.dispose());
      resolve();
    };
    const subscriptions = [client.onDidChangeRemote(check), client.onDidChangeState(check)];
    check();
  });
}

const ids = (state: RemoteState, slotId: string): string[] => (state.slots.find((s) => s.slotId === slotId)?.blob.sessions ?? []).map((s) => s.id).sort();

class Device {
  readonly lines: string[] = [];
  readonly pool: ConnectionPool;
  readonly client: SyncClient;
  readonly transport: SshSyncTransport;
  readonly seen: RemoteState[] = [];

  constructor(host: SshHost, proxy: TcpProxy, readonly name: string, readonly slotId: string, syncKey: Uint8Array, stateDir: string, watcher: 'sh' | 'auto' = 'sh') {
    this.pool = testPool();
    const say = (level: string) => (message: string): void => {
      this.lines.push(`${level} ${message}`);
      if (process.env.TETHER_TEST_VERBOSE) console.log(`[${name} ${level}] ${message}`);
    };
    const log: Logger = { debug: say('debug'), info: say('info'), warn: say('warn'), error: say('error') };
    // Through the proxy, so "the host is unreachable" can also drop the connections sshd leaves running.
    const resolved = host.resolved({ port: proxy.port });
    this.transport = new SshSyncTransport({
      location: parseSshSyncUrl(`ssh://${host.user}@127.0.0.1:${proxy.port}`),
      token: deriveSyncKeys(syncKey).token,
      ...poolConnector(this.pool, () => resolved),
      watcher,
      timing: { pollSeconds: 0.25, heartbeatSeconds: 1 },
      requestTimeoutMs: 10_000,
      log,
    });
    this.client = new SyncClient({
      serverUrl: '',
      transport: this.transport,
      syncKey,
      slotId,
      deviceName: name,
      stateDir,
      writeDebounceMs: 10,
      reconnectInitialMs: 200,
      reconnectMaxMs: 1000,
      pollIntervalMs: 500,
      streamIdleTimeoutMs: 6000,
      log,
    });
    this.client.onDidChangeRemote((state) => this.seen.push(state));
  }

  async stop(): Promise<void> {
    await this.client.stop();
    this.pool.dispose();
  }
}

describe('sync through an SSH host (real sshd)', function () {
  this.timeout(120_000);
  const root = tempRoot();
  const syncKey = generateSyncKey();
  const account = sshAccountId(deriveSyncKeys(syncKey).token);
  let host: SshHost;
  let proxy: TcpProxy;
  let a: Device;
  let b: Device;
  const devices: Device[] = [];
  const device = (name: string, slotId = newSessionId(), watcher: 'sh' | 'auto' = 'sh'): Device => {
    const created = new Device(host, proxy, name, slotId, syncKey, path.join(root, name), watcher);
    devices.push(created);
    return created;
  };
  const accountDir = (): string => path.join(host.home, '.tether/sync', account);
  /** Writes a file in the account folder as the host user (the way someone with access would). */
  const plant = (name: string, content: string | Buffer): void => {
    const file = path.join(accountDir(), name);
    writeFileSync(file, content, { mode: 0o600 });
    chownSync(file, host.uid, host.uid);
  };
  const publishA = (sessions: SessionEntry[]): void => a.client.publish(sessions);

  before(async function () {
    await fs.mkdir(root, { recursive: true });
    host = await SshHost.start({ user: 'tsyncssh' });
    proxy = await TcpProxy.start(host.port);
    host.run('rm -rf "$HOME/.tether/sync"');
    a = device('device-a');
    b = device('device-b');
    await Promise.all([a.client.start(), b.client.start()]);
    await Promise.all([until(a.client, () => a.client.state.state === 'live', 20_000, 'A live'), until(b.client, () => b.client.state.state === 'live', 20_000, 'B live')]);
  });

  after(async function () {
    await Promise.all(devices.map((d) => d.stop().catch(() => undefined)));
    await proxy?.close();
    await host?.dispose();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('keeps the account folder private: mode 700, files 600, named by the hash of the token', function () {
    const mode = Number.parseInt(host.run(`stat -c %a "$HOME/.tether/sync/${account}"`).trim(), 8);
    assert.equal(mode, 0o700);
  });

  it('two devices on two slots see each other\'s listing', async function () {
    const first = sampleSession({ title: "first; echo $(id) `uname` '" });
    publishA([first]);
    const mine = sampleSession({ hostLabel: 'db-2' });
    b.client.publish([mine]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === first.id, 20_000, 'B to see A');
    await until(a.client, () => ids(a.client.getRemoteState(), b.slotId).join() === mine.id, 20_000, 'A to see B');
    const seenByB = b.client.getRemoteState().slots.find((s) => s.slotId === a.slotId)!;
    assert.equal(seenByB.deviceName, 'device-a');
    assert.equal(seenByB.blob.sessions[0].title, first.title);
    const files = readdirSync(accountDir()).sort();
    assert.ok(files.includes(`${a.slotId}.blob`) && files.includes(`${b.slotId}.blob`), files.join(' '));
    for (const file of files.filter((f) => f.endsWith('.blob'))) assert.equal(host.run(`stat -c %a "$HOME/.tether/sync/${account}/${file}"`).trim(), '600');
  });

  it('two writers racing on one slot: the version precondition lets exactly one through each round, none is lost', async function () {
    const slot = newSessionId();
    const racers = [a.transport, b.transport];
    const landed: number[] = [];
    // Each racer writes 5 times, re-reading the version after every conflict, all at once.
    await Promise.all(
      racers.map(async (transport, index) => {
        for (let n = 0; n < 5; n++) {
          for (let attempt = 0; ; attempt++) {
            assert.ok(attempt < 40, 'too many conflicts');
            const current = await transport.getBlob(slot);
            const result = await transport.putBlob(slot, new Uint8Array(Buffer.from(`${index}-${n}`.padEnd(48, '.'))), current?.version);
            if (result.ok) {
              landed.push(result.version);
              break;
            }
          }
        }
      }),
    );
    landed.sort((x, y) => x - y);
    assert.deepEqual(landed, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'every write got its own version: none overwrote another unseen');
    await a.transport.deleteBlob(slot);
  });

  it('concurrent writes from both devices both survive', async function () {
    const fromA = sampleSession({ title: 'from A' });
    const fromB = sampleSession({ title: 'from B' });
    publishA([fromA]);
    b.client.publish([fromB]);
    await Promise.all([a.client.flush(), b.client.flush()]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === fromA.id, 20_000, 'B to see A');
    await until(a.client, () => ids(a.client.getRemoteState(), b.slotId).join() === fromB.id, 20_000, 'A to see B');
  });

  it('a tombstone reaches the other device', async function () {
    const doomed = sampleSession({ title: 'doomed' });
    publishA([doomed]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).includes(doomed.id), 20_000, 'B to see the session');
    a.client.publishTombstone(doomed.id);
    await until(
      b.client,
      () => (b.client.getRemoteState().slots.find((s) => s.slotId === a.slotId)?.blob.tombstones ?? []).some((t) => t.id === doomed.id),
      20_000,
      'B to see the tombstone',
    );
    assert.deepEqual(ids(b.client.getRemoteState(), a.slotId), []);
  });

  it('presence: a device is online while its watcher runs, offline once it stops; a deleted slot leaves the list', async function () {
    const c = device('device-c');
    await c.client.start();
    c.client.publish([sampleSession({ title: 'from C' })]);
    await until(b.client, () => b.client.getRemoteState().slots.some((s) => s.slotId === c.slotId && s.online === true), 20_000, 'C online at B');
    await c.client.deleteOwnSlot();
    await until(b.client, () => !b.client.getRemoteState().slots.some((s) => s.slotId === c.slotId), 20_000, 'C gone at B');
    await c.stop();
    // A stopped device whose slot stays is listed offline.
    const d = device('device-d');
    await d.client.start();
    d.client.publish([sampleSession({ title: 'from D' })]);
    await until(b.client, () => b.client.getRemoteState().slots.some((s) => s.slotId === d.slotId && s.online === true), 20_000, 'D online at B');
    await d.stop();
    await until(b.client, () => b.client.getRemoteState().slots.some((s) => s.slotId === d.slotId && s.online === false), 20_000, 'D offline at B');
    // A heartbeat that is not renewed (a device gone without leaving) is online, then offline once
    // it is older than the timeout (3 heartbeats) on the host's clock.
    const onlineAtB = (slot: string): boolean | undefined => b.client.getRemoteState().slots.find((s) => s.slotId === slot)?.online;
    plant(`${d.slotId}.s${host.run('date +%s').trim()}`, '');
    await until(b.client, () => onlineAtB(d.slotId) === true, 20_000, 'D online at B from a fresh heartbeat');
    const seenOnline = Date.now();
    await until(b.client, () => onlineAtB(d.slotId) === false, 20_000, 'D offline at B once its heartbeat is stale');
    assert.ok(Date.now() - seenOnline >= 1500, `offline only after the timeout (${Date.now() - seenOnline} ms)`);
    await b.transport.deleteBlob(d.slotId);
    await until(b.client, () => !b.client.getRemoteState().slots.some((s) => s.slotId === d.slotId), 20_000, 'D gone at B');
  });

  it('with inotifywait on the host, the watcher uses it and follows changes', async function () {
    if (!existsCommand('inotifywait')) this.skip(); // apt-get install inotify-tools
    const e = device('device-e', newSessionId(), 'auto');
    await e.client.start();
    await until(e.client, () => e.client.state.state === 'live', 20_000, 'E live');
    assert.ok(e.lines.some((line) => line.includes('watcher uses inotify')), 'the inotify watcher runs');
    const next = sampleSession({ title: 'seen through inotify' });
    publishA([next]);
    await until(e.client, () => ids(e.client.getRemoteState(), a.slotId).join() === next.id, 20_000, 'E to follow A');
    await e.stop();
  });

  it('hostile files are rejected 100%: rewritten, truncated, rolled back, moved between slots', async function () {
    const blobFile = (): string => path.join(accountDir(), `${a.slotId}.blob`);
    const versionOf = (): number => Number(readdirSync(accountDir()).find((f) => f.startsWith(`${a.slotId}.v`))!.slice(28));
    /** Replaces A's blob file and bumps its marker, as an attacker with write access would; `size` also replaces its size marker. */
    const tamper = (content: string, size?: number): void => {
      const version = versionOf();
      plant(`${a.slotId}.blob`, content);
      if (size !== undefined) {
        host.run(`rm -f "$HOME/.tether/sync/${account}/${a.slotId}".z*`);
        plant(`${a.slotId}.z${size}`, '');
      }
      plant(`${a.slotId}.v${version + 1}`, '');
      host.run(`rm -f "$HOME/.tether/sync/${account}/${a.slotId}.v${version}"`);
    };
    const oldSession = sampleSession({ title: 'old' });
    publishA([oldSession]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === oldSession.id, 20_000, 'B at old');
    const oldFile = readFileSync(blobFile(), 'utf8');
    const current = sampleSession({ title: 'current' });
    publishA([current]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === current.id, 20_000, 'B at current');
    const goodFile = readFileSync(blobFile(), 'utf8');
    const good = JSON.parse(goodFile) as { version: number; data: string };
    /** A file with a size marker that tells the truth, as putScript would write one. */
    const exact = (content: string): void => tamper(content, Buffer.byteLength(content));
    const movedF = newSessionId();
    const long = `${JSON.stringify({ ...good, data: good.data.repeat(Math.ceil(12_000 / good.data.length)) })}\n`;
    const flipped = Buffer.from(good.data, 'base64');
    flipped[flipped.length - 5] ^= 0x40;

    const attacks: Array<[string, () => void]> = [
      ['rewritten ciphertext', () => tamper(JSON.stringify({ ...good, data: flipped.toString('base64') }))],
      ['truncated file', () => tamper(goodFile.slice(0, Math.floor(goodFile.length / 2)))],
      ['truncated envelope', () => tamper(JSON.stringify({ ...good, data: good.data.slice(0, 40) }))],
      ['rolled back', () => tamper(oldFile)],
      ['not JSON at all', () => tamper('$(touch /tmp/pwned) `id`; rm -rf ~\n')],
      [
        'moved to another slot',
        () => {
          const other = newSessionId();
          plant(`${other}.blob`, goodFile);
          plant(`${other}.v1`, '');
        },
      ],
      // Aimed at the watcher's F line (a small one-line file sent as it is, docs/protocol.md): these
      // three go as F lines (checked below), the others fall back to base64.
      ['F: rewritten ciphertext, the true size marker', () => exact(`${JSON.stringify({ ...good, data: flipped.toString('base64') })}\n`)],
      ['F: rolled back, the true size marker', () => exact(oldFile)],
      ['F: an older blob as the first line, more after it', () => tamper(oldFile + goodFile, Buffer.byteLength(oldFile))],
      ['F: a space and a quote', () => exact(goodFile.replace('{"version":', `{"updatedAt":"it's", "version":`))],
      ['F: control bytes in the data', () => exact(`{"version":1,"data":"${good.data.slice(0, 40)}\u0001\u001b[2J\r"}\n`)],
      ['F: oversized line, the true size marker', () => exact(long)],
      ['F: oversized line, a size marker that lies', () => tamper(long, Buffer.byteLength(goodFile))],
      [
        'F: moved to another slot with its size marker',
        () => {
          plant(`${movedF}.blob`, goodFile);
          plant(`${movedF}.z${Buffer.byteLength(goodFile)}`, '');
          plant(`${movedF}.v1`, '');
        },
      ],
    ];
    let rejected = 0;
    for (const [name, attack] of attacks) {
      const before = b.lines.length;
      const seenBefore = b.seen.length;
      attack();
      // B reads the change and says why it refused it (each path logs the slot it refused).
      await eventually(() => b.lines.slice(before).some((line) => /ignored the (blob|file) of slot|unchanged/.test(line)), 20_000, `B to read the ${name} file`);
      const state = b.client.getRemoteState();
      const slotA = state.slots.find((s) => s.slotId === a.slotId);
      assert.deepEqual(ids(state, a.slotId), [current.id], `${name}: B still lists A's real sessions`);
      assert.equal(state.slots.length, 1 + state.slots.filter((s) => s.slotId !== a.slotId && devices.some((d) => d.slotId === s.slotId)).length, `${name}: no slot appeared from a moved file`);
      assert.ok(slotA);
      assert.ok(b.seen.slice(seenBefore).every((seen) => ids(seen, a.slotId).join() === current.id), `${name}: never listed anything else`);
      rejected++;
    }
    assert.equal(rejected, attacks.length);
    const sentAs = (slot: string, kind: 'F' | 'B'): number => b.lines.filter((line) => line.endsWith(`the watcher sent the file of slot ${slot} (${kind})`)).length;
    assert.ok(sentAs(a.slotId, 'F') >= 2 && sentAs(movedF, 'F') === 1, 'the F line was used where a file looked like one of putScript');
    assert.ok(sentAs(a.slotId, 'B') >= 8, 'every odd file went as base64');
    assert.equal(existsPwned(), false, 'nothing read on the host ran');
    // A writes again: its real write goes above whatever the attacker left, and B follows.
    const after = sampleSession({ title: 'after the attacks' });
    publishA([after]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === after.id, 20_000, 'B to follow A after the attacks');
  });

  it('a flood of files is bounded: the devices stay live and keep syncing', async function () {
    const names: string[] = [];
    for (let i = 0; i < 1500; i++) names.push(`${newSessionId()}.v${i}`, `junk-${i}-$(id)`);
    host.run(`cd "$HOME/.tether/sync/${account}" && for i in $(seq 1 1500); do : > "flood$i.v1"; done`);
    for (const name of names.slice(0, 600)) plant(name, '');
    // One huge file under a valid slot name.
    plant(`${newSessionId()}.blob`, Buffer.alloc(8 * 1024 * 1024, 0x41));
    const next = sampleSession({ title: 'during the flood' });
    publishA([next]);
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === next.id, 60_000, 'B to follow A during the flood');
    assert.equal(b.client.state.state, 'live');
    assert.ok(b.client.getRemoteState().slots.every((s) => devices.some((d) => d.slotId === s.slotId)), 'only real devices are listed');
    host.run(`cd "$HOME/.tether/sync/${account}" && rm -f flood* junk-* && find . -name '*.v*' -size 0 | while read f; do s=\${f#./}; s=\${s%%.v*}; [ -e "$s.blob" ] || rm -f "$f"; done; true`);
    for (const file of readdirSync(accountDir())) if (file.endsWith('.blob') && !devices.some((d) => file.startsWith(d.slotId))) host.run(`rm -f "$HOME/.tether/sync/${account}/${file}"`);
  });

  it('an unreachable host is "offline" with the cached list; both devices catch up when it is back', async function () {
    const before = ids(b.client.getRemoteState(), a.slotId);
    await host.stop();
    proxy.setRefusing(true);
    proxy.cut();
    await until(b.client, () => b.client.state.state === 'offline', 30_000, 'B offline');
    await until(a.client, () => a.client.state.state === 'offline', 30_000, 'A offline');
    assert.deepEqual(ids(b.client.getRemoteState(), a.slotId), before, 'the cached list stays while offline');
    const whileDown = sampleSession({ title: 'written while the host was down' });
    publishA([whileDown]);
    await host.restart();
    proxy.setRefusing(false);
    await until(a.client, () => a.client.state.state === 'live', 30_000, 'A live again');
    await until(b.client, () => ids(b.client.getRemoteState(), a.slotId).join() === whileDown.id, 30_000, 'B to catch up');
    // B may catch up through its poll before its stream is back (then it is still "offline").
    await until(b.client, () => b.client.state.state === 'live', 30_000, 'B live again');
  });
});

function existsCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function existsPwned(): boolean {
  try {
    readFileSync('/tmp/pwned');
    return true;
  } catch {
    return false;
  }
}

export type { SyncStateChange };
