/**
 * Sync server faults: kill -9 during writes (50 times), restarts on a read-only data directory, on a
 * full disk (a tiny tmpfs) and with a corrupt blob file. No acknowledged write may be lost; clients
 * fall back to their cache and catch up; a terminal tab keeps working throughout.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SessionEntry } from '../../src/sync/blob';
import { openEnvelope, sealEnvelope } from '../../src/sync/envelope';
import { SyncClient } from '../../src/sync/syncClient';
import { SyncServerApi } from '../../src/sync/syncHttp';
import { deriveSyncKeys, generateSyncKey } from '../../src/sync/syncKey';
import { newSessionId } from '../../src/common/sessionId';
import type { ConnectionPool } from '../../src/ssh/sshConnection';
import { SshHost, ensureUser, testUserName } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { CapturingLog, SyncServer, report, rng, sleep, tempDir, waitUntil } from './common';

const KILLS = Number(process.env.TETHER_REL_KILLS ?? 50);
const SERVER_USER = 'tetherrelsrv';

function entry(title: string, id = newSessionId()): SessionEntry {
  return { id, hostLabel: 'sync-fault-host', user: 'dev', hostName: '127.0.0.1', port: 22, multiplexer: 'tmux', cwd: '/tmp', startedAt: Date.now(), title };
}

describe('reliability: sync server faults', function () {
  this.timeout(600_000);
  let sshHost: SshHost;
  let pool: ConnectionPool;
  let tab: TabRecorder;
  let server: SyncServer | undefined;
  let dataDir: string;
  let uid: number;
  const key = generateSyncKey();
  const keys = deriveSyncKeys(key);
  const writerSlot = newSessionId();
  const readerSlot = newSessionId();
  const rawSlot = newSessionId();
  const writerLog = new CapturingLog();
  const readerLog = new CapturingLog();
  let writer: SyncClient;
  let reader: SyncClient;
  let port = 0;
  let termChecks = 0;
  let termOk = 0;
  const tmpfsMounts: string[] = [];

  const clientFor = (slotId: string, log: CapturingLog, stateDir: string): SyncClient =>
    new SyncClient({
      serverUrl: `http://127.0.0.1:${port}`,
      syncKey: key,
      slotId,
      deviceName: slotId === writerSlot ? 'writer' : 'reader',
      stateDir,
      log,
      writeDebounceMs: 10,
      pollIntervalMs: 300,
      reconnectInitialMs: 100,
      reconnectMaxMs: 500,
      requestTimeoutMs: 2000,
    });
  const writerState = tempDir('tetherrel-writer-');
  const readerState = tempDir('tetherrel-reader-');

  const api = (): SyncServerApi => new SyncServerApi({ serverUrl: `http://127.0.0.1:${port}`, token: keys.token, requestTimeoutMs: 2000 });

  const start = async (dir = dataDir): Promise<SyncServer> => {
    server = await SyncServer.start({ dataDir: dir, port, uid, gid: uid });
    port = server.port;
    return server;
  };

  /** The terminal keeps working whatever the sync server does. */
  async function terminalWorks(label: string): Promise<void> {
    termChecks++;
    tab.type(`echo term-${label}-$((50+5))\r`);
    await tab.waitFor(new RegExp(`term-${label}-55`), 10_000);
    termOk++;
    if (tab.text.length > 100_000) tab.text = tab.text.slice(-10_000);
  }

  /** The highest seq the writer's log says the server acknowledged. */
  const ackedSeq = (): number => Math.max(0, ...writerLog.lines.map((line) => /wrote slot version \d+, seq (\d+)/.exec(line)).filter((m) => m).map((m) => Number(m![1])));

  async function storedSeq(slotId: string): Promise<number | undefined> {
    const stored = await api().getBlob(slotId);
    return stored ? openEnvelope(keys.encryptionKey, stored.data, slotId).seq : undefined;
  }

  const readerTitles = (): string[] => reader.getRemoteState().slots.find((slot) => slot.slotId === writerSlot)?.blob.sessions.map((s) => s.title ?? '') ?? [];

  before(async function () {
    ({ uid } = ensureUser(testUserName(SERVER_USER)));
    dataDir = tempDir('tetherrel-syncdata-');
    chownSync(dataDir, uid, uid);
    await start();
    sshHost = await SshHost.start({ user: 'tetherrelf' });
    pool = testPool();
    tab = TabRecorder.open({ id: newSessionId(), host: sshHost.resolved(), pool, mode: 'create', preference: 'tmux' });
    await tab.waitForState('attached', 20_000);
    writer = clientFor(writerSlot, writerLog, writerState);
    reader = clientFor(readerSlot, readerLog, readerState);
    await writer.start();
    await reader.start();
    writer.publish([entry('initial')]);
    assert.equal(await writer.flush(), true);
    await waitUntil(() => readerTitles().includes('initial'), 10_000, 'reader sees the first write');
  });

  after(async () => {
    await writer?.stop();
    await reader?.stop();
    await server?.stop();
    tab?.session.dispose();
    pool?.dispose();
    await sshHost?.dispose();
    for (const mount of tmpfsMounts) {
      try {
        execFileSync('umount', [mount]);
      } catch {
        /* already gone */
      }
    }
  });

  it(`loses no acknowledged write across ${KILLS} kill -9 during writes`, async () => {
    const random = rng(Number(process.env.TETHER_REL_SEED ?? 4242));
    let lostWriter = 0;
    let lostRaw = 0;
    let rawAcked = 0;
    let writerAcks = 0;
    let restarts = 0;
    // A raw writer beside the SyncClient: every 200/201 it gets is an acknowledged write to check.
    let rawVersion: number | undefined;
    let lastAck: { version: number; data: string } | undefined;
    const sent = new Set<string>();
    let rawRunning = true;
    const rawLoop = (async () => {
      let n = 0;
      while (rawRunning) {
        const data = sealEnvelope(keys.encryptionKey, { slotId: rawSlot, seq: ++n, note: 'raw' } as { slotId: string; seq: number });
        const base64 = Buffer.from(data).toString('base64');
        sent.add(base64);
        try {
          const result = await api().putBlob(rawSlot, data, rawVersion);
          if (result.ok) {
            rawVersion = result.version;
            lastAck = { version: result.version, data: base64 };
            rawAcked++;
          } else {
            rawVersion = (await api().getBlob(rawSlot))?.version;
          }
        } catch {
          await sleep(20);
          try {
            rawVersion = (await api().getBlob(rawSlot))?.version;
          } catch {
            /* server down */
          }
        }
      }
    })();

    for (let i = 0; i < KILLS; i++) {
      writer.publish([entry(`rev-${i}`), entry(`rev-${i}-b`)]);
      // Anywhere from before the write leaves to well after its answer.
      await sleep(Math.floor(random() * 150));
      await server!.kill9();
      const acked = ackedSeq();
      const rawAckedNow = lastAck;
      await sleep(Math.floor(random() * 50));
      await start();
      restarts++;
      const seq = await storedSeq(writerSlot);
      if (seq === undefined || seq < acked) {
        lostWriter++;
        console.log(`      kill ${i}: writer acked seq ${acked}, server has ${seq}`);
      }
      if (rawAckedNow) {
        const stored = await api().getBlob(rawSlot);
        const storedData = stored ? Buffer.from(stored.data).toString('base64') : undefined;
        if (!stored || stored.version < rawAckedNow.version || (stored.version === rawAckedNow.version && storedData !== rawAckedNow.data) || !sent.has(storedData!)) {
          lostRaw++;
          console.log(`      kill ${i}: raw acked v${rawAckedNow.version}, server has v${stored?.version}`);
        }
      }
      if (i % 10 === 0) await terminalWorks(`kill${i}`);
    }
    rawRunning = false;
    await rawLoop;
    writerAcks = writerLog.lines.filter((line) => /wrote slot version/.test(line)).length;
    // The clients catch up: the last revision reaches the server and the reader.
    await waitUntil(async () => await writer.flush(), 20_000, 'the writer flushes its last revision');
    await waitUntil(() => readerTitles().includes(`rev-${KILLS - 1}`), 20_000, 'the reader catches up');
    await terminalWorks('after-kills');
    report({
      scenario: 'Sync server kill -9 during writes',
      iterations: KILLS,
      counts: {
        restarts,
        'SyncClient writes acknowledged': writerAcks,
        'raw PUTs acknowledged': rawAcked,
        'acknowledged writes lost': lostWriter + lostRaw,
        'reader caught up': 'yes',
        'terminal checks ok': `${termOk}/${termChecks}`,
      },
    });
    assert.equal(lostWriter, 0, 'SyncClient writes acknowledged then lost');
    assert.equal(lostRaw, 0, 'raw writes acknowledged then lost');
  });

  function accountDir(dir: string): string {
    const accounts = join(dir, 'accounts');
    const found = readdirSync(accounts).filter((name) => /^[0-9a-f]{64}$/.test(name));
    assert.equal(found.length, 1);
    return join(accounts, found[0]);
  }

  it('restarts on a read-only data directory: clients fall back to their cache and catch up', async () => {
    const acceptedBefore = readerTitles();
    // (a) the account directory is read-only: the server starts, reads work, writes fail.
    await server!.stop();
    const account = accountDir(dataDir);
    chmodSync(account, 0o555);
    await start();
    writer.publish([entry('while-read-only')]);
    await sleep(1500);
    const flushedWhileRo = await writer.flush();
    const writerStateRo = writer.state.state;
    assert.equal(flushedWhileRo, false, 'no write can be acknowledged on a read-only directory');
    assert.deepEqual(readerTitles(), acceptedBefore, 'the reader keeps its last good state');
    await terminalWorks('ro');
    // (b) the whole data directory is read-only: the server cannot even start.
    await server!.stop();
    chmodSync(dataDir, 0o555);
    let refusedToStart = false;
    try {
      await start();
    } catch (error) {
      refusedToStart = /exited/.test((error as Error).message);
    }
    await sleep(1000);
    const readerOffline = reader.state.state;
    // A restarted reader lists the writer from its on-disk cache while the server is down.
    await reader.stop();
    const readerFromCache = clientFor(readerSlot, readerLog, readerState);
    await readerFromCache.start();
    const cachedTitles = readerFromCache.getRemoteState().slots.find((slot) => slot.slotId === writerSlot)?.blob.sessions.map((s) => s.title) ?? [];
    await readerFromCache.stop();
    await terminalWorks('ro-down');
    // Writable again: everything catches up.
    chmodSync(dataDir, 0o755);
    chmodSync(account, 0o700);
    await start();
    reader = clientFor(readerSlot, readerLog, readerState);
    await reader.start();
    await waitUntil(async () => await writer.flush(), 20_000, 'the writer catches up');
    await waitUntil(() => readerTitles().includes('while-read-only'), 20_000, 'the reader catches up');
    report({
      scenario: 'Sync server on a read-only data dir',
      iterations: 1,
      counts: {
        'write acknowledged while read-only': flushedWhileRo ? 1 : 0,
        'writer state': writerStateRo,
        'server refused to start (dir read-only)': refusedToStart ? 'yes' : 'no',
        'reader state while down': readerOffline,
        'listed from cache while down': cachedTitles.length,
        'caught up': 'yes',
      },
    });
    assert.ok(refusedToStart, 'a read-only data dir stops the server at start, visibly');
    assert.notEqual(readerOffline, 'live');
    assert.ok(cachedTitles.length > 0, 'the cache still lists the writer while the server is down');
  });

  it('restarts on a full disk (tiny tmpfs): writes fail visibly, nothing acknowledged is lost, then catch up', async function () {
    const mount = tempDir('tetherrel-tmpfs-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=512k,uid=${uid},gid=${uid},mode=0755`, 'tmpfs', mount]);
    } catch (error) {
      console.log(`      (mount not permitted here: ${(error as Error).message.split('\n')[0]}; skipped)`);
      this.skip();
    }
    tmpfsMounts.push(mount);
    await server!.stop();
    execFileSync('cp', ['-a', `${dataDir}/.`, mount]);
    rmSync(join(mount, 'server.lock'), { force: true });
    const dir = mount;
    await start(dir);
    await waitUntil(async () => await writer.flush(), 20_000, 'writer settled on the tmpfs');
    const ackedBefore = ackedSeq();
    // Fill the disk.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(mount, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      /* ENOSPC is the point */
    }
    writer.publish([entry('while-full')]);
    await sleep(1500);
    const flushedWhileFull = await writer.flush();
    assert.equal(flushedWhileFull, false, 'no write can be acknowledged on a full disk');
    const storedWhileFull = await storedSeq(writerSlot);
    assert.ok(storedWhileFull !== undefined && storedWhileFull >= ackedBefore, 'the last acknowledged write is still there');
    await terminalWorks('full');
    // Restart on the still-full disk: the store opens, the acknowledged blob is intact.
    await server!.kill9();
    await start(dir);
    const afterRestart = await storedSeq(writerSlot);
    assert.ok(afterRestart !== undefined && afterRestart >= ackedBefore);
    rmSync(join(mount, 'filler'));
    await waitUntil(async () => await writer.flush(), 20_000, 'the writer catches up once there is space');
    await waitUntil(() => readerTitles().includes('while-full'), 20_000, 'the reader catches up');
    report({
      scenario: 'Sync server on a full disk (512 KiB tmpfs)',
      iterations: 1,
      counts: { 'write acknowledged while full': flushedWhileFull ? 1 : 0, 'acknowledged writes lost': 0, 'caught up': 'yes' },
    });
    // Back to the normal directory for the next test.
    await server!.stop();
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true });
    execFileSync('cp', ['-a', `${mount}/.`, dataDir]);
    chownSync(dataDir, uid, uid);
    rmSync(join(dataDir, 'server.lock'), { force: true });
    execFileSync('umount', [mount]);
    tmpfsMounts.splice(tmpfsMounts.indexOf(mount), 1);
    await start();
  });

  it('restarts with a corrupt blob file: the slot reads as absent, its writer rewrites it, the reader catches up', async () => {
    writer.publish([entry('before-corruption')]);
    assert.equal(await writer.flush(), true);
    await waitUntil(() => readerTitles().includes('before-corruption'), 10_000, 'reader has it');
    await server!.stop();
    const file = join(accountDir(dataDir), `${writerSlot}.json`);
    assert.ok(existsSync(file));
    writeFileSync(file, '{"format":1,"slotId":"garbage\u0000', { mode: 0o600 });
    chownSync(file, uid, uid);
    await start();
    await waitUntil(() => server!.lines.some((line) => /corrupt_blob/.test(line)), 5000, 'the server reports the corrupt file');
    // The writer notices its slot is missing and writes it again; the reader gets it back.
    await waitUntil(async () => (await storedSeq(writerSlot)) !== undefined, 20_000, 'the writer rewrites its slot');
    await waitUntil(() => readerTitles().includes('before-corruption'), 20_000, 'the reader lists the writer again');
    await terminalWorks('corrupt');
    const setAside = readdirSync(accountDir(dataDir)).filter((name) => name.includes('.corrupt-')).length;
    report({
      scenario: 'Sync server restart with a corrupt blob file',
      iterations: 1,
      counts: { 'server started': 'yes', 'corrupt files set aside': setAside, 'slot rewritten by its writer': 'yes', 'reader caught up': 'yes', 'terminal checks ok': `${termOk}/${termChecks}` },
    });
    assert.equal(setAside, 1);
    assert.equal(termOk, termChecks);
  });
});
