/**
 * Tampering: blobs with flipped bits, truncated, replayed, rolled back, moved to another slot or
 * encrypted with another key (PUT to the real server with the account token, as a compromised
 * server could serve them), and a fake server (FakeSyncServer) that answers garbage, huge bodies or
 * an endless stream. All rejected, none crashes the client, none erases its valid cached state.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sealEnvelope } from '../../src/sync/envelope';
import { type SyncBlob } from '../../src/sync/blob';
import { SyncClient } from '../../src/sync/syncClient';
import { SyncServerApi } from '../../src/sync/syncHttp';
import { deriveSyncKeys, generateSyncKey } from '../../src/sync/syncKey';
import { newSessionId } from '../../src/common/sessionId';
import { CapturingLog, SyncServer, report, sleep, tempDir, waitUntil } from './common';

type FakeMode = 'garbage' | 'wrong-shape' | 'huge' | 'endless' | 'other-key-blobs' | 'reset-storm' | 'silent';

/** A FAKE sync server: answers every request in one hostile way. Not the real server. */
class FakeSyncServer {
  requests = 0;
  private readonly sockets = new Set<import('node:net').Socket>();
  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(mode: FakeMode, extra: { otherKeyBlob?: () => object } = {}): Promise<FakeSyncServer> {
    let fake: FakeSyncServer | undefined;
    const timers = new Set<NodeJS.Timeout>();
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      fake!.requests++;
      const events = (req.url ?? '').startsWith('/v1/events');
      res.on('close', () => undefined);
      switch (mode) {
        case 'garbage':
          res.writeHead(200, { 'content-type': events ? 'text/event-stream' : 'application/json' });
          res.end(events ? 'event: blob\ndata: {{{{not json\n\nevent: presence\ndata: \u0000\u0001\n\n' : '<<<garbage \u0000 not json>>>');
          return;
        case 'wrong-shape':
          res.writeHead(200, { 'content-type': events ? 'text/event-stream' : 'application/json' });
          if (events) {
            res.write('retry: 1\n\n');
            res.write(`event: blob\ndata: ${JSON.stringify({ slotId: '../../etc/passwd', version: -1, data: '!!!' })}\n\n`);
            res.write(`event: delete\ndata: ${JSON.stringify({ slotId: { toString: 1 } })}\n\n`);
            res.write('event: presence\ndata: {"slots":"all"}\n\n');
            res.write(`id: ${'9'.repeat(500)}\nevent: presence\ndata: {"slots":[{"slotId":"zz","online":"yes"}]}\n\n`);
            return; // stays open
          }
          res.end(JSON.stringify({ blobs: 'nope', __proto__: { polluted: true } }));
          return;
        case 'huge': {
          res.writeHead(200, { 'content-type': events ? 'text/event-stream' : 'application/json', ...(events ? {} : { 'content-length': String(2 ** 31) }) });
          const chunk = Buffer.alloc(64 * 1024, events ? 0x41 : 0x20);
          if (events) res.write('data: ');
          const pump = (): void => {
            while (!res.destroyed && res.write(chunk)) {
              /* fill the socket */
            }
            if (!res.destroyed) res.once('drain', pump);
          };
          pump();
          return;
        }
        case 'endless': {
          // Headers, then a byte now and then, forever: only a timeout or a watchdog ends it.
          res.writeHead(200, { 'content-type': events ? 'text/event-stream' : 'application/json' });
          res.flushHeaders();
          if (!events) res.write('{"blobs":[');
          const timer = setInterval(() => {
            if (res.destroyed) return clearInterval(timer);
            if (!events) res.write(' ');
          }, 100);
          timers.add(timer);
          return;
        }
        case 'other-key-blobs':
          res.writeHead(200, { 'content-type': events ? 'text/event-stream' : 'application/json', etag: '"x"' });
          if (events) {
            res.write(`event: blob\ndata: ${JSON.stringify(extra.otherKeyBlob!())}\n\n`);
            return;
          }
          res.end(JSON.stringify({ blobs: [extra.otherKeyBlob!()] }));
          return;
        case 'silent':
          return; // accepts the request and never answers: a hung server (or a SIGSTOPped one)
        case 'reset-storm':
          res.writeHead(events ? 200 : 503, { 'content-type': events ? 'text/event-stream' : 'application/json', 'retry-after': '0' });
          if (events) {
            for (let i = 0; i < 200; i++) res.write('event: reset\ndata: {}\n\n');
            res.end();
            return;
          }
          res.end('{"error":"shutting_down","message":"\u001b[31mred\u001b[0m"}');
          return;
      }
    });
    server.on('connection', (socket) => {
      fake!.sockets.add(socket);
      socket.on('close', () => fake!.sockets.delete(socket));
    });
    server.on('close', () => timers.forEach(clearInterval));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    fake = new FakeSyncServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return fake;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('reliability: tampering and hostile servers', function () {
  this.timeout(600_000);
  let server: SyncServer;
  const key = generateSyncKey();
  const keys = deriveSyncKeys(key);
  const writerSlot = newSessionId();
  const readerSlot = newSessionId();
  const readerState = tempDir('tetherrel-tamper-reader-');
  const readerLog = new CapturingLog();
  let reader: SyncClient;
  let api: SyncServerApi;
  let validBlob: SyncBlob;
  const history: Uint8Array[] = [];
  let unhandled = 0;
  const onUnhandled = (): void => {
    unhandled++;
  };

  const clientAt = (url: string, stateDir: string, log: CapturingLog, slotId = readerSlot): SyncClient =>
    new SyncClient({ serverUrl: url, syncKey: key, slotId, deviceName: 'reader', stateDir, log, pollIntervalMs: 200, reconnectInitialMs: 100, reconnectMaxMs: 400, requestTimeoutMs: 1500, streamIdleTimeoutMs: 1500, maxResponseBytes: 4 * 1024 * 1024, maxEventBytes: 512 * 1024 });

  const writerBlobAt = (client: SyncClient): SyncBlob | undefined => client.getRemoteState().slots.find((slot) => slot.slotId === writerSlot)?.blob;

  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    server = await SyncServer.start({ dataDir: tempDir('tetherrel-tamper-data-') });
    api = new SyncServerApi({ serverUrl: server.url, token: keys.token });
    // The real writer publishes three revisions; every envelope it stored is kept for replays.
    const writer = new SyncClient({ serverUrl: server.url, syncKey: key, slotId: writerSlot, deviceName: 'writer', stateDir: tempDir('tetherrel-tamper-writer-'), writeDebounceMs: 5 });
    await writer.start();
    for (let rev = 0; rev < 3; rev++) {
      writer.publish([{ id: newSessionId(), hostLabel: `valid-${rev}`, user: 'dev', hostName: '127.0.0.1', port: 22, multiplexer: 'tmux', cwd: '/tmp', startedAt: Date.now(), title: `rev-${rev}` }]);
      assert.equal(await writer.flush(), true);
      history.push((await api.getBlob(writerSlot))!.data);
      await sleep(5);
    }
    await writer.stop(); // from here on only the attacker writes this slot
    reader = clientAt(server.url, readerState, readerLog);
    await reader.start();
    await waitUntil(() => writerBlobAt(reader)?.sessions[0]?.title === 'rev-2', 10_000, 'reader has the valid blob');
    validBlob = writerBlobAt(reader)!;
  });

  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
    await reader?.stop();
    await server?.stop();
  });

  it('rejects flipped bits, truncation, replay, rollback, a moved blob and another key, keeping the valid state', async () => {
    const current = history[2];
    const otherSlot = newSessionId();
    const otherKey = deriveSyncKeys(generateSyncKey()).encryptionKey;
    const attacks: Array<{ name: string; data: Uint8Array }> = [];
    for (const position of [0, 1, 12, 24, 25, 40, current.length - 17, current.length - 1]) {
      for (const bit of [0, 7]) {
        const flipped = new Uint8Array(current);
        flipped[position] ^= 1 << bit;
        attacks.push({ name: `bit ${bit} of byte ${position} flipped`, data: flipped });
      }
    }
    for (const length of [1, 24, 25, 40, current.length - 1]) attacks.push({ name: `truncated to ${length} bytes`, data: current.subarray(0, length) });
    attacks.push({ name: 'replayed (same seq)', data: current });
    attacks.push({ name: 'rolled back to rev 0', data: history[0] });
    attacks.push({ name: 'rolled back to rev 1', data: history[1] });
    attacks.push({ name: 'moved from another slot', data: sealEnvelope(keys.encryptionKey, { ...validBlob, slotId: otherSlot, seq: Date.now() + 10_000 }) });
    attacks.push({ name: 'encrypted with another key', data: sealEnvelope(otherKey, { ...validBlob, seq: Date.now() + 20_000 }) });
    attacks.push({ name: 'unsupported envelope version', data: (() => { const d = new Uint8Array(sealEnvelope(keys.encryptionKey, { ...validBlob, seq: Date.now() + 30_000 })); d[0] = 2; return d; })() });
    attacks.push({ name: 'extended with trailing bytes', data: new Uint8Array(Buffer.concat([Buffer.from(current), Buffer.alloc(16)])) });

    let rejected = 0;
    let refusedByServer = 0;
    let accepted = 0;
    let changedState = 0;
    for (const attack of attacks) {
      const linesBefore = readerLog.lines.length;
      const version = (await api.getBlob(writerSlot))!.version;
      const put = await api.putBlob(writerSlot, attack.data, version).catch((error: Error) => error);
      if (put instanceof Error) {
        refusedByServer++; // the server itself refused it (e.g. a body it cannot decode)
        continue;
      }
      // Wait until the reader has seen this version (stream or poll) and said something about it.
      await waitUntil(() => readerLog.lines.slice(linesBefore).some((line) => /ignored the blob|unchanged|rolled-back|already seen/.test(line)), 10_000, `reader reacts to: ${attack.name}`).catch(() => undefined);
      const now = writerBlobAt(reader);
      if (JSON.stringify(now) !== JSON.stringify(validBlob)) {
        changedState++;
        console.log(`      ${attack.name}: the reader's state changed`);
      } else if (readerLog.lines.slice(linesBefore).some((line) => /ignored the blob|unchanged/.test(line))) {
        rejected++;
      } else {
        accepted++;
        console.log(`      ${attack.name}: no rejection logged`);
      }
    }
    // The cache on disk still holds the valid state: a restart with the server unreachable lists it.
    await reader.stop();
    const offline = clientAt('http://127.0.0.1:9', readerState, new CapturingLog());
    await offline.start();
    const cached = writerBlobAt(offline);
    await offline.stop();
    reader = clientAt(server.url, readerState, readerLog);
    await reader.start();
    await sleep(1000);
    const afterRestart = writerBlobAt(reader);
    report({
      scenario: 'Tampered blobs (real server, real token)',
      iterations: attacks.length,
      counts: { 'rejected by the client': rejected, 'refused by the server': refusedByServer, 'accepted silently': accepted, 'valid state changed': changedState, 'cache intact after restart': JSON.stringify(cached) === JSON.stringify(validBlob) ? 'yes' : 'no', 'unhandled errors': unhandled },
    });
    assert.equal(changedState, 0);
    assert.equal(accepted, 0);
    assert.deepEqual(cached, validBlob, 'the on-disk cache kept the valid blob');
    assert.deepEqual(afterRestart, validBlob, 'a restart against the tampered server keeps the valid blob');
    assert.equal(unhandled, 0);
  });

  it('survives a FakeSyncServer answering garbage, wrong shapes, huge bodies, endless streams and other-key blobs', async () => {
    await reader.stop();
    const modes: FakeMode[] = ['garbage', 'wrong-shape', 'huge', 'endless', 'other-key-blobs', 'reset-storm'];
    const otherKey = deriveSyncKeys(generateSyncKey()).encryptionKey;
    const otherKeyBlob = (): object => ({ slotId: writerSlot, version: 999, data: Buffer.from(sealEnvelope(otherKey, { ...validBlob, seq: Date.now() + 60_000 })).toString('base64') });
    const rows: Record<string, string> = {};
    let kept = 0;
    let crashed = 0;
    for (const mode of modes) {
      const fake = await FakeSyncServer.start(mode, { otherKeyBlob });
      const stateDir = tempDir(`tetherrel-fake-${mode}-`);
      cpSync(readerState, stateDir, { recursive: true });
      const log = new CapturingLog();
      const heapBefore = process.memoryUsage().heapUsed;
      const unhandledBefore = unhandled;
      const client = clientAt(fake.url, stateDir, log);
      let state = 'off';
      try {
        await client.start();
        await sleep(4000);
        state = client.state.state;
      } catch {
        crashed++;
      }
      const blob = writerBlobAt(client);
      await client.stop();
      await fake.close();
      // The cache on disk is still the valid one.
      const again = clientAt('http://127.0.0.1:9', stateDir, new CapturingLog());
      await again.start();
      const cached = writerBlobAt(again);
      await again.stop();
      const ok = JSON.stringify(blob) === JSON.stringify(validBlob) && JSON.stringify(cached) === JSON.stringify(validBlob);
      if (ok) kept++;
      const heapGrowthMb = Math.round((process.memoryUsage().heapUsed - heapBefore) / 1e6);
      rows[mode] = `${ok ? 'kept' : 'LOST'} state=${state} requests=${fake.requests} heap+${heapGrowthMb}MB`;
      if (unhandled !== unhandledBefore) crashed++;
      // A server that speaks the protocol but serves blobs no one here can open is "live" with nothing to show.
      if (mode !== 'other-key-blobs') assert.notEqual(state, 'live', `${mode}: a fake server must not look healthy`);
      assert.ok(heapGrowthMb < 200, `${mode}: memory grew by ${heapGrowthMb} MB`);
    }
    report({ scenario: 'FakeSyncServer (hostile answers)', iterations: modes.length, counts: { ...rows, 'valid cache kept': `${kept}/${modes.length}`, 'crashes / unhandled': crashed } });
    assert.equal(kept, modes.length);
    assert.equal(crashed, 0);
  });

  // BUG (reported to the lead): SyncClient.connect() opens the event stream with no time limit on the
  // response headers and starts neither the watchdog nor polling until 'open'. A server that accepts
  // the connection and never answers (hung, SIGSTOPped, a dead proxy) leaves the client 'connecting'
  // forever with one request made: no fallback, no retry. Un-skip once the stream request has a
  // header timeout (or polling starts at connect()).
  it('leaves "connecting" and falls back to polling when the server accepts but never answers', async () => {
    const fake = await FakeSyncServer.start('silent');
    const stateDir = tempDir('tetherrel-fake-silent-');
    cpSync(readerState, stateDir, { recursive: true });
    const client = clientAt(fake.url, stateDir, new CapturingLog());
    try {
      await client.start();
      await sleep(8000);
      const state = client.state.state;
      const requests = fake.requests;
      report({ scenario: 'FakeSyncServer that never answers', iterations: 1, counts: { state, requests } });
      assert.notEqual(state, 'connecting', 'still connecting after 8 s against a server that never answers');
      assert.ok(requests > 1, 'no retry and no polling');
    } finally {
      await client.stop();
      await fake.close();
    }
  });
});
