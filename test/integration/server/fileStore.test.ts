import * as assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashToken } from '../../../src/server/auth';
import { conformanceSuite } from './conformance';
import { Api, filesUnder, makeTempDir, newSlotId, newToken, readAll, ServerProcess, TestCipher, testManifest } from './harness';
import { assertNoPlaintext, writeSecretManifests } from './privacy';

describe('sync server with the file store', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const freshDir = (): string => {
    const dir = makeTempDir('tether-file-store-');
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  describe('conformance', () => {
    let dataDir = '';
    before(() => {
      dataDir = freshDir();
    });
    conformanceSuite(() => ['--data-dir', dataDir], () => ['--data-dir', freshDir()], { eventIdsSurviveRestart: false });
  });

  describe('durability and privacy', () => {
    let dir: string;
    beforeEach(() => {
      dir = makeTempDir('tether-file-store-');
    });
    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('stores only ciphertext: no file in the data dir holds a host, session ID, token or key', async () => {
      const server = await ServerProcess.start(['--data-dir', dir]);
      try {
        const run = await writeSecretManifests(server);
        const files = filesUnder(dir);
        assert.ok(files.length >= 2, `expected slot files, found ${files.join(', ')}`);
        assertNoPlaintext(readAll(files), run, 'the data dir');
        // Accounts are directories named by the token's hash; the token itself appears nowhere.
        assert.deepEqual(readdirSync(join(dir, 'accounts')), [hashToken(run.token)]);
        assertNoPlaintext(Buffer.from(server.lines.join('\n')), run, 'the server log');
      } finally {
        await server.stop('SIGKILL');
      }
    });

    it('survives kill -9 during a stream of writes: every blob intact, no acknowledged write lost', async () => {
      const cipher = new TestCipher();
      const token = newToken();
      const slots = Array.from({ length: 4 }, () => newSlotId());
      const acked = new Map<string, { seq: number; version: number }>();
      const attempted = new Map<string, number>();
      const hosts = ['crash-host.example'];
      const sessions = ['abcdefghijklmnopqrstuvwxyz'];
      let totalAcked = 0;

      for (let round = 0; round < ROUNDS; round++) {
        const server = await ServerProcess.start(['--data-dir', dir, '--rate', '100000', '--burst', '100000', '--ip-rate', '100000', '--ip-burst', '100000']);
        assert.ok(!server.logs().some((record) => record.msg === 'corrupt_blob'), 'no corrupt file after a crash');
        const api = new Api(server.url, token);
        await verifyIntact(api, cipher, slots, acked, attempted);

        const target = totalAcked + 60;
        let killed = false;
        const writer = async (slot: string): Promise<void> => {
          for (;;) {
            const seq = (attempted.get(slot) ?? 0) + 1;
            attempted.set(slot, seq);
            const known = acked.get(slot)?.version;
            let version: number;
            try {
              version = await api.write(slot, cipher.seal(padded(testManifest(slot, seq, hosts, sessions))), known);
            } catch {
              return; // the server is gone; this write may or may not have landed
            }
            if (killed) return;
            acked.set(slot, { seq, version });
            totalAcked += 1;
            if (totalAcked >= target) {
              // Kill while the other writers have requests in flight.
              killed = true;
              server.child.kill('SIGKILL');
              return;
            }
          }
        };
        await Promise.all(slots.map(writer));
        assert.equal((await server.exited).signal, 'SIGKILL');
      }

      const server = await ServerProcess.start(['--data-dir', dir]);
      try {
        await verifyIntact(new Api(server.url, token), cipher, slots, acked, attempted);
        assert.ok(totalAcked >= ROUNDS * 60);
        const leftovers = filesUnder(dir).filter((path) => path.endsWith('.tmp') || path.includes('.corrupt'));
        assert.deepEqual(leftovers, [], 'temp files of interrupted writes are cleaned up on start');
        for (const path of filesUnder(join(dir, 'accounts'))) assert.doesNotThrow(() => JSON.parse(readFileSync(path, 'utf8')), path);
      } finally {
        await server.stop('SIGKILL');
      }
    });

    it('refuses to share a data dir with a running server, but takes over from a killed one', async () => {
      const first = await ServerProcess.start(['--data-dir', dir]);
      try {
        await assert.rejects(ServerProcess.start(['--data-dir', dir]), /in use by another server/);
      } finally {
        await first.stop('SIGKILL');
      }
      const second = await ServerProcess.start(['--data-dir', dir]);
      assert.deepEqual(await second.stop('SIGTERM'), { code: 0, signal: null });
      assert.ok(!existsSync(join(dir, 'server.lock')), 'a clean shutdown releases the lock');
    });

    it('reports a corrupt slot file on start, keeps it aside and keeps serving the rest', async () => {
      const token = newToken();
      const good = newSlotId();
      const bad = newSlotId();
      const first = await ServerProcess.start(['--data-dir', dir]);
      const api = new Api(first.url, token);
      await api.write(good, Buffer.from('good').toString('base64'), undefined);
      await api.write(bad, Buffer.from('bad').toString('base64'), undefined);
      await first.stop('SIGTERM');

      const accountDir = join(dir, 'accounts', hashToken(token));
      writeFileSync(join(accountDir, `${bad}.json`), '{"format":1,"slotId":"'); // torn by a disk fault
      mkdirSync(join(dir, 'accounts', 'not-an-account'));
      const second = await ServerProcess.start(['--data-dir', dir]);
      try {
        const reports = second.logs().filter((record) => record.msg === 'corrupt_blob');
        assert.equal(reports.length, 1);
        assert.ok(String(reports[0].path).includes(bad));
        assert.ok(existsSync(String(reports[0].path)), 'the corrupt bytes are kept for inspection');
        const api2 = new Api(second.url, token);
        assert.equal((await api2.request('GET', `/v1/blobs/${bad}`)).status, 404);
        const list = (await (await api2.request('GET', '/v1/blobs')).json()) as { blobs: { slotId: string }[] };
        assert.deepEqual(list.blobs.map((blob) => blob.slotId), [good]);
        // The slot can be written again from scratch.
        assert.equal((await api2.create(bad, Buffer.from('again').toString('base64'))).status, 201);
      } finally {
        await second.stop('SIGKILL');
      }
    });
  });
});

/** Crash rounds; each kills the server once with writes in flight. */
const ROUNDS = 5;

/** Large blobs widen the window in which a non-atomic write would be caught half done. */
function padded(manifest: string): string {
  const parsed = JSON.parse(manifest) as Record<string, unknown>;
  return JSON.stringify({ ...parsed, padding: 'p'.repeat(150 * 1024) });
}

async function verifyIntact(
  api: Api,
  cipher: TestCipher,
  slots: string[],
  acked: Map<string, { seq: number; version: number }>,
  attempted: Map<string, number>,
): Promise<void> {
  const response = await api.request('GET', '/v1/blobs');
  assert.equal(response.status, 200);
  const { blobs } = (await response.json()) as { blobs: { slotId: string; version: number; data: string }[] };
  for (const slot of slots) {
    const blob = blobs.find((candidate) => candidate.slotId === slot);
    const ack = acked.get(slot);
    if (!ack) continue;
    assert.ok(blob, `slot ${slot} with an acknowledged write is missing`);
    const manifest = JSON.parse(cipher.open(blob.data)) as { slotId: string; seq: number };
    assert.equal(manifest.slotId, slot);
    assert.ok(manifest.seq >= ack.seq, `acknowledged seq ${ack.seq} lost: found ${manifest.seq}`);
    assert.ok(manifest.seq <= (attempted.get(slot) ?? 0), 'a blob that was never written');
    assert.ok(blob.version >= ack.version);
    // The next round continues from what is really there.
    acked.set(slot, { seq: manifest.seq, version: blob.version });
    attempted.set(slot, manifest.seq);
  }
}
