import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { serverBundle } from '../../support/syncServer';
import { Api, makeTempDir, newSlotId, newToken, ServerProcess } from './harness';

describe('sync server command line', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir('tether-cli-');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints usage for --help and exits 0', async () => {
    const result = spawnSync(process.execPath, [await serverBundle(), '--help'], { encoding: 'utf8' });
    assert.equal(result.status, 0);
    for (const flag of ['--port', '--host', '--data-dir', '--database-url', 'TETHER_PORT', 'TETHER_HOST', 'TETHER_DATA_DIR', 'TETHER_DATABASE_URL']) {
      assert.ok(result.stdout.includes(flag), flag);
    }
  });

  it('exits 2 with a clear message on a bad option', async () => {
    const result = spawnSync(process.execPath, [await serverBundle(), '--port', 'eighty'], { encoding: 'utf8' });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--port \(TETHER_PORT\) must be an integer/);
  });

  it('takes its data dir from TETHER_DATA_DIR and stores there', async () => {
    const server = await ServerProcess.start([], { TETHER_DATA_DIR: dir });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      await new Api(server.url, newToken()).write(newSlotId(), Buffer.from('x').toString('base64'), undefined);
      assert.ok(existsSync(join(dir, 'accounts')));
      const listening = server.logs().find((record) => record.msg === 'listening');
      assert.equal(listening?.url, server.url);
    } finally {
      await server.stop('SIGINT');
    }
  });
});
