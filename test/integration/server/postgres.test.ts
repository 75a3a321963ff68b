import * as assert from 'node:assert/strict';
import { Client } from 'pg';
import { conformanceSuite } from './conformance';
import { LISTENER_APPLICATION_NAME } from '../../../src/server/postgresBlobStore';
import { Api, newSlotId, newToken, ServerProcess, SseReader } from './harness';
import { type PostgresCluster, startPostgres } from '../../support/postgres';
import { assertNoPlaintext, writeSecretManifests } from './privacy';

describe('sync server with PostgreSQL', function () {
  this.timeout(120_000);
  let cluster: PostgresCluster | undefined;
  before(async function () {
    cluster = await startPostgres(this);
  });
  after(() => {
    cluster?.stop();
  });

  describe('conformance', () => {
    let databaseUrl = '';
    before(async () => {
      databaseUrl = await cluster!.createDatabase();
    });
    conformanceSuite(() => ['--database-url', databaseUrl], () => ['--database-url', databaseUrl], { eventIdsSurviveRestart: true });
  });

  describe('several server processes on one database', () => {
    let databaseUrl = '';
    const servers: ServerProcess[] = [];
    before(async () => {
      databaseUrl = await cluster!.createDatabase();
      servers.push(await ServerProcess.start(['--database-url', databaseUrl]));
      servers.push(await ServerProcess.start(['--database-url', databaseUrl]));
    });
    after(async () => {
      await Promise.all(servers.map((server) => server.stop('SIGKILL')));
    });

    it('streams one write to the SSE clients of both processes', async () => {
      const [a, b] = servers;
      const token = newToken();
      const streams = [await SseReader.open(a.url, token), await SseReader.open(b.url, token)];
      try {
        for (const stream of streams) await stream.waitFor((event) => event.event === 'presence');
        const slot = newSlotId();
        const payload = Buffer.alloc(5000, 3).toString('base64');
        await new Api(a.url, token).write(slot, payload, undefined);
        const seen = await Promise.all(streams.map((stream) => stream.waitFor((event) => event.event === 'blob')));
        for (const event of seen) assert.deepEqual({ ...JSON.parse(event.data), updatedAt: undefined }, { slotId: slot, version: 1, data: payload, updatedAt: undefined });
        assert.equal(seen[0].id, seen[1].id, 'both processes use the shared event id');

        await new Api(b.url, token).write(slot, Buffer.alloc(10, 4).toString('base64'), 1);
        for (const stream of streams) await stream.waitFor((event) => event.event === 'blob' && event.data.includes('"version":2'));
      } finally {
        for (const stream of streams) stream.close();
      }
    });

    it('resumes on one process from an event id issued by the other', async () => {
      const [a, b] = servers;
      const token = newToken();
      const api = new Api(a.url, token);
      const slot = newSlotId();
      const first = await SseReader.open(a.url, token);
      await first.waitFor((event) => event.event === 'presence');
      // B must be following the account before the writes we expect it to replay.
      const bWatcher = await SseReader.open(b.url, token);
      await bWatcher.waitFor((event) => event.event === 'presence');
      await api.write(slot, Buffer.alloc(10, 1).toString('base64'), undefined);
      const seen = await first.waitFor((event) => event.event === 'blob');
      await bWatcher.waitFor((event) => event.event === 'blob');
      first.close();
      await api.write(slot, Buffer.alloc(10, 2).toString('base64'), 1);
      await api.write(slot, Buffer.alloc(10, 3).toString('base64'), 2);
      await bWatcher.waitFor((event) => event.event === 'blob' && event.data.includes('"version":3'));
      bWatcher.close();

      const resumed = await SseReader.open(b.url, token, { lastEventId: seen.id });
      try {
        await resumed.waitFor((event) => event.event === 'blob' && event.data.includes('"version":3'));
        const versions = resumed.events.filter((event) => event.event === 'blob').map((event) => (JSON.parse(event.data) as { version: number }).version);
        assert.deepEqual(versions, [2, 3]);
      } finally {
        resumed.close();
      }
    });

    it('shows a slot streaming to one process as online to the clients of the other', async () => {
      const [a, b] = servers;
      const token = newToken();
      const device = newSlotId();
      const watcher = await SseReader.open(b.url, token);
      try {
        await watcher.waitFor((event) => event.event === 'presence');
        const deviceStream = await SseReader.open(a.url, token, { slot: device });
        const online = await watcher.waitFor((event) => event.event === 'presence' && event.data.includes('"online":true'));
        assert.deepEqual((JSON.parse(online.data) as { slots: { slotId: string }[] }).slots.map((slot) => slot.slotId), [device]);
        const cursor = watcher.events.length;
        deviceStream.close();
        const offline = await watcher.waitFor((event) => event.event === 'presence', cursor);
        const slots = (JSON.parse(offline.data) as { slots: { slotId: string; online: boolean }[] }).slots;
        assert.deepEqual(slots.map((slot) => [slot.slotId, slot.online]), [[device, false]]);
      } finally {
        watcher.close();
      }
    });

    it('keeps a leased stream on one process alive with renewals sent to the other, and ends it when they stop', async () => {
      const [a, b] = servers;
      const token = newToken();
      const device = newSlotId();
      const watcher = await SseReader.open(a.url, token);
      const deviceStream = await SseReader.open(b.url, token, { slot: device, leaseSeconds: 2 });
      try {
        await watcher.waitFor((event) => event.event === 'presence' && event.data.includes('"online":true'));
        // No session affinity: every renewal lands on the process that does not hold the stream.
        const renewer = new Api(a.url, token);
        for (let i = 0; i < 8; i++) {
          assert.equal((await renewer.request('POST', `/v1/presence/${device}`)).status, 204);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        assert.ok(!watcher.events.some((event) => event.event === 'presence' && event.data.includes('"online":false')), 'renewed through the other process: never offline');
        const stoppedAt = Date.now();
        const offline = await watcher.waitFor((event) => event.event === 'presence' && event.data.includes('"online":false'));
        assert.deepEqual((JSON.parse(offline.data) as { slots: { slotId: string }[] }).slots.map((slot) => slot.slotId), [device]);
        assert.ok(Date.now() - stoppedAt < 4_000, `ended ${Date.now() - stoppedAt} ms after the last renewal (lease 2 s)`);
        await deviceStream.waitForEnd(); // the server ended the stream it held
      } finally {
        watcher.close();
        deviceStream.close();
      }
    });

    it('recovers a lost LISTEN connection: streams get reset, then changes flow again', async () => {
      const [a, b] = servers;
      const token = newToken();
      const stream = await SseReader.open(a.url, token);
      try {
        await stream.waitFor((event) => event.event === 'presence');
        const admin = new Client({ connectionString: databaseUrl });
        await admin.connect();
        try {
          const killed = await admin.query<{ n: string }>(
            `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`,
            [LISTENER_APPLICATION_NAME],
          );
          assert.equal(Number(killed.rows[0].n), 2, 'one LISTEN session per server process');
        } finally {
          await admin.end();
        }
        // The change feed had a gap, so the client is told to refetch...
        await stream.waitFor((event) => event.event === 'reset');
        // ...and once back, writes through the other process reach this stream again.
        const slot = newSlotId();
        await new Api(b.url, token).write(slot, Buffer.alloc(10, 8).toString('base64'), undefined);
        const event = await stream.waitFor((candidate) => candidate.event === 'blob');
        assert.equal((JSON.parse(event.data) as { slotId: string }).slotId, slot);
        assert.ok(a.logs().some((record) => record.msg === 'postgres_listener_lost'));
      } finally {
        stream.close();
      }
    });

    it('group-commits a burst of writes with each write keeping its own outcome, in one order on both processes', async () => {
      const [a, b] = servers;
      const token = newToken();
      const api = new Api(a.url, token);
      const streams = [await SseReader.open(a.url, token), await SseReader.open(b.url, token)];
      try {
        for (const stream of streams) await stream.waitFor((event) => event.event === 'presence');
        const existing = newSlotId();
        await api.write(existing, Buffer.alloc(10, 1).toString('base64'), undefined);
        for (const stream of streams) await stream.waitFor((event) => event.event === 'blob');
        const cursors = streams.map((stream) => stream.events.length);
        const slots = Array.from({ length: 20 }, () => newSlotId());
        // Sent at once, so they queue behind each other's commit and share batches.
        const [creates, stale] = await Promise.all([
          Promise.all(slots.map((slot, i) => api.create(slot, Buffer.alloc(100, i).toString('base64')))),
          Promise.all(Array.from({ length: 5 }, () => api.replace(existing, Buffer.alloc(10, 2).toString('base64'), 7))),
        ]);
        assert.deepEqual(creates.map((response) => response.status), Array(20).fill(201));
        assert.deepEqual(stale.map((response) => [response.status, response.headers.get('etag')]), Array(5).fill([412, '"1"']));
        const sequences = await Promise.all(
          streams.map(async (stream, s) => {
            await stream.waitFor(() => stream.events.slice(cursors[s]).filter((event) => event.event === 'blob').length >= 20);
            return stream.events.slice(cursors[s]).filter((event) => event.event === 'blob');
          }),
        );
        assert.deepEqual(sequences[0], sequences[1], 'both processes stream the same events in the same order');
        const ids = sequences[0].map((event) => Number(event.id));
        assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'event ids rise');
        const blobs = sequences[0].map((event) => JSON.parse(event.data) as { slotId: string; version: number; data: string; updatedAt: string });
        assert.deepEqual(new Set(blobs.map((blob) => blob.slotId)), new Set(slots));
        for (const blob of blobs) {
          // What the NOTIFY carried equals what a read returns, to the millisecond.
          const read = (await (await api.request('GET', `/v1/blobs/${blob.slotId}`)).json()) as typeof blob;
          assert.deepEqual(blob, read);
          assert.equal(blob.version, 1);
        }
        const unchanged = (await (await api.request('GET', `/v1/blobs/${existing}`)).json()) as { version: number };
        assert.equal(unchanged.version, 1, 'the stale writes changed nothing');
      } finally {
        for (const stream of streams) stream.close();
      }
    });

    it('streams a blob too large to ride in a NOTIFY by reading it, still in commit order', async () => {
      const [a, b] = servers;
      const token = newToken();
      const api = new Api(a.url, token);
      const stream = await SseReader.open(b.url, token);
      try {
        await stream.waitFor((event) => event.event === 'presence');
        const large = newSlotId();
        const small = newSlotId();
        const payload = Buffer.alloc(200_000, 7).toString('base64');
        // Together, so they usually share a commit: the small one's notice (complete) arrives while
        // the large one's row is still being read, and must wait its turn.
        await Promise.all([api.write(large, payload, undefined), api.write(small, Buffer.alloc(10, 1).toString('base64'), undefined)]);
        await stream.waitFor(() => stream.events.filter((event) => event.event === 'blob').length >= 2);
        const events = stream.events.filter((event) => event.event === 'blob');
        const ids = events.map((event) => Number(event.id));
        assert.ok(ids[0] < ids[1], `events in commit order, got ids ${ids.join(', ')}`);
        const blobs = events.map((event) => JSON.parse(event.data) as { slotId: string; data: string });
        assert.deepEqual(new Set(blobs.map((blob) => blob.slotId)), new Set([large, small]));
        assert.equal(blobs.find((blob) => blob.slotId === large)?.data, payload);
      } finally {
        stream.close();
      }
    });

    it('keeps slot limits and preconditions atomic across processes', async () => {
      const token = newToken();
      const slot = newSlotId();
      const payload = Buffer.alloc(10).toString('base64');
      const attempts = await Promise.all(
        Array.from({ length: 10 }, (_, index) => new Api(servers[index % 2].url, token).create(slot, payload)),
      );
      const statuses = attempts.map((response) => response.status).sort();
      assert.deepEqual(statuses, [201, ...Array(9).fill(412)]);
    });
  });

  describe('account quota', () => {
    it('counts every other slot of the account, including rows written before the size column', async () => {
      const databaseUrl = await cluster!.createDatabase();
      const server = await ServerProcess.start(['--database-url', databaseUrl, '--max-blob-bytes', '600', '--max-account-bytes', '1500']);
      const admin = new Client({ connectionString: databaseUrl });
      await admin.connect();
      try {
        const token = newToken();
        const api = new Api(server.url, token);
        const blob = (bytes: number): string => Buffer.alloc(bytes, 5).toString('base64');
        const [first, second, third] = [newSlotId(), newSlotId(), newSlotId()];
        assert.equal((await api.create(first, blob(600))).status, 201);
        assert.equal((await api.create(second, blob(600))).status, 201);
        const full = await api.create(third, blob(301));
        assert.equal(full.status, 409);
        assert.equal(((await full.json()) as { error: string }).error, 'account_full');
        // Replacing a slot counts the others only: 600 + 600 fits.
        assert.equal((await api.replace(second, blob(600), 1)).status, 200);
        assert.equal((await api.create(third, blob(300))).status, 201);
        assert.equal((await api.replace(third, blob(300), 1)).status, 200);
        // A row from a server before the size column (bytes NULL) still counts, from its data.
        await admin.query('UPDATE tether_blobs SET bytes = NULL');
        assert.equal((await api.replace(third, blob(301), 2)).status, 409);
        assert.equal((await api.replace(third, blob(300), 2)).status, 200);
      } finally {
        await admin.end();
        await server.stop('SIGKILL');
      }
    });
  });

  describe('privacy', () => {
    it('stores only ciphertext: a dump of the blobs table holds no host, session ID, token or key', async () => {
      const databaseUrl = await cluster!.createDatabase();
      const server = await ServerProcess.start(['--database-url', databaseUrl]);
      try {
        const run = await writeSecretManifests(server);
        const database = new URL(databaseUrl).pathname.slice(1);
        const dump = Buffer.concat([cluster!.dumpTable(database, 'tether_blobs'), cluster!.dumpTable(database, 'tether_presence')]);
        assertNoPlaintext(dump, run, 'pg_dump of tether_blobs');
        // And the account is stored under the token's hash only.
        const client = new Client({ connectionString: databaseUrl });
        await client.connect();
        try {
          const accounts = await client.query<{ account: string }>('SELECT DISTINCT account FROM tether_blobs');
          assert.equal(accounts.rows.length, 1);
          assert.match(accounts.rows[0].account, /^[0-9a-f]{64}$/);
        } finally {
          await client.end();
        }
        assertNoPlaintext(Buffer.from(server.lines.join('\n')), run, 'the server log');
      } finally {
        await server.stop('SIGKILL');
      }
    });
  });
});
