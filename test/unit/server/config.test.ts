import * as assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { ConfigError, parseServerArgs } from '../../../src/server/config';

function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parseServerArgs(argv, env);
  assert.equal(parsed.kind, 'run');
  if (parsed.kind !== 'run') throw new Error('unreachable');
  return parsed.config;
}

describe('server/config', () => {
  it('has the documented defaults', () => {
    const config = run([]);
    assert.equal(config.port, 8787);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.storage.kind, 'file');
    assert.equal(config.maxBlobBytes, 256 * 1024);
    assert.equal(config.maxSlots, 64);
    assert.equal(config.heartbeatMs, 15_000);
  });

  it('reads the environment, and flags win over it', () => {
    const env = { TETHER_PORT: '9000', TETHER_HOST: '0.0.0.0', TETHER_DATA_DIR: '/var/tether' };
    const fromEnv = run([], env);
    assert.equal(fromEnv.port, 9000);
    assert.equal(fromEnv.host, '0.0.0.0');
    assert.deepEqual(fromEnv.storage, { kind: 'file', dataDir: '/var/tether' });
    const fromFlags = run(['--port', '0', '--host', '::1', '--data-dir', 'rel/dir'], env);
    assert.equal(fromFlags.port, 0);
    assert.equal(fromFlags.host, '::1');
    assert.deepEqual(fromFlags.storage, { kind: 'file', dataDir: resolve('rel/dir') });
  });

  it('uses PostgreSQL instead of the file store when a database URL is given', () => {
    const config = run(['--data-dir', '/x'], { TETHER_DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' });
    assert.deepEqual(config.storage, { kind: 'postgres', databaseUrl: 'postgres://u@127.0.0.1:5432/db' });
    assert.throws(() => run(['--database-url', 'mysql://x']), (error: unknown) => ConfigError.is(error) && error.reason === 'invalid_value');
  });

  it('refuses bad numbers and unknown options', () => {
    for (const port of ['-1', '65536', '80x', '1.5', ' ']) {
      assert.throws(() => run([`--port=${port}`]), (error: unknown) => ConfigError.is(error) && error.reason === 'invalid_value', port);
    }
    assert.throws(() => run(['--max-slots', '0']), ConfigError);
    assert.throws(() => run(['--prot', '1']), (error: unknown) => ConfigError.is(error) && error.reason === 'unknown_option');
    assert.throws(() => run(['stray']), ConfigError);
  });

  it('parses limits, including fractional rates', () => {
    const config = run(['--max-blob-bytes', '1024', '--max-slots', '3', '--rate', '0.5', '--burst', '4', '--ip-rate', '100', '--ip-burst', '200', '--heartbeat-ms', '100']);
    assert.equal(config.maxBlobBytes, 1024);
    assert.equal(config.maxSlots, 3);
    assert.deepEqual(config.rate, { perSecond: 0.5, burst: 4 });
    assert.deepEqual(config.ipRate, { perSecond: 100, burst: 200 });
    assert.equal(config.heartbeatMs, 100);
  });

  it('answers --help with the usage text', () => {
    const parsed = parseServerArgs(['--help'], {});
    assert.equal(parsed.kind, 'help');
    if (parsed.kind === 'help') {
      for (const flag of ['--port', '--host', '--data-dir', '--database-url', 'TETHER_DATABASE_URL']) assert.ok(parsed.text.includes(flag), flag);
    }
  });
});
