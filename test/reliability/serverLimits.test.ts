/**
 * An internet-facing sync server (issue 14): limits that hold against one hostile address, run
 * against the real server bundle over real sockets. Junk slots written with a token alone, streams
 * and connections from one address, invented tokens, slow bodies, silent connections, bodies cut
 * off mid-way. Raw sockets (node:net) where the timing of bytes is the point.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { SyncClient } from '../../src/sync/syncClient';
import { generateSyncKey, deriveSyncKeys } from '../../src/sync/syncKey';
import { newSessionId } from '../../src/common/sessionId';
import { CapturingLog, SyncServer, report, sleep, tempDir, waitUntil } from './common';

const CLIENT_LIST_CAP = 8 * 1024 * 1024;

interface RawAnswer {
  status?: number;
  /** Milliseconds from connect until the server closed the socket (or our give-up). */
  closedAfterMs: number;
  closedByServer: boolean;
  text: string;
}

/** Opens a socket from `localAddress`, writes `parts` with `gapMs` between them, and waits for the server to close (at most `maxMs`). */
function rawExchange(port: number, parts: string[], options: { gapMs?: number; maxMs?: number; localAddress?: string; destroyAfterParts?: boolean } = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, localAddress: options.localAddress });
    let text = '';
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(giveUp);
      socket.destroy();
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : undefined, closedAfterMs: performance.now() - started, closedByServer, text });
    };
    const giveUp = setTimeout(() => finish(false), options.maxMs ?? 30_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', async () => {
      for (const part of parts) {
        if (done) return;
        socket.write(part);
        if (options.gapMs) await sleep(options.gapMs);
      }
      if (options.destroyAfterParts) {
        socket.resetAndDestroy();
        finish(false);
      }
    });
  });
}

/** Opens an event stream on a raw socket; resolves with its status once headers arrive, the socket kept open when 200. */
function openStream(port: number, token: string, options: { localAddress?: string; forwardedFor?: string } = {}): Promise<{ status: number; socket: Socket; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: options.localAddress });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(
        `GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n` +
          (options.forwardedFor ? `X-Forwarded-For: ${options.forwardedFor}\r\n` : '') +
          '\r\n',
      ),
    );
    const onData = (chunk: string): void => {
      text += chunk;
      const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (match && text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve({ status: Number(match[1]), socket, body: text });
      }
    };
    socket.on('data', onData);
    socket.on('close', () => reject(new Error(`closed before headers: ${JSON.stringify(text.slice(0, 200))}`)));
  });
}

function serverLogs(server: SyncServer): Array<Record<string, unknown>> {
  return server.lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

function put(url: string, token: string, slotId: string, data: string): Promise<Response> {
  return fetch(`${url}/v1/blobs/${slotId}`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'If-None-Match': '*' },
    body: JSON.stringify({ data }),
  });
}

describe('reliability: an internet-facing sync server (issue 14)', function () {
  this.timeout(180_000);

  it('junk slots written with the token alone fill a quota that stays under what a client accepts; the device keeps syncing', async () => {
    // Server defaults for every limit under test (slots, blob size, account quota).
    const server = await SyncServer.start({ dataDir: tempDir('tetherrel-junk-') });
    const syncKey = generateSyncKey();
    const { token } = deriveSyncKeys(syncKey);
    const writerSlot = newSessionId();
    const readerSlot = newSessionId();
    const writer = new SyncClient({ serverUrl: server.url, syncKey, slotId: writerSlot, deviceName: 'writer', stateDir: tempDir('tetherrel-junk-w-'), writeDebounceMs: 5 });
    const readerLog = new CapturingLog();
    const reader = new SyncClient({ serverUrl: server.url, syncKey, slotId: readerSlot, deviceName: 'reader', stateDir: tempDir('tetherrel-junk-r-'), log: readerLog, pollIntervalMs: 300, reconnectInitialMs: 100, reconnectMaxMs: 500 });
    try {
      await writer.start();
      writer.publish([{ id: newSessionId(), hostLabel: 'web', user: 'dev', hostName: '127.0.0.1', port: 22, multiplexer: 'tmux', cwd: '/tmp', startedAt: Date.now(), title: 'valid' }]);
      assert.equal(await writer.flush(), true);

      // The attacker has the token only: 256 KiB junk blobs until the server refuses.
      const junk = randomBytes(256 * 1024).toString('base64');
      let accepted = 0;
      let refusedQuota = 0;
      let refusedOther = 0;
      for (let i = 0; i < 64; i++) {
        const response = await put(server.url, token, newSessionId(), junk);
        const body = (await response.json()) as { error?: string };
        if (response.ok) accepted++;
        else if (response.status === 409 && body.error === 'account_full') refusedQuota++;
        else refusedOther++;
      }
      // Top the quota up to the byte with small junk, as a careful attacker would.
      let small = 0;
      for (let size = 128 * 1024; size >= 64; size = Math.floor(size / 2)) {
        if ((await put(server.url, token, newSessionId(), randomBytes(size).toString('base64'))).ok) small++;
      }
      const list = await fetch(`${server.url}/v1/blobs`, { headers: { Authorization: `Bearer ${token}` } });
      const listBytes = (await list.arrayBuffer()).byteLength;
      assert.ok(accepted > 0 && refusedQuota > 0, `accepted ${accepted}, refused ${refusedQuota}`);
      assert.equal(refusedOther, 0);
      assert.ok(listBytes < CLIENT_LIST_CAP, `a full account's list is ${listBytes} bytes`);

      await reader.start();
      await waitUntil(() => reader.getRemoteState().slots.some((slot) => slot.slotId === writerSlot && slot.blob?.sessions[0]?.title === 'valid'), 15_000, 'the reader lists the valid device');
      await waitUntil(() => /skipped \d+ slot\(s\) on the server that do not open/.test(readerLog.text()), 10_000, 'the junk is logged');
      await sleep(1000);
      const state = reader.state.state;
      const shown = reader.getRemoteState().slots.filter((slot) => slot.blob !== undefined).length;
      const junkLogged = Number(/skipped (\d+) slot\(s\)/.exec(readerLog.text())?.[1] ?? 0);
      assert.equal(state, 'live', `reader state ${state}: ${reader.state.detail ?? ''}`);
      assert.equal(shown, 1);
      assert.equal(junkLogged, accepted + small);

      // What the quota costs the real device: its own small update still fits unless the attacker
      // filled the quota to the byte (then it is refused with a clear error: rotate the sync key).
      writer.publish([{ id: newSessionId(), hostLabel: 'web', user: 'dev', hostName: '127.0.0.1', port: 22, multiplexer: 'tmux', cwd: '/tmp', startedAt: Date.now(), title: 'valid-2' }]);
      const writerUpdated = await writer.flush();
      report({
        scenario: 'Junk slots with the token alone (256 KiB each, then smaller to fill the quota to the byte), server defaults',
        iterations: 64 + small,
        counts: {
          'junk accepted': accepted + small,
          'refused account_full': refusedQuota,
          'full list bytes': listBytes,
          'client cap': CLIENT_LIST_CAP,
          'reader state': state,
          'valid slots shown': `${shown}/1`,
          'junk slots skipped and logged': junkLogged,
          'writer update after fill': writerUpdated ? 'written' : 'refused (quota)',
        },
      });
    } finally {
      await reader.stop();
      await writer.stop();
      await server.stop();
    }
  });

  it('caps streams and connections per address and new accounts per address per hour (defaults), and believes X-Forwarded-For only from a trusted proxy', async () => {
    const server = await SyncServer.start({
      dataDir: tempDir('tetherrel-caps-'),
      // The defaults of the limits under test, restated over the test harness's generous account cap.
      args: ['--max-new-accounts-per-ip', '10', '--max-streams', '1000', '--trust-proxy', '127.0.0.9', '--ip-rate', '100000', '--ip-burst', '100000'],
    });
    const port = server.port;
    const sockets: Socket[] = [];
    try {
      // A real account: it holds a slot (written from 127.0.0.1, which spends one of that address's 10).
      const token = randomBytes(32).toString('base64url');
      assert.ok((await put(server.url, token, newSessionId(), 'QUJD')).ok);

      // 1. Invented tokens from one address: each is a new, empty account.
      const invented: Record<number, number> = {};
      for (let i = 0; i < 100; i++) {
        const stream = await openStream(port, randomBytes(32).toString('base64url'), { localAddress: '127.0.0.7' });
        invented[stream.status] = (invented[stream.status] ?? 0) + 1;
        if (stream.status === 200) sockets.push(stream.socket);
        else stream.socket.destroy();
      }
      assert.equal(invented[200], 10);
      assert.equal(invented[429], 90);
      for (const socket of sockets.splice(0)) socket.destroy();

      // 2. The real account, 448 streams from one address, as in the report.
      const fromOne: Record<number, number> = {};
      let refusedAtConnect = 0;
      for (let i = 0; i < 448; i++) {
        const stream = await openStream(port, token, { localAddress: '127.0.0.2' }).catch(() => undefined);
        if (!stream) {
          refusedAtConnect++;
          continue;
        }
        fromOne[stream.status] = (fromOne[stream.status] ?? 0) + 1;
        if (stream.status === 200) sockets.push(stream.socket);
        else stream.socket.destroy();
      }
      assert.equal(fromOne[200], 32);
      // 3. Other addresses are not affected.
      const other = await openStream(port, token, { localAddress: '127.0.0.3' });
      assert.equal(other.status, 200);
      sockets.push(other.socket);

      // 4. Connections per address: 200 silent sockets from one address.
      const idle: Array<Promise<RawAnswer>> = [];
      // Held for 6 s (the default headers timeout, 10 s, has not struck yet), so a loaded machine has
      // time to answer every refused one.
      for (let i = 0; i < 200; i++) idle.push(rawExchange(port, [], { localAddress: '127.0.0.4', maxMs: 6000 }));
      const idleAnswers = await Promise.all(idle);
      const refused429 = idleAnswers.filter((a) => a.status === 429 && a.closedByServer).length;
      const heldOpen = idleAnswers.filter((a) => !a.closedByServer).length;
      assert.deepEqual({ heldOpen, refused429 }, { heldOpen: 64, refused429: 136 });

      // 5. X-Forwarded-For: from the trusted proxy it names the client; from anyone else it is ignored.
      let proxied = 0;
      let proxiedRefused = 0;
      for (let client = 1; client <= 3; client++) {
        for (let i = 0; i < 40; i++) {
          const stream = await openStream(port, token, { localAddress: '127.0.0.9', forwardedFor: `6.6.6.6, 198.51.100.${client}` });
          if (stream.status === 200) {
            proxied++;
            sockets.push(stream.socket);
          } else {
            proxiedRefused++;
            stream.socket.destroy();
          }
        }
      }
      assert.equal(proxied, 3 * 32, 'each client behind the proxy has its own stream budget');
      let spoofed = 0;
      for (let i = 0; i < 40; i++) {
        const stream = await openStream(port, token, { localAddress: '127.0.0.5', forwardedFor: `203.0.113.${i}` });
        if (stream.status === 200) spoofed++;
        sockets.push(stream.socket);
      }
      assert.equal(spoofed, 32, 'a client that writes its own X-Forwarded-For gets no extra budget');
      const healthy = await fetch(`${server.url}/healthz`);
      assert.equal(healthy.status, 200);
      report({
        scenario: 'Per-address caps at their defaults (32 streams, 64 connections, 10 new accounts an hour); trusted proxy 127.0.0.9',
        iterations: 100 + 448 + 200 + 120 + 40,
        counts: {
          'invented-token streams opened / refused too_many_accounts': `${invented[200]}/${invented[429]}`,
          'streams of one account from one address opened': fromOne[200],
          'refused too_many_streams': fromOne[429] ?? 0,
          'refused at connect': refusedAtConnect,
          'another address still served': 'yes',
          'silent sockets held / refused 429': `${heldOpen}/${refused429}`,
          'streams via proxy for 3 clients': proxied,
          'spoofed X-Forwarded-For streams': spoofed,
        },
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await server.stop();
    }
  });

  it('closes slow bodies, slow headers and silent connections at their timeouts; event streams stay open', async () => {
    const server = await SyncServer.start({
      dataDir: tempDir('tetherrel-timeouts-'),
      args: ['--headers-timeout', '2', '--request-timeout', '4', '--idle-timeout', '3', '--heartbeat-ms', '60000'],
    });
    const port = server.port;
    const token = randomBytes(32).toString('base64url');
    try {
      const rounds = 5;
      const slowBody: RawAnswer[] = [];
      const slowHeaders: RawAnswer[] = [];
      const silent: RawAnswer[] = [];
      const afterRequest: RawAnswer[] = [];
      const body = JSON.stringify({ data: 'QUJD'.repeat(100) });
      await Promise.all(
        Array.from({ length: rounds }, async () => {
          // 4 bytes every second: never idle, but the whole request takes far longer than 4 s.
          const head = `PUT /v1/blobs/${newSessionId()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nIf-None-Match: *\r\nContent-Length: ${body.length}\r\n\r\n`;
          const chunks = [head, ...(body.match(/.{1,4}/g) ?? [])];
          slowBody.push(await rawExchange(port, chunks, { gapMs: 1000, maxMs: 20_000 }));
        }),
      );
      await Promise.all(
        Array.from({ length: rounds }, async () => {
          const lines = ['GET /v1/blobs HTTP/1.1\r\n', 'Host: x\r\n', ...Array.from({ length: 20 }, (_, i) => `X-Slow-${i}: y\r\n`)];
          slowHeaders.push(await rawExchange(port, lines, { gapMs: 500, maxMs: 20_000 }));
          silent.push(await rawExchange(port, [], { maxMs: 20_000 }));
          afterRequest.push(await rawExchange(port, [`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`], { maxMs: 20_000 }));
        }),
      );
      const stream = await openStream(port, token);
      assert.equal(stream.status, 200);
      let streamClosed = false;
      stream.socket.on('close', () => (streamClosed = true));
      await sleep(6000);
      const streamSurvived = !streamClosed;
      stream.socket.destroy();

      const closedWithin = (answers: RawAnswer[], ms: number): number => answers.filter((a) => a.closedByServer && a.closedAfterMs <= ms).length;
      const max = (answers: RawAnswer[]): number => Math.round(Math.max(...answers.map((a) => a.closedAfterMs)));
      // Bounds: the timeout, plus node's checking interval, plus a loaded machine's slack.
      assert.equal(closedWithin(slowBody, 9000), rounds, JSON.stringify(slowBody.map((a) => [a.status, Math.round(a.closedAfterMs)])));
      assert.equal(closedWithin(slowHeaders, 7000), rounds);
      assert.equal(closedWithin(silent, 7000), rounds);
      assert.equal(closedWithin(afterRequest, 7000), rounds);
      assert.ok(streamSurvived, 'an event stream is exempt from the idle timeout');
      assert.equal(slowBody.filter((a) => a.status === 408).length, rounds);
      const timedOutLogged = serverLogs(server).filter((line) => line.msg === 'request' && line.error === 'request_timeout' && line.status === 408).length;
      assert.equal(timedOutLogged, rounds, 'a slow body is logged as the timeout it is, not as a client abort');
      report({
        scenario: 'Timeouts: headers 2 s, request 4 s, idle 3 s; a body at 4 bytes/s, headers at a line per 0.5 s, a silent socket, an idle keep-alive',
        iterations: rounds * 4 + 1,
        counts: {
          'slow bodies closed (408)': `${closedWithin(slowBody, 9000)}/${rounds}, max ${max(slowBody)} ms`,
          'logged request_timeout': timedOutLogged,
          'slow headers closed': `${closedWithin(slowHeaders, 7000)}/${rounds}, max ${max(slowHeaders)} ms`,
          'silent sockets closed': `${closedWithin(silent, 7000)}/${rounds}, max ${max(silent)} ms`,
          'idle keep-alive closed': `${closedWithin(afterRequest, 7000)}/${rounds}, max ${max(afterRequest)} ms`,
          'event stream open after 6 s of silence': streamSurvived ? 'yes' : 'no',
        },
      });
    } finally {
      await server.stop();
    }
  });

  it('treats a client that aborts mid-body as a client abort: info level, no 500, the server keeps serving', async () => {
    const server = await SyncServer.start({ dataDir: tempDir('tetherrel-abort-') });
    const token = randomBytes(32).toString('base64url');
    try {
      const rounds = 30;
      for (let i = 0; i < rounds; i++) {
        const head = `PUT /v1/blobs/${newSessionId()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nIf-None-Match: *\r\nContent-Length: 100000\r\n\r\n`;
        // Half with a FIN after part of the body, half with a RST.
        await rawExchange(server.port, [head, `{"data":"${'QUJD'.repeat(250)}`], { gapMs: 50, destroyAfterParts: i % 2 === 1, maxMs: i % 2 === 1 ? 5000 : 300 });
      }
      await sleep(500);
      assert.ok((await put(server.url, token, newSessionId(), 'QUJD')).ok);
      const logs = serverLogs(server);
      const aborted = logs.filter((line) => line.msg === 'request' && line.error === 'client_aborted');
      const errors = logs.filter((line) => line.level === 'error');
      const fiveHundreds = logs.filter((line) => line.msg === 'request' && line.status === 500);
      assert.equal(errors.length, 0, JSON.stringify(errors));
      assert.equal(fiveHundreds.length, 0);
      assert.equal(aborted.length, rounds);
      assert.ok(aborted.every((line) => line.level === 'info' && line.status === 499));
      report({
        scenario: 'Clients that abort mid-body (15 FIN, 15 RST after 1 KB of a 100 KB body)',
        iterations: rounds,
        counts: { 'logged as client_aborted (info, 499)': aborted.length, 'error-level lines': errors.length, 'answered 500': fiveHundreds.length, 'next write accepted': 'yes' },
      });
    } finally {
      await server.stop();
    }
  });
});
