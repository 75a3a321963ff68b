/**
 * One conformance suite for the HTTP/SSE contract in docs/protocol.md, run against every store.
 * Call it inside a describe() whose before() prepares the store; `storeArgs` selects it on the CLI.
 */
import * as assert from 'node:assert/strict';
import { Api, newSlotId, newToken, ServerProcess, SseReader } from './harness';

const MAX_BLOB = 2048;
const MAX_SLOTS = 3;
const LIMIT_ARGS = ['--max-blob-bytes', String(MAX_BLOB), '--max-slots', String(MAX_SLOTS), '--heartbeat-ms', '200'];

function data(bytes: number, fill = 1): string {
  return Buffer.alloc(bytes, fill).toString('base64');
}

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

export interface ConformanceOptions {
  /** PostgreSQL issues event ids from a sequence, so ids stay meaningful across restarts and processes. */
  eventIdsSurviveRestart: boolean;
}

/**
 * @param storeArgs the store of the suite's main server.
 * @param otherStoreArgs a store for each extra server (a fresh data dir: only one server may use one).
 */
export function conformanceSuite(storeArgs: () => string[], otherStoreArgs: () => string[], options: ConformanceOptions): void {
  let server: ServerProcess;
  let api: Api;
  const extraServers: ServerProcess[] = [];
  const tokensUsed: string[] = [];
  const blobsWritten: string[] = [];

  const startExtra = async (args: string[], store = otherStoreArgs()): Promise<ServerProcess> => {
    const extra = await ServerProcess.start([...store, ...LIMIT_ARGS, ...args]);
    extraServers.push(extra);
    return extra;
  };
  const freshApi = (baseUrl = server.url): Api => {
    const token = newToken();
    tokensUsed.push(token);
    return new Api(baseUrl, token);
  };
  const recorded = (value: string): string => {
    blobsWritten.push(value);
    return value;
  };

  before(async () => {
    server = await ServerProcess.start([...storeArgs(), ...LIMIT_ARGS]);
    api = freshApi();
  });

  after(async () => {
    await Promise.all([server, ...extraServers].filter(Boolean).map((process) => process.stop('SIGKILL')));
  });

  it('answers /healthz without a token', async () => {
    const response = await fetch(`${server.url}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true });
  });

  it('refuses every account route without a valid bearer token (401)', async () => {
    const slot = newSlotId();
    const attempts: [string, string, Record<string, string>][] = [
      ['GET', '/v1/blobs', {}],
      ['GET', `/v1/blobs/${slot}`, {}],
      ['PUT', `/v1/blobs/${slot}`, { 'if-none-match': '*' }],
      ['DELETE', `/v1/blobs/${slot}`, {}],
      ['GET', '/v1/events', {}],
    ];
    for (const [method, path, headers] of attempts) {
      for (const authorization of [undefined, 'Bearer', 'Bearer short', `Basic ${newToken()}`]) {
        const response = await fetch(`${server.url}${path}`, {
          method,
          headers: { ...headers, ...(authorization ? { authorization } : {}) },
          body: method === 'PUT' ? JSON.stringify({ data: data(8) }) : undefined,
        });
        assert.equal(response.status, 401, `${method} ${path} with ${authorization}`);
        assert.equal((await json(response)).error, 'unauthorized');
      }
    }
  });

  it('creates, replaces and reads a slot with version preconditions (412 on conflict)', async () => {
    const slot = newSlotId();
    const first = recorded(data(100, 1));
    const created = await api.create(slot, first);
    assert.equal(created.status, 201);
    assert.equal(created.headers.get('etag'), '"1"');
    assert.deepEqual(await created.json(), { slotId: slot, version: 1 });

    const again = await api.create(slot, data(100, 2));
    assert.equal(again.status, 412);
    assert.deepEqual({ ...(await json(again)), message: undefined }, { error: 'precondition_failed', message: undefined, currentVersion: 1 });

    const second = recorded(data(100, 3));
    const replaced = await api.replace(slot, second, 1);
    assert.equal(replaced.status, 200);
    assert.equal(replaced.headers.get('etag'), '"2"');
    assert.deepEqual(await replaced.json(), { slotId: slot, version: 2 });

    const stale = await api.replace(slot, data(100, 4), 1);
    assert.equal(stale.status, 412);
    assert.equal((await json(stale)).currentVersion, 2);
    assert.equal(stale.headers.get('etag'), '"2"');

    const absent = await api.replace(newSlotId(), data(10), 1);
    assert.equal(absent.status, 412);
    assert.equal((await json(absent)).currentVersion, null);

    const unconditional = await api.request('PUT', `/v1/blobs/${slot}`, { body: JSON.stringify({ data: data(10) }) });
    assert.equal(unconditional.status, 428);
    assert.equal((await json(unconditional)).error, 'precondition_required');

    const read = await api.request('GET', `/v1/blobs/${slot}`);
    assert.equal(read.status, 200);
    assert.equal(read.headers.get('etag'), '"2"');
    const body = await json(read);
    assert.equal(body.slotId, slot);
    assert.equal(body.version, 2);
    assert.equal(body.data, second, 'the stored bytes are exactly the ones written last');
    assert.ok(!Number.isNaN(Date.parse(String(body.updatedAt))));

    assert.equal((await api.request('GET', `/v1/blobs/${newSlotId()}`)).status, 404);
  });

  it('lists every slot of the account only, with an ETag that gives 304 until something changes', async () => {
    const own = freshApi();
    const other = freshApi();
    const slots = [newSlotId(), newSlotId()];
    for (const slot of slots) await own.write(slot, recorded(data(40)), undefined);
    await other.write(newSlotId(), data(40), undefined);

    const list = await own.request('GET', '/v1/blobs');
    assert.equal(list.status, 200);
    const etag = list.headers.get('etag');
    assert.ok(etag);
    const body = (await list.json()) as { blobs: { slotId: string; version: number; data: string; updatedAt: string }[] };
    assert.deepEqual(body.blobs.map((blob) => blob.slotId).sort(), [...slots].sort());
    for (const blob of body.blobs) assert.deepEqual(Object.keys(blob).sort(), ['data', 'slotId', 'updatedAt', 'version']);

    const cached = await own.request('GET', '/v1/blobs', { headers: { 'if-none-match': etag } });
    assert.equal(cached.status, 304);

    await own.write(slots[0], data(40, 9), 1);
    const changed = await own.request('GET', '/v1/blobs', { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get('etag'), etag);
  });

  it('deletes a slot, honouring an optional If-Match', async () => {
    const slot = newSlotId();
    await api.write(slot, data(20), undefined);
    const wrong = await api.request('DELETE', `/v1/blobs/${slot}`, { headers: { 'if-match': '"7"' } });
    assert.equal(wrong.status, 412);
    assert.equal((await json(wrong)).currentVersion, 1);
    assert.equal((await api.request('DELETE', `/v1/blobs/${slot}`, { headers: { 'if-match': '"1"' } })).status, 204);
    assert.equal((await api.request('GET', `/v1/blobs/${slot}`)).status, 404);
    assert.equal((await api.request('DELETE', `/v1/blobs/${slot}`)).status, 404);
  });

  it('enforces the blob size (413), body size (413) and slots per account (409)', async () => {
    const limited = freshApi();
    const exact = await limited.create(newSlotId(), data(MAX_BLOB));
    assert.equal(exact.status, 201, 'a blob of exactly the limit is accepted');

    const tooBig = await limited.create(newSlotId(), data(MAX_BLOB + 1));
    assert.equal(tooBig.status, 413);
    assert.equal((await json(tooBig)).error, 'blob_too_large');

    const huge = await limited.request('PUT', `/v1/blobs/${newSlotId()}`, {
      body: JSON.stringify({ data: data(MAX_BLOB * 4) }),
      headers: { 'if-none-match': '*' },
    });
    assert.equal(huge.status, 413);
    assert.equal((await json(huge)).error, 'body_too_large');

    for (let i = 1; i < MAX_SLOTS; i++) assert.equal((await limited.create(newSlotId(), data(10))).status, 201);
    const overflow = await limited.create(newSlotId(), data(10));
    assert.equal(overflow.status, 409);
    assert.equal((await json(overflow)).error, 'too_many_slots');
    // Replacing an existing slot is still fine at the limit.
    const list = (await (await limited.request('GET', '/v1/blobs')).json()) as { blobs: { slotId: string; version: number }[] };
    assert.equal(list.blobs.length, MAX_SLOTS);
    assert.equal((await limited.replace(list.blobs[0].slotId, data(10, 5), list.blobs[0].version)).status, 200);
  });

  it('lets exactly one of many concurrent creates of a slot win, and never exceeds the slot limit', async () => {
    const racer = freshApi();
    const slot = newSlotId();
    const same = await Promise.all(Array.from({ length: 8 }, () => racer.create(slot, data(10))));
    assert.deepEqual(same.map((response) => response.status).sort(), [201, ...Array(7).fill(412)]);
    const distinct = await Promise.all(Array.from({ length: 6 }, () => racer.create(newSlotId(), data(10))));
    const statuses = distinct.map((response) => response.status);
    assert.equal(statuses.filter((status) => status === 201).length, MAX_SLOTS - 1);
    assert.equal(statuses.filter((status) => status === 409).length, 6 - (MAX_SLOTS - 1));
  });

  it('answers malformed requests with 400 and a JSON error', async () => {
    const slot = newSlotId();
    const cases: [string, string, { body?: string; headers?: Record<string, string> }][] = [
      ['PUT', `/v1/blobs/${slot}`, { body: 'not json', headers: { 'if-none-match': '*' } }],
      ['PUT', `/v1/blobs/${slot}`, { body: '{"data":"%%%"}', headers: { 'if-none-match': '*' } }],
      ['PUT', `/v1/blobs/${slot}`, { body: '{"data":"AAAA"}', headers: { 'if-match': 'seven' } }],
      ['PUT', '/v1/blobs/NOT-A-SLOT', { body: '{"data":"AAAA"}', headers: { 'if-none-match': '*' } }],
      ['GET', '/v1/events?slot=bad', {}],
    ];
    for (const [method, path, options] of cases) {
      const response = await api.request(method, path, options);
      assert.equal(response.status, 400, `${method} ${path} ${options.body ?? ''}`);
      const body = await json(response);
      assert.equal(body.error, 'bad_request');
      assert.equal(typeof body.message, 'string');
    }
  });

  it('rate-limits per token (429 with Retry-After), without affecting other tokens', async () => {
    const limitedServer = await startExtra(['--rate', '0.01', '--burst', '5']);
    const noisy = freshApi(limitedServer.url);
    const quiet = freshApi(limitedServer.url);
    for (let i = 0; i < 5; i++) assert.equal((await noisy.request('GET', '/v1/blobs')).status, 200);
    const refused = await noisy.request('GET', '/v1/blobs');
    assert.equal(refused.status, 429);
    assert.equal((await json(refused)).error, 'rate_limited');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal((await quiet.request('GET', '/v1/blobs')).status, 200);
  });

  it('rate-limits per client IP across tokens', async () => {
    const limitedServer = await startExtra(['--ip-rate', '0.01', '--ip-burst', '4']);
    for (let i = 0; i < 4; i++) assert.equal((await freshApi(limitedServer.url).request('GET', '/v1/blobs')).status, 200);
    const refused = await freshApi(limitedServer.url).request('GET', '/v1/blobs');
    assert.equal(refused.status, 429);
    assert.ok(refused.headers.get('retry-after'));
  });

  it('streams every change with the blob inline, and deletes, over SSE', async () => {
    const watcher = freshApi();
    const stream = await SseReader.open(server.url, watcher.token);
    assert.equal(stream.status, 200);
    try {
      await stream.waitFor((event) => event.event === 'presence');
      const slot = newSlotId();
      const payload = recorded(data(300, 42));
      await watcher.write(slot, payload, undefined);
      const event = await stream.waitFor((candidate) => candidate.event === 'blob');
      const blob = JSON.parse(event.data) as Record<string, unknown>;
      assert.equal(blob.slotId, slot);
      assert.equal(blob.version, 1);
      assert.equal(blob.data, payload);
      assert.ok(typeof blob.updatedAt === 'string');
      assert.match(event.id ?? '', /^\d+$/);

      assert.equal((await watcher.request('DELETE', `/v1/blobs/${slot}`)).status, 204);
      const deleted = await stream.waitFor((candidate) => candidate.event === 'delete');
      assert.deepEqual(JSON.parse(deleted.data), { slotId: slot });
      assert.ok(Number(deleted.id) > Number(event.id), 'event ids rise');
    } finally {
      stream.close();
    }
  });

  it('does not stream one account\'s changes to another', async () => {
    const mine = freshApi();
    const theirs = freshApi();
    const stream = await SseReader.open(server.url, mine.token);
    try {
      await stream.waitFor((event) => event.event === 'presence');
      await theirs.write(newSlotId(), data(10), undefined);
      const marker = newSlotId();
      await mine.write(marker, data(10), undefined);
      await stream.waitFor((event) => event.event === 'blob');
      const blobs = stream.events.filter((event) => event.event === 'blob').map((event) => (JSON.parse(event.data) as { slotId: string }).slotId);
      assert.deepEqual(blobs, [marker]);
    } finally {
      stream.close();
    }
  });

  it('resumes a dropped stream from Last-Event-ID with exactly the missed changes', async () => {
    const client = freshApi();
    const slot = newSlotId();
    const first = await SseReader.open(server.url, client.token);
    await first.waitFor((event) => event.event === 'presence');
    await client.write(slot, data(10, 1), undefined);
    const seen = await first.waitFor((event) => event.event === 'blob');
    first.close();
    await first.waitForEnd();

    const missed = [recorded(data(10, 2)), recorded(data(10, 3))];
    let version = 1;
    for (const payload of missed) version = await client.write(slot, payload, version);

    const resumed = await SseReader.open(server.url, client.token, { lastEventId: seen.id });
    try {
      await resumed.waitFor((event) => event.event === 'blob' && (JSON.parse(event.data) as { version: number }).version === 3);
      const blobs = resumed.events.filter((event) => event.event === 'blob').map((event) => JSON.parse(event.data) as { version: number; data: string });
      assert.deepEqual(blobs.map((blob) => [blob.version, blob.data]), [[2, missed[0]], [3, missed[1]]]);
      assert.equal(resumed.events.filter((event) => event.event === 'reset').length, 0);
    } finally {
      resumed.close();
    }

    const unknown = await SseReader.open(server.url, client.token, { lastEventId: 'not-an-id' });
    try {
      const reset = await unknown.waitFor((event) => event.event === 'reset');
      assert.match(reset.id ?? '', /^\d+$/, 'a reset carries a resume point');
    } finally {
      unknown.close();
    }
  });

  it('after a server restart, a resuming client gets the missed change or a reset, never a silent gap', async () => {
    const store = otherStoreArgs();
    const restarted = await startExtra([], store);
    const client = freshApi(restarted.url);
    const slot = newSlotId();
    const stream = await SseReader.open(restarted.url, client.token);
    await stream.waitFor((event) => event.event === 'presence');
    await client.write(slot, data(10), undefined);
    const seen = await stream.waitFor((event) => event.event === 'blob');
    stream.close();
    assert.deepEqual(await restarted.stop('SIGTERM'), { code: 0, signal: null });

    const again = await startExtra([], store);
    const api2 = new Api(again.url, client.token);
    const missed = await api2.write(slot, data(10, 7), 1);
    const resumed = await SseReader.open(again.url, client.token, { lastEventId: seen.id });
    try {
      if (options.eventIdsSurviveRestart) {
        // Ids come from the database, so the new process can vouch for everything after `seen`.
        const event = await resumed.waitFor((candidate) => candidate.event === 'blob' || candidate.event === 'reset');
        assert.equal(event.event, 'blob');
        assert.equal((JSON.parse(event.data) as { version: number }).version, missed);
      } else {
        // Ids of the previous run are unknown to this one: the client must refetch.
        const event = await resumed.waitFor((candidate) => candidate.event === 'blob' || candidate.event === 'reset');
        assert.equal(event.event, 'reset');
      }
    } finally {
      resumed.close();
    }
    const list = (await (await api2.request('GET', '/v1/blobs')).json()) as { blobs: { version: number }[] };
    assert.deepEqual(list.blobs.map((blob) => blob.version), [2], 'the data survived the restart');
  });

  it('reports presence: which slots hold a stream, and when each was last seen', async () => {
    const account = freshApi();
    const device = newSlotId();
    const watcher = await SseReader.open(server.url, account.token);
    try {
      const initial = await watcher.waitFor((event) => event.event === 'presence');
      assert.deepEqual(JSON.parse(initial.data), { slots: [] });

      const deviceStream = await SseReader.open(server.url, account.token, { slot: device });
      const online = await watcher.waitFor((event) => event.event === 'presence' && event.data.includes('"online":true'));
      const onlineSlots = (JSON.parse(online.data) as { slots: { slotId: string; online: boolean; lastSeen: string }[] }).slots;
      assert.deepEqual(onlineSlots.map((slot) => [slot.slotId, slot.online]), [[device, true]]);
      // The device's own stream hears it too, on connect.
      await deviceStream.waitFor((event) => event.event === 'presence' && event.data.includes(device));

      const cursor = watcher.events.length;
      deviceStream.close();
      const offline = await watcher.waitFor((event) => event.event === 'presence', cursor);
      const offlineSlots = (JSON.parse(offline.data) as { slots: { slotId: string; online: boolean; lastSeen: string }[] }).slots;
      assert.equal(offlineSlots.length, 1);
      assert.equal(offlineSlots[0].slotId, device);
      assert.equal(offlineSlots[0].online, false);
      assert.ok(!Number.isNaN(Date.parse(offlineSlots[0].lastSeen)));
    } finally {
      watcher.close();
    }
  });

  it('sends heartbeats as SSE comments', async () => {
    const stream = await SseReader.open(server.url, freshApi().token);
    try {
      await stream.waitForComment('heartbeat');
    } finally {
      stream.close();
    }
  });

  it('shuts down gracefully on SIGTERM: healthz stops, streams end, exit code 0', async () => {
    const doomed = await startExtra([]);
    const client = freshApi(doomed.url);
    await client.write(newSlotId(), data(10), undefined);
    const stream = await SseReader.open(doomed.url, client.token, { slot: newSlotId() });
    await stream.waitFor((event) => event.event === 'presence');
    const exit = doomed.stop('SIGTERM');
    await stream.waitForEnd();
    assert.deepEqual(await exit, { code: 0, signal: null });
    const messages = doomed.logs().map((record) => record.msg);
    assert.ok(messages.includes('shutting_down') && messages.includes('stopped'), JSON.stringify(messages));
    await assert.rejects(fetch(`${doomed.url}/healthz`), 'no longer accepting connections');
  });

  it('never logs a token or blob content, and logs one JSON object per line', () => {
    const lines = [server, ...extraServers].flatMap((process) => process.lines);
    assert.ok(lines.length > 20, 'the servers logged their requests');
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line);
    const all = lines.join('\n');
    for (const token of tokensUsed) assert.ok(!all.includes(token), 'a token appeared in the logs');
    for (const blob of blobsWritten) assert.ok(!all.includes(blob.slice(0, 40)), 'blob content appeared in the logs');
    assert.ok(tokensUsed.length > 5 && blobsWritten.length > 5, 'the scan had something to look for');
  });
}
