/**
 * Secrets: no key passphrase (right or wrong), sync key, derived token or encryption key is ever
 * written to the log (every Logger line at every level is captured), the tab snapshot
 * (encodeSnapshot), the terminal, or the sync server's storage and log. Uses an encrypted private
 * key (ssh-keygen -N) authenticated through the AuthPrompter, with a wrong first answer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CrossDeviceSessions } from '../../src/sync/crossDevice';
import { SyncClient } from '../../src/sync/syncClient';
import { deriveSyncKeys, formatSyncKey, generateSyncKey } from '../../src/sync/syncKey';
import type { AuthPrompter } from '../../src/ssh/auth';
import { PersistentSession } from '../../src/session/persistentSession';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectionPool } from '../../src/ssh/sshConnection';
import type { ResolvedHost } from '../../src/ssh/sshConfig';
import { encodeSnapshot } from '../../src/session/tabSnapshot';
import { TrustStore } from '../../src/ssh/trustStore';
import { SshHost } from '../support/sshHost';
import { TabRecorder, testPool } from '../integration/fixtures/sessionHarness';
import { TcpProxy } from '../support/tcpProxy';
import { filesUnder } from '../integration/server/harness';
import { CapturingLog, SyncServer, report, tempDir, waitUntil } from './common';

describe('reliability: secrets stay out of logs, snapshots and server storage', function () {
  this.timeout(300_000);
  let host: SshHost;
  let proxy: TcpProxy;

  before(async () => {
    host = await SshHost.start({ user: 'tetherrelp' });
    proxy = await TcpProxy.start(host.port);
  });

  after(async () => {
    await proxy?.close();
    host?.reboot();
    await host?.dispose();
  });

  it('an encrypted key via the AuthPrompter, a sync round trip and a snapshot leak no secret anywhere', async () => {
    const passphrase = `pp-${randomBytes(12).toString('hex')}`;
    const wrongPassphrase = `wrong-${randomBytes(12).toString('hex')}`;
    const keyDir = tempDir('tetherrel-enckey-');
    const keyPath = join(keyDir, 'id_ed25519_enc');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'tetherrel-encrypted', '-f', keyPath]);
    appendFileSync(join(host.dir, 'authorized_keys'), readFileSync(`${keyPath}.pub`, 'utf8'));
    const privateBody = readFileSync(keyPath, 'utf8').split('\n').filter((line) => line && !line.startsWith('-----'))[1];

    const log = new CapturingLog();
    const asked: number[] = [];
    let accepted = 0;
    const prompter: AuthPrompter = {
      keyPassphrase: async (_path, attempt) => {
        asked.push(attempt);
        return attempt === 1 ? wrongPassphrase : passphrase;
      },
      passphraseAccepted: () => {
        accepted++;
      },
      password: async () => undefined,
      keyboardInteractive: async () => undefined,
    };
    const pool = testPool({ prompter, log });
    const resolved: ResolvedHost = { ...host.resolved({ port: proxy.port, label: 'secret-host' }), identityFiles: [keyPath], identitiesOnly: true };
    const tab = new TabRecorder(new PersistentSession({ id: newSessionId(), host: resolved, pool, log, mode: 'create', preference: 'tmux', reconnect: { baseDelayMs: 100, maxDelayMs: 500, jitter: 0.2 } }));
    void tab.session.start({ cols: 100, rows: 30 });

    // Sync: a real server, a writer and a reader, with every line captured.
    const syncKey = generateSyncKey();
    const derived = deriveSyncKeys(syncKey);
    const dataDir = tempDir('tetherrel-secret-data-');
    const server = await SyncServer.start({ dataDir });
    const writer = new SyncClient({ serverUrl: server.url, syncKey, slotId: newSessionId(), deviceName: 'secret-laptop', stateDir: tempDir('tetherrel-secret-w-'), log, writeDebounceMs: 10 });
    const reader = new SyncClient({ serverUrl: server.url, syncKey, slotId: newSessionId(), deviceName: 'secret-desktop', stateDir: tempDir('tetherrel-secret-r-'), log, pollIntervalMs: 300 });
    const cross = new CrossDeviceSessions({ log });
    try {
      await tab.waitForState('attached', 20_000);
      // Re-authentication after a drop goes through the prompter again.
      proxy.cut();
      await tab.waitFor(/reconnecting/);
      await tab.waitForState('attached', 20_000);
      tab.type('echo secret-test-$((1+1))\r');
      await tab.waitFor(/secret-test-2/);
      cross.useClient(writer);
      await writer.start();
      await reader.start();
      const entry = { id: tab.session.id, hostLabel: resolved.label, user: resolved.user, hostName: resolved.hostName, port: resolved.port, multiplexer: 'tmux' as const, cwd: '/tmp', startedAt: Date.now(), title: 'secret tab' };
      cross.publish([entry]);
      assert.equal(await writer.flush(), true);
      await waitUntil(() => reader.getRemoteState().slots.some((slot) => slot.blob.sessions.some((s) => s.id === tab.session.id)), 10_000, 'reader sees the session');
      const snapshot = JSON.stringify(
        encodeSnapshot([{ id: tab.session.id, hostLabel: resolved.label, user: resolved.user, hostName: resolved.hostName, port: resolved.port, multiplexer: 'tmux', name: 'secret-host · x', location: 'panel', cwd: '/tmp', startedAt: Date.now() }]),
      );
      const outcome = await cross.kill(tab.session);
      assert.equal(outcome.action, 'killed');
      await writer.flush();

      // A key that never works: the failure message names the key, not what was typed.
      const failLog = new CapturingLog();
      const failPool = new ConnectionPool({
        prompter: { keyPassphrase: async () => wrongPassphrase, password: async () => undefined, keyboardInteractive: async () => undefined },
        trustStore: new TrustStore(join(tempDir('tetherrel-trust-'), 'known_hosts')),
        confirmUnknownHostKey: async () => false,
        log: failLog,
        readyTimeoutMs: 10_000,
      });
      const failure = await failPool.acquire(resolved).then(
        () => 'connected',
        (error: Error) => error.message,
      );
      failPool.dispose();
      log.lines.push(...failLog.lines, `error ${failure}`);

      const secrets: Record<string, string> = {
        passphrase,
        'wrong passphrase': wrongPassphrase,
        'sync key (display form)': formatSyncKey(syncKey),
        'sync key (hex)': Buffer.from(syncKey).toString('hex'),
        'sync key (base64)': Buffer.from(syncKey).toString('base64'),
        'sync key (base64url)': Buffer.from(syncKey).toString('base64url'),
        'server token': derived.token,
        'encryption key (hex)': Buffer.from(derived.encryptionKey).toString('hex'),
        'encryption key (base64)': Buffer.from(derived.encryptionKey).toString('base64'),
        'private key material': privateBody,
      };
      await server.stop();
      const storage = filesUnder(dataDir).map((file) => readFileSync(file).toString('latin1')).join('\n');
      const places: Record<string, string> = {
        'log lines': log.text(),
        snapshot,
        terminal: tab.text,
        'server storage': storage,
        'server log': server.lines.join('\n'),
      };
      const leaks: string[] = [];
      for (const [secretName, secret] of Object.entries(secrets)) {
        for (const [placeName, text] of Object.entries(places)) {
          if (text.includes(secret)) leaks.push(`${secretName} in ${placeName}`);
        }
      }
      // End-to-end: the server stores no plaintext either.
      const plaintextOnServer = [tab.session.id, 'secret-laptop', 'secret tab', resolved.user].filter((value) => storage.includes(value));
      report({
        scenario: 'Secrets (encrypted key + passphrase, sync key, token)',
        iterations: Object.keys(secrets).length * Object.keys(places).length,
        counts: {
          'log lines captured': log.lines.length,
          'passphrase prompts': asked.length,
          'passphrase accepted callbacks': accepted,
          'failure message': failure.slice(0, 60),
          'leaks': leaks.length,
          'plaintext on server': plaintextOnServer.length,
        },
      });
      assert.ok(asked.includes(1) && asked.includes(2), 'the wrong passphrase was tried, then the right one');
      assert.ok(accepted >= 1);
      assert.notEqual(failure, 'connected');
      assert.deepEqual(leaks, []);
      assert.deepEqual(plaintextOnServer, []);
      assert.ok(log.lines.length > 20, 'the log was really captured');
    } finally {
      cross.dispose();
      await writer.stop();
      await reader.stop();
      await server.stop();
      tab.session.dispose();
      pool.dispose();
    }
  });
});
