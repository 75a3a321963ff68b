import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import * as path from 'node:path';
import { type RemoteState, SyncClient, type SyncStateChange } from '../../../src/sync/syncClient';
import { sealEnvelope } from '../../../src/sync/envelope';
import { deriveSyncKeys, formatSyncKey, generateSyncKey } from '../../../src/sync/syncKey';
import { SyncServerApi } from '../../../src/sync/syncHttp';
import { newSessionId } from '../../../src/common/sessionId';
import { TcpProxy } from '../../support/tcpProxy';
import { DeviceProcess, sampleSession, ServerProcess, tempRoot } from './harness';

/** Resolves once `predicate` holds, re-checking whenever the client reports anything. */
/** Waits for `predicate` on the client's events; after 40 s fails saying what the client's state was. */
function until(client: SyncClient, predicate: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const check = (): void => {
      if (!predicate()) return;
      done();
      resolve();
    };
    const subscriptions = [client.onDidChangeRemote(check), client.onDidChangeState(check)];
    const timer = setTimeout(() => {
      done();
      reject(new Error(`gave up after 40 s waiting on the client; its state: ${JSON.stringify(client.state)}`));
    }, 40_000);
    const done = (): void => {
      clearTimeout(timer);
      subscriptions.forEach((s) => s.dispose());
    };
  });
}

function sessionIds(state: RemoteState): string[] {
  return state.slots.flatMap((slot) => slot.blob.sessions.map((s) => s.id)).sort();
}

describe('sync client against the real server (two processes)', function () {
  const root = tempRoot();
  const dataDir = path.join(root, 'server-data');
  const syncKeyBytes = generateSyncKey();
  const syncKey = formatSyncKey(syncKeyBytes);
  const { token } = deriveSyncKeys(syncKeyBytes);
  const slotA = newSessionId();
  const slotB = newSessionId();
  const stateA = path.join(root, 'device-a');
  const stateB = path.join(root, 'device-b');
  let server: ServerProcess;
  let deviceA: DeviceProcess;
  let deviceB: DeviceProcess;
  const first = sampleSession({ title: 'first; echo $(id) `uname`' });
  const second = sampleSession({ hostLabel: 'db-2', multiplexer: 'screen', title: undefined });
  /** A's envelope as the server held it after the first write, for the rollback attack later. */
  let oldEnvelopeOfA: string;

  const startA = (url: string): DeviceProcess => DeviceProcess.start({ serverUrl: url, syncKey, slotId: slotA, deviceName: 'device-a', stateDir: stateA });
  const startB = (url: string): DeviceProcess => DeviceProcess.start({ serverUrl: url, syncKey, slotId: slotB, deviceName: 'device-b', stateDir: stateB });

  async function serverBlob(slotId: string): Promise<{ version: number; data: string }> {
    const response = await fetch(`${server.url}/v1/blobs/${slotId}`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    return (await response.json()) as { version: number; data: string };
  }

  before(async function () {
    await fs.mkdir(root, { recursive: true });
    server = await ServerProcess.start(dataDir);
  });

  after(async function () {
    await Promise.all([deviceA?.stop(), deviceB?.stop()]);
    await server?.stop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a write by one device is seen, decrypted and validated by the other', async function () {
    deviceA = startA(server.url);
    deviceB = startB(server.url);
    await Promise.all([deviceA.waitForState('live'), deviceB.waitForState('live')]);
    const sent = Date.now();
    deviceA.publish([first]);
    const seen = await deviceB.waitForSession(first.id);
    console.log(`      write on A seen on B after ${seen.at - sent} ms (debounce 50 ms included)`);
    const slot = seen.slots.find((s) => s.deviceName === 'device-a');
    assert.ok(slot, 'B lists a slot named device-a');
    assert.deepEqual(slot.blob.sessions, [first]);

    // The server holds ciphertext only: nothing readable from the blob is in its files.
    const files = await fs.readdir(dataDir, { recursive: true });
    let stored = '';
    for (const file of files) {
      const full = path.join(dataDir, String(file));
      if ((await fs.stat(full)).isFile()) stored += await fs.readFile(full, 'latin1');
    }
    assert.ok(stored.length > 0, 'the server stored something');
    for (const secret of ['device-a', first.cwd, first.hostName, 'make watch', syncKey, Buffer.from(syncKeyBytes).toString('base64')]) {
      assert.equal(stored.includes(secret), false, `server data must not contain ${JSON.stringify(secret)}`);
    }
    oldEnvelopeOfA = (await serverBlob(slotA)).data;
  });

  it('the cached list survives a restart of the device while the server is down', async function () {
    await deviceB.stop();
    await server.stop();
    deviceB = startB(server.url);
    const fromCache = await deviceB.waitForSession(first.id);
    assert.deepEqual(fromCache.slots.find((s) => s.deviceName === 'device-a')?.blob.sessions, [first]);
    await deviceB.waitForState('offline');
  });

  it('catches up on both sides when the server comes back', async function () {
    // A changes its sessions while the server is down; the write waits and retries.
    const mark = deviceB.output.lines.length;
    const markA = deviceA.output.lines.length;
    deviceA.publish([first, second]);
    await deviceA.waitForState('offline');
    server = await ServerProcess.start(dataDir, server.port);
    const seen = await deviceB.waitForSession(second.id, mark);
    assert.deepEqual(seen.slots.find((s) => s.deviceName === 'device-a')?.blob.sessions, [first, second]);
    // Both "live" after the restart (from the marks): a "live" from before it says nothing about
    // A's stream now, and the presence test below needs A to hold one.
    await Promise.all([deviceA.waitForState('live', markA), deviceB.waitForState('live', mark)]);
  });

  it('a writer without the slot version resolves the 412 and its write lands', async function () {
    // Same slot as A but no saved state: it must create, get 412, learn the version and replace.
    const third = sampleSession();
    const stray = new SyncClient({ serverUrl: server.url, syncKey: syncKeyBytes, slotId: slotA, deviceName: 'device-a', stateDir: path.join(root, 'stray'), writeDebounceMs: 10 });
    const before = await serverBlob(slotA);
    try {
      await stray.start();
      stray.publish([third]);
      assert.equal(await stray.flush(), true, 'the write landed');
    } finally {
      await stray.stop();
    }
    assert.ok((await serverBlob(slotA)).version > before.version);
    await deviceB.waitForSession(third.id);
    // Device A still believes the old version: its next write meets a 412 too, and wins again.
    const mark = deviceB.output.lines.length;
    deviceA.publish([first, second]);
    await deviceB.waitForSession(second.id, mark);
  });

  // This test used to time out now and then (issue 13). The cause was in the test: it waited for
  // "B saw A online" and "A live" from the first line of the output, so a line from before the
  // server restart passed while A's stream had not come back yet. Stopping A then changed nothing
  // on the server (A held no stream), so no "offline" ever came. Writes that land sooner (a shorter
  // debounce) made that window more likely. Now both waits only count what B and A said lately.
  it('tracks presence: B sees A online, then offline when A stops', async function () {
    type PresenceLine = { type: string; slots?: Array<{ slotId: string; online?: boolean }> };
    const aOnline = (online: boolean) => (line: Record<string, unknown>): boolean =>
      line.type === 'remote' && ((line as PresenceLine).slots ?? []).some((slot) => slot.slotId === slotA && slot.online === online);
    // From B's latest remote line on: what B believes now, not what it once saw.
    const lines = deviceB.output.lines;
    let latest = lines.length - 1;
    while (latest > 0 && !(typeof lines[latest] === 'object' && (lines[latest] as { type?: string }).type === 'remote')) latest--;
    await deviceB.output.waitFor(aOnline(true), Math.max(0, latest));
    const mark = deviceB.output.lines.length;
    await deviceA.stop();
    await deviceB.output.waitFor(aOnline(false), mark);
  });

  it('a garbage-answering fake server never erases a valid cache', async function () {
    await deviceB.stop();
    const copy = path.join(root, 'device-b-copy');
    await fs.cp(stateB, copy, { recursive: true });
    const say = (message: string): void => console.log(`[garbage ${performance.now().toFixed(0)}] ${message}`);
    const fake = await startGarbageServer({ slotA, oldEnvelopeOfA, currentEnvelopeOfA: (await serverBlob(slotA)).data });
    const states: SyncStateChange[] = [];
    const client = new SyncClient({
      serverUrl: fake.url,
      syncKey: syncKeyBytes,
      slotId: slotB,
      deviceName: 'device-b',
      stateDir: copy,
      pollIntervalMs: 50,
      reconnectInitialMs: 20,
      reconnectMaxMs: 100,
      requestTimeoutMs: 500,
      maxResponseBytes: 1024 * 1024,
      maxEventBytes: 64 * 1024,
      ...(process.env.TETHER_TEST_VERBOSE ? { log: { debug: say, info: say, warn: say, error: say } } : {}),
    });
    client.onDidChangeState((state) => states.push(state));
    try {
      await client.start();
      const cached = sessionIds(client.getRemoteState());
      assert.deepEqual(cached, [first.id, second.id].sort(), 'the cache was loaded');
      const gaveUp = new AbortController();
      try {
        await Promise.race([fake.allServed, delay(40_000, undefined, { signal: gaveUp.signal }).then(() => assert.fail(`the fake server was not asked for every variant: ${fake.progress()}`))]);
      } finally {
        gaveUp.abort();
      }
      assert.deepEqual(sessionIds(client.getRemoteState()), cached, 'garbage did not change the remote state');
      assert.ok(states.some((s) => s.state === 'error'), 'garbage is reported as an error state');
    } finally {
      await client.stop();
      await fake.close();
    }
    // And on disk: a fresh client with no server at all still lists the same sessions.
    const reopened = new SyncClient({ serverUrl: 'http://127.0.0.1:9', syncKey: syncKeyBytes, slotId: slotB, deviceName: 'device-b', stateDir: copy });
    try {
      await reopened.start();
      assert.deepEqual(sessionIds(reopened.getRemoteState()), [first.id, second.id].sort());
      await until(reopened, () => reopened.state.state === 'offline');
    } finally {
      await reopened.stop();
    }
  });
});

interface GarbageOptions {
  slotA: string;
  oldEnvelopeOfA: string;
  currentEnvelopeOfA: string;
}

/**
 * A FAKE sync server that answers every request with a different kind of garbage: malformed JSON,
 * wrong shapes, undecryptable or rolled-back or moved blobs, oversized and endless bodies, and
 * event streams that misbehave. `allServed` resolves once every variant has been served.
 */
async function startGarbageServer(options: GarbageOptions): Promise<{ url: string; allServed: Promise<void>; progress(): string; close(): Promise<void> }> {
  const json = (res: ServerResponse, body: unknown, status = 200): void => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const otherSlot = newSessionId();
  const listVariants: Array<(res: ServerResponse) => void> = [
    (res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html><body>502 Bad Gateway</body></html>');
    },
    (res) => json(res, '{"blobs":[{"slotId":'),
    (res) => json(res, 'null'),
    (res) => json(res, { blobs: 'nope' }),
    (res) => json(res, '{"__proto__":{"blobs":[]}}'),
    (res) => json(res, { blobs: [{ junk: true }, { slotId: '../../etc/passwd', version: 1, data: '' }] }),
    (res) => json(res, { blobs: [{ slotId: options.slotA, version: 999, data: Buffer.from('x'.repeat(200)).toString('base64') }] }),
    (res) => json(res, { blobs: [{ slotId: options.slotA, version: 1000, data: options.oldEnvelopeOfA }] }),
    (res) => json(res, { blobs: [{ slotId: options.slotA, version: 1001, data: 'not base64 at all!' }, { slotId: otherSlot, version: 1, data: options.currentEnvelopeOfA }] }),
    (res) => json(res, { blobs: [{ slotId: options.slotA, version: '7', data: options.currentEnvelopeOfA, __proto__: { version: 8 } }] }),
    (res) => json(res, { error: 'internal' }, 500),
    (res) => {
      // Declared huge.
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(50 * 1024 * 1024) });
      res.write('{"blobs":[');
      setTimeout(() => res.destroy(), 200);
    },
    (res) => {
      // Huge without a declared length: the client must stop reading at its cap.
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 8 * 1024 * 1024 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.write('{"blobs":[');
      pump();
    },
    (res) => {
      // Endless and slow: only the client's own timeout ends it.
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"blobs":[');
      const timer = setInterval(() => res.write(' '), 20);
      res.on('close', () => clearInterval(timer));
    },
  ];
  const eventVariants: Array<(res: ServerResponse) => void> = [
    (res) => {
      // One endless event: a data line that never ends.
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('event: blob\ndata: ');
      const chunk = 'A'.repeat(16 * 1024);
      const timer = setInterval(() => res.write(chunk), 5);
      res.on('close', () => clearInterval(timer));
    },
    (res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('id: 1\nevent: blob\ndata: {not json\n\n');
      res.write(`id: 2\nevent: blob\ndata: ${JSON.stringify({ slotId: options.slotA, version: 2000, data: options.oldEnvelopeOfA })}\n\n`);
      res.write(`id: 3\nevent: blob\ndata: ${JSON.stringify({ slotId: otherSlot, version: 1, data: options.currentEnvelopeOfA })}\n\n`);
      res.write('id: 4\nevent: delete\ndata: {"slotId":"../../x"}\n\n');
      res.write('id: 5\nevent: presence\ndata: 42\n\n');
      res.write('id: \u001b[2J\nevent: bogus\ndata: \u0000\n\n');
      res.write('\u0000\u0001garbage without structure\r\r\n\n');
      setTimeout(() => res.end(), 20);
    },
    (res) => {
      res.writeHead(404, { 'Content-Type': 'text/html' });
      res.end('<h1>not here</h1>');
    },
    (res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('event: reset\n\n');
    },
  ];
  const served = { list: new Set<number>(), events: new Set<number>() };
  let listCount = 0;
  let eventCount = 0;
  let resolveAll!: () => void;
  const allServed = new Promise<void>((resolve) => (resolveAll = resolve));
  const requests: string[] = [];
  const others: Array<{ text: string; closed: string }> = [];
  const started = performance.now();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    requests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/v1/events') {
      const index = eventCount++ % eventVariants.length;
      served.events.add(index);
      eventVariants[index]!(res);
    } else {
      const index = listCount++ % listVariants.length;
      served.list.add(index);
      const entry = { text: `${req.method} ${url.pathname} got variant ${index} at ${Math.round(performance.now() - started)} ms`, closed: '' };
      others.push(entry);
      res.on('close', () => (entry.closed = `, closed at ${Math.round(performance.now() - started)} ms`));
      listVariants[index]!(res);
    }
    // Resolve only after a full second round, so the first round's effects have been handled.
    if (listCount > listVariants.length * 2 && eventCount > eventVariants.length * 2 && served.list.size === listVariants.length && served.events.size === eventVariants.length) {
      resolveAll();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    allServed,
    progress: () => `${listCount} list requests (variants ${[...served.list].sort((a, b) => a - b).join(',')}), ${eventCount} event streams (variants ${[...served.events].sort((a, b) => a - b).join(',')}); last requests: ${requests.slice(-6).join(' ')}; last other requests: ${others.slice(-4).map((o) => o.text + o.closed).join('; ')}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('sync client state across restarts (real server, in-process clients)', function () {
  const root = tempRoot();
  const syncKey = generateSyncKey();
  const writerSlot = newSessionId();
  const readerSlot = newSessionId();
  let server: ServerProcess;
  let reader: SyncClient;
  const clients: SyncClient[] = [];

  const client = (slotId: string, stateDir: string, now?: () => number): SyncClient => {
    const name = slotId === writerSlot ? 'writer' : 'reader';
    const say = (level: string) => (message: string) => process.env.TETHER_TEST_VERBOSE && console.log(`[${name} ${level}] ${message}`);
    const log = { debug: say('debug'), info: say('info'), warn: say('warn'), error: say('error') };
    const created = new SyncClient({ serverUrl: server.url, syncKey, slotId, deviceName: name, stateDir, writeDebounceMs: 10, log, ...(now ? { now } : {}) });
    clients.push(created);
    return created;
  };
  const writerBlob = (): RemoteState['slots'][number]['blob'] | undefined => reader.getRemoteState().slots.find((s) => s.slotId === writerSlot)?.blob;

  before(async function () {
    await fs.mkdir(root, { recursive: true });
    server = await ServerProcess.start(path.join(root, 'data'));
    reader = client(readerSlot, path.join(root, 'reader'));
    await reader.start();
  });

  after(async function () {
    await Promise.all(clients.map((c) => c.stop()));
    await server?.stop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('keeps seq rising across a restart even when the clock goes back', async function () {
    const base = Date.now();
    const [one, two, three] = [sampleSession(), sampleSession(), sampleSession()];
    const first = client(writerSlot, path.join(root, 'writer'), () => base);
    await first.start();
    first.publish([one]);
    assert.equal(await first.flush(), true);
    await until(reader, () => writerBlob()?.sessions.some((s) => s.id === one.id) ?? false);
    await first.stop();

    // Same state folder, clock an hour behind: the persisted seq keeps it above what readers saw.
    const restarted = client(writerSlot, path.join(root, 'writer'), () => base - 3_600_000);
    await restarted.start();
    restarted.publish([one, two]);
    assert.equal(await restarted.flush(), true);
    await until(reader, () => writerBlob()?.sessions.some((s) => s.id === two.id) ?? false);
    await restarted.stop();

    // State lost and clock two hours behind: the 412 path reads our own slot and jumps past its seq.
    const reinstalled = client(writerSlot, path.join(root, 'writer-reinstalled'), () => base - 7_200_000);
    await reinstalled.start();
    reinstalled.publish([three]);
    assert.equal(await reinstalled.flush(), true);
    await until(reader, () => writerBlob()?.sessions.some((s) => s.id === three.id) ?? false);
    await reinstalled.stop();
  });

  it('a device whose network vanishes (no FIN) shows offline to the others once its stream lease runs out', async function () {
    // The server only hears of a vanished peer from TCP after many minutes; the lease ends it sooner.
    const proxy = await TcpProxy.start(Number(new URL(server.url).port));
    const slot = newSessionId();
    const laptop = new SyncClient({ serverUrl: `http://127.0.0.1:${proxy.port}`, syncKey, slotId: slot, deviceName: 'laptop', stateDir: path.join(root, 'laptop'), streamLeaseSeconds: 2 });
    clients.push(laptop);
    try {
      laptop.publish([sampleSession()]);
      await laptop.start();
      const online = (): boolean | undefined => reader.getRemoteState().slots.find((s) => s.slotId === slot)?.online;
      await until(reader, () => online() === true);
      // Renewals keep it: three lease periods later it has not blinked offline once.
      let blinked = false;
      const watch = reader.onDidChangeRemote(() => (blinked ||= online() !== true));
      await delay(6_500);
      watch.dispose();
      assert.equal(blinked, false, 'a renewing device stays online');
      assert.equal(online(), true);

      proxy.freeze(); // the network is gone: nothing arrives, nothing closes
      proxy.setRefusing(true);
      const cutAt = Date.now();
      await until(reader, () => online() === false);
      const seconds = (Date.now() - cutAt) / 1000;
      // Lease 2 s, checked every second; the last renewal may be up to 2/3 s old at the cut.
      assert.ok(seconds <= 4, `offline after ${seconds.toFixed(1)} s (lease 2 s)`);
      assert.ok(server.logs().some((record) => record.msg === 'stream_lease_expired'), 'the server says why it ended the stream');
    } finally {
      await laptop.stop();
      await proxy.close();
    }
  });

  it('drops hostile entries that a device holding the key wrote, and keeps the good ones', async function () {
    // A compromised or buggy device can encrypt anything: the reader still validates every field.
    const hostileSlot = newSessionId();
    const good = sampleSession({ cwd: '/srv/$(rm -rf ~); `id`' });
    const api = new SyncServerApi({ serverUrl: server.url, token: deriveSyncKeys(syncKey).token });
    const plaintext = {
      format: 1,
      slotId: hostileSlot,
      deviceName: '\u001b]0;pwned\u0007evil\u001b[2J box',
      seq: 1,
      writtenAt: Date.now(),
      sessions: [
        good,
        { ...sampleSession(), hostName: '-oProxyCommand=sh -c reboot' },
        { ...sampleSession(), id: '../../../../etc/passwd' },
        { ...sampleSession(), port: 70000 },
        { ...sampleSession(), cwd: 'x'.repeat(100_000) },
        { ...sampleSession(), title: '\u001b[31mred\u001b[0m' },
      ],
      tombstones: [{ id: 'nope', killedAt: Date.now() }],
    };
    assert.equal((await api.putBlob(hostileSlot, sealEnvelope(deriveSyncKeys(syncKey).encryptionKey, plaintext), undefined)).ok, true);
    await until(reader, () => reader.getRemoteState().slots.some((s) => s.slotId === hostileSlot));
    const blob = reader.getRemoteState().slots.find((s) => s.slotId === hostileSlot)!.blob;
    assert.equal(blob.deviceName, 'evil box');
    assert.deepEqual(blob.sessions.map((s) => s.id), [good.id, plaintext.sessions[5]!.id]);
    assert.equal(blob.sessions[0]!.cwd, good.cwd);
    assert.equal(blob.sessions[1]!.title, 'red');
    assert.deepEqual(blob.tombstones, []);
  });

  it('keeps a tombstone across a restart and publishes it to other devices', async function () {
    const killed = sampleSession();
    const dir = path.join(root, 'writer');
    const first = client(writerSlot, dir);
    await first.start();
    first.publish([killed]);
    first.publishTombstone(killed.id);
    assert.equal(await first.flush(), true);
    await first.stop();
    const restarted = client(writerSlot, dir);
    await restarted.start();
    restarted.publish([]);
    assert.equal(await restarted.flush(), true);
    await until(reader, () => {
      const blob = writerBlob();
      return blob !== undefined && blob.sessions.length === 0 && blob.tombstones.some((t) => t.id === killed.id);
    });
  });
});
