import * as assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { CLIENT_LIST_CAP_BYTES, ConfigError, largestListBytes, parseServerArgs } from '../../../src/server/config';

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

describe('server/config: internet-facing limits (issue 14)', () => {
  it('has defaults for every cap and timeout', () => {
    const config = run([]);
    assert.equal(config.maxAccountBytes, 4 * 1024 * 1024);
    assert.equal(config.maxConnections, 16_384);
    assert.equal(config.maxConnectionsPerIp, 64);
    assert.equal(config.maxStreamsPerIp, 32);
    assert.equal(config.maxNewAccountsPerIpPerHour, 10);
    assert.deepEqual(config.trustProxy, []);
    assert.deepEqual(config.timeouts, { headersMs: 10_000, requestMs: 30_000, idleMs: 30_000 });
    assert.equal(config.tls, undefined);
  });

  it('keeps a full account under what a client accepts', () => {
    assert.ok(largestListBytes(run([]).maxAccountBytes, run([]).maxSlots) < CLIENT_LIST_CAP_BYTES);
    assert.throws(() => run(['--max-account-bytes', String(8 * 1024 * 1024)]), (error: unknown) => ConfigError.is(error) && /clients accept/.test(error.message));
    assert.throws(() => run(['--max-account-bytes', '1000', '--max-blob-bytes', '2000']), ConfigError);
  });

  it('parses proxies, timeouts in seconds and TLS files', () => {
    const config = run(['--trust-proxy', '127.0.0.1, 10.0.0.0/8', '--headers-timeout', '2.5', '--request-timeout', '5', '--idle-timeout', '7', '--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
    assert.deepEqual(config.trustProxy, ['127.0.0.1', '10.0.0.0/8']);
    assert.deepEqual(config.timeouts, { headersMs: 2500, requestMs: 5000, idleMs: 7000 });
    assert.deepEqual(config.tls, { certFile: resolve('c.pem'), keyFile: resolve('k.pem') });
    assert.throws(() => run(['--trust-proxy', 'proxy.example']), ConfigError);
    assert.throws(() => run(['--tls-cert', 'c.pem']), ConfigError);
    assert.throws(() => run(['--idle-timeout', '0']), ConfigError);
  });

  it('takes a log level from --log-level or TETHER_LOG_LEVEL, info by default, and refuses others', () => {
    assert.equal(run([]).logLevel, 'info');
    assert.equal(run([], { TETHER_LOG_LEVEL: 'debug' }).logLevel, 'debug');
    assert.equal(run(['--log-level', 'warn'], { TETHER_LOG_LEVEL: 'debug' }).logLevel, 'warn');
    assert.throws(() => run(['--log-level', 'verbose']), (error: unknown) => ConfigError.is(error) && error.reason === 'invalid_value');
  });

  it('lists every flag in --help', () => {
    const parsed = parseServerArgs(['--help'], {});
    if (parsed.kind !== 'help') throw new Error('expected help');
    const source = readFileSync(resolve(__dirname, '../../../src/server/config.ts'), 'utf8');
    const flags = new Set([...source.matchAll(/flag: '([a-z-]+)'/g)].map((m) => m[1]));
    for (const name of ['host', 'data-dir', 'database-url', 'trust-proxy', 'tls-cert', 'tls-key', 'log-level', 'help']) flags.add(name);
    for (const flag of flags) assert.ok(parsed.text.includes(`--${flag} `), `--${flag} missing from --help`);
  });
});
