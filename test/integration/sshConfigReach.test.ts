/**
 * ~/.ssh/config keywords that decide whether a host can be reached at all, against real sshd:
 * ProxyCommand (through nc, and through `ssh -W` via a second sshd), IdentityAgent, ConnectTimeout
 * and StrictHostKeyChecking.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectError } from '../../src/ssh/sshConnection';
import { TrustStore } from '../../src/ssh/trustStore';
import { SshAgent } from './fixtures/sshAgent';
import { freePort } from '../support/ports';
import { SshHost, testKeys } from '../support/sshHost';
import { TabRecorder, testLog, testPool } from './fixtures/sessionHarness';

const hasNc = spawnSync('sh', ['-c', 'command -v nc']).status === 0;

describe('ssh config: ProxyCommand, IdentityAgent, ConnectTimeout, StrictHostKeyChecking (real sshd)', function () {
  let host: SshHost;
  let bastion: SshHost;

  before(async function () {
    this.timeout(30_000);
    host = await SshHost.start({ user: 'tetherreach' });
    bastion = await SshHost.start({ user: 'tetherbastion' });
  });
  after(async () => {
    await host?.dispose();
    await bastion?.dispose();
  });

  describe('ProxyCommand', () => {
    it('reaches the host through nc, with %h and %p expanded, and a tab works over it', async function () {
      if (!hasNc) assert.fail('nc is missing: install netcat-openbsd (.ci/run does)');
      const pool = testPool();
      try {
        const resolved = { ...host.resolved(), proxyCommand: 'nc %h %p' };
        const tab = TabRecorder.open({ id: newSessionId(), host: resolved, pool, mode: 'create', preference: 'tmux' });
        await tab.waitForState('attached');
        tab.type('echo "via-nc-$((40+2))"\r');
        await tab.waitFor(/via-nc-42/);
        assert.ok(testLog.lines.some((line) => line.includes(`starting ProxyCommand nc 127.0.0.1 ${host.port}`)), 'tokens expanded');
        tab.session.dispose();
      } finally {
        pool.dispose();
      }
    });

    it('reaches the host through `ssh -W %h:%p` via a second sshd', async () => {
      const knownHosts = bastion.writeKnownHosts();
      const command = [
        'ssh -F none -T -o BatchMode=yes -o IdentitiesOnly=yes',
        `-i ${testKeys().clientKey}`,
        `-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes`,
        `-p ${bastion.port} ${bastion.user}@127.0.0.1 -W %h:%p`,
      ].join(' ');
      const pool = testPool();
      try {
        const connection = await pool.acquire({ ...host.resolved(), proxyCommand: command });
        const result = await connection.runScript('echo "user=$(id -un)"');
        assert.match(result.output, new RegExp(`user=${host.user}`));
        // The bastion really carried it: its sshd let the bastion user in.
        assert.match(bastion.log(), new RegExp(`Accepted publickey for ${bastion.user}`));
      } finally {
        pool.dispose();
      }
    });

    it('fails with the command\'s stderr and exit status, in the error the tab shows', async () => {
      const pool = testPool();
      try {
        const resolved = { ...host.resolved(), proxyCommand: `sh -c 'echo "bastion says no to %r@%h:%p" >&2; exit 7'` };
        await assert.rejects(pool.acquire(resolved), (error: unknown) => {
          assert.ok(ConnectError.is(error));
          assert.match(error.message, /exited with status 7/);
          assert.match(error.message, new RegExp(`bastion says no to ${host.user}@127\\.0\\.0\\.1:${host.port}`));
          return true;
        });
        assert.ok(testLog.lines.some((line) => /ProxyCommand: bastion says no/.test(line)), 'stderr is in the log');
        const tab = TabRecorder.open({ id: newSessionId(), host: resolved, pool, mode: 'create', preference: 'tmux' });
        await tab.exited;
        assert.match(tab.plain, /bastion says no/);
      } finally {
        pool.dispose();
      }
    });

    it('refuses unknown %-tokens as ssh does, without running anything', async () => {
      const marker = join(mkdtempSync(join(tmpdir(), 'tether-pc-')), 'ran');
      const pool = testPool();
      try {
        await assert.rejects(pool.acquire({ ...host.resolved(), proxyCommand: `touch ${marker}; nc %h %p %Q` }), /unknown token %Q/);
        assert.throws(() => readFileSync(marker));
      } finally {
        pool.dispose();
      }
    });
  });

  describe('IdentityAgent', () => {
    it('logs in with only the agent at IdentityAgent <custom path>, SSH_AUTH_SOCK unset', async () => {
      const agent = await SshAgent.start([testKeys().clientKey], join(mkdtempSync(join(tmpdir(), 'tether-ia-')), 'custom-agent.socket'));
      const env = { ...process.env };
      delete env.SSH_AUTH_SOCK;
      const pool = testPool({ env });
      try {
        const connection = await pool.acquire({ ...host.resolved(), identityFiles: [], identitiesOnly: false, identityAgent: agent.socket });
        assert.match((await connection.runScript('echo agent-path-ok')).output, /agent-path-ok/);
      } finally {
        pool.dispose();
        agent.stop();
      }
    });

    it('IdentityAgent none ignores SSH_AUTH_SOCK; IdentityAgent $VAR reads the variable', async () => {
      const agent = await SshAgent.start([testKeys().clientKey]);
      const pool = testPool({ env: { ...process.env, SSH_AUTH_SOCK: agent.socket, MY_AGENT: agent.socket } });
      try {
        const base = { ...host.resolved(), identityFiles: [], identitiesOnly: false };
        await assert.rejects(pool.acquire({ ...base, label: 'no-agent', identityAgent: 'none' }), (error: unknown) => ConnectError.is(error) && error.reason === 'auth');
        const connection = await pool.acquire({ ...base, label: 'var-agent', port: host.port, identityAgent: '$MY_AGENT' });
        assert.match((await connection.runScript('echo var-agent-ok')).output, /var-agent-ok/);
      } finally {
        pool.dispose();
        agent.stop();
      }
    });
  });

  describe('ConnectTimeout', () => {
    async function expectTimeout(port: number, seconds: number): Promise<number> {
      const pool = testPool();
      const started = Date.now();
      try {
        await assert.rejects(pool.acquire({ ...host.resolved({ port }), connectTimeoutSeconds: seconds }), (error: unknown) => {
          assert.ok(ConnectError.is(error), String(error));
          assert.equal(error.reason, 'timeout');
          assert.match(error.message, new RegExp(`ConnectTimeout ${seconds} s`));
          return true;
        });
      } finally {
        pool.dispose();
      }
      return Date.now() - started;
    }

    it('gives up on a port that drops packets after ConnectTimeout, not the 10 s handshake timeout', async function () {
      const port = await freePort();
      const rule = ['INPUT', '-i', 'lo', '-p', 'tcp', '--dport', String(port), '-j', 'DROP', '-m', 'comment', '--comment', 'tether-test'];
      try {
        execFileSync('iptables', ['-I', ...rule], { stdio: 'ignore' });
      } catch {
        this.skip(); // no iptables or no NET_ADMIN here; the silent listener below still covers the timer
      }
      try {
        const elapsed = await expectTimeout(port, 2);
        assert.ok(elapsed >= 1900 && elapsed < 8000, `gave up after ${elapsed} ms`);
      } finally {
        execFileSync('iptables', ['-D', ...rule], { stdio: 'ignore' });
      }
    });

    it('gives up on a listener that accepts and never answers (no banner)', async () => {
      const sockets: Socket[] = [];
      const silent: Server = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
      const address = silent.address();
      try {
        const elapsed = await expectTimeout(typeof address === 'object' && address ? address.port : 0, 1);
        assert.ok(elapsed >= 900 && elapsed < 8000, `gave up after ${elapsed} ms`);
      } finally {
        for (const socket of sockets) socket.destroy();
        silent.close();
      }
    });
  });

  describe('StrictHostKeyChecking', () => {
    const empty = (): string => {
      const file = join(mkdtempSync(join(tmpdir(), 'tether-kh-')), 'known_hosts');
      writeFileSync(file, '');
      return file;
    };

    it('yes: refuses an unknown key without asking, and connects to a known one', async () => {
      let asked = 0;
      const pool = testPool({ confirmUnknown: async () => (asked++, true) });
      try {
        await assert.rejects(pool.acquire({ ...host.resolved({ knownHostsFile: empty() }), strictHostKeyChecking: 'yes' }), (error: unknown) => {
          assert.ok(ConnectError.is(error));
          assert.equal(error.reason, 'host-key');
          assert.match(error.message, /not known and StrictHostKeyChecking is yes/);
          return true;
        });
        assert.equal(asked, 0, 'never prompts');
        const connection = await pool.acquire({ ...host.resolved(), strictHostKeyChecking: 'yes' });
        assert.match((await connection.runScript('echo strict-ok')).output, /strict-ok/);
      } finally {
        pool.dispose();
      }
    });

    it('accept-new: trusts an unknown key without asking, then refuses it once it changes', async () => {
      let asked = 0;
      const trustStore = new TrustStore(join(mkdtempSync(join(tmpdir(), 'tether-trust-')), 'known_hosts'));
      const changing = await SshHost.start({ user: 'tetherreachnew' });
      const pool = testPool({ trustStore, confirmUnknown: async () => (asked++, true) });
      try {
        const resolved = { ...changing.resolved({ knownHostsFile: empty() }), strictHostKeyChecking: 'accept-new' as const };
        const connection = await pool.acquire(resolved);
        assert.match((await connection.runScript('echo new-ok')).output, /new-ok/);
        assert.equal(asked, 0, 'never prompts');
        assert.ok(trustStore.entries().some((entry) => entry.patterns === `[127.0.0.1]:${changing.port}`), 'the key is in the trust store');
        pool.dispose();

        await changing.changeHostKey();
        for (const strict of ['accept-new', 'yes', 'ask'] as const) {
          const again = testPool({ trustStore, confirmUnknown: async () => (asked++, true) });
          try {
            await assert.rejects(again.acquire({ ...resolved, strictHostKeyChecking: strict }), (error: unknown) => {
              assert.ok(ConnectError.is(error));
              assert.equal(error.reason, 'host-key', strict);
              assert.equal(error.hostKeyError?.reason, 'changed', strict);
              return true;
            });
          } finally {
            again.dispose();
          }
        }
        assert.equal(asked, 0, 'a changed key is never offered for acceptance');
      } finally {
        pool.dispose();
        await changing.dispose();
      }
    });

    it('HostKeyAlias looks the key up under the alias, without the port', async () => {
      const file = join(mkdtempSync(join(tmpdir(), 'tether-kh-')), 'known_hosts');
      const [, type, key] = host.knownHostsLine().split(' ');
      writeFileSync(file, `build-alias ${type} ${key}\n`);
      const pool = testPool();
      try {
        const connection = await pool.acquire({ ...host.resolved({ knownHostsFile: file }), hostKeyAlias: 'build-alias', strictHostKeyChecking: 'yes' });
        assert.match((await connection.runScript('echo alias-ok')).output, /alias-ok/);
      } finally {
        pool.dispose();
      }
    });
  });
});
