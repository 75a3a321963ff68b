import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuthPrompter } from '../../src/ssh/auth';
import { newSessionId } from '../../src/common/sessionId';
import { ConnectError } from '../../src/ssh/sshConnection';
import { SshHost, testKeys } from '../support/sshHost';
import { TabRecorder, noPrompts, testLog, testPool } from './fixtures/sessionHarness';

describe('authentication methods against a real sshd', function () {
  let host: SshHost;
  const password = "p4ss w0rd;$(touch /tmp/never)'\"";

  before(async function () {
    this.timeout(30_000);
    host = await SshHost.start({ user: 'tetherauth', password });
  });
  after(async () => host?.dispose());

  it('logs in with a typed password, asks again after a wrong one, and never logs it', async () => {
    const asked: number[] = [];
    let kept = '';
    const prompter: AuthPrompter = {
      ...noPrompts,
      password: async (_label, _user, attempt) => {
        asked.push(attempt);
        return attempt === 1 ? 'wrong' : password;
      },
      passwordAccepted: (_label, _user, accepted) => (kept = accepted),
    };
    const pool = testPool({ prompter });
    try {
      const resolved = { ...host.resolved(), identityFiles: [] };
      const tab = TabRecorder.open({ id: newSessionId(), host: resolved, pool, mode: 'create', preference: 'tmux' });
      await tab.waitForState('attached');
      tab.type('echo logged-in-by-password\r');
      await tab.waitFor(/logged-in-by-password\r?\n/);
      assert.deepEqual(asked, [1, 2]);
      assert.equal(kept, password, 'the prompter may offer to keep the password that worked');
      assert.ok(!testLog.lines.some((line) => line.includes(password) || line.includes('wrong')), 'no password in the log');
      tab.session.dispose();
    } finally {
      pool.dispose();
    }
  });

  it('stops with a clear error when the user cancels the password prompt', async () => {
    const pool = testPool();
    try {
      await assert.rejects(pool.acquire({ ...host.resolved(), identityFiles: [] }), (error: unknown) => {
        assert.ok(ConnectError.is(error));
        assert.equal(error.reason, 'auth');
        assert.match(error.message, new RegExp(`authentication as ${host.user} failed`));
        return true;
      });
    } finally {
      pool.dispose();
    }
  });

  it('uses ssh-agent when SSH_AUTH_SOCK is set and the config allows it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-agent-'));
    const socket = join(dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const previous = process.env.SSH_AUTH_SOCK;
    try {
      for (let i = 0; i < 100; i++) {
        try {
          execFileSync('ssh-add', [testKeys().clientKey], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      process.env.SSH_AUTH_SOCK = socket;
      const pool = testPool();
      try {
        // No identity files at all: only the agent can log in.
        const connection = await pool.acquire({ ...host.resolved(), identityFiles: [], identitiesOnly: false });
        const result = await connection.runScript('echo agent-ok');
        assert.match(result.output, /agent-ok/);
      } finally {
        pool.dispose();
      }
    } finally {
      if (previous === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = previous;
      agent.kill();
    }
  });

  it('asks for the passphrase of an encrypted key, and asks again after a wrong one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-enc-key-'));
    const key = join(dir, 'id_ed25519');
    const passphrase = 'correct horse';
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', key]);
    const keyHost = await SshHost.start({ user: 'tetherauthkey' });
    const { writeFileSync, readFileSync } = await import('node:fs');
    writeFileSync(join(keyHost.dir, 'authorized_keys'), readFileSync(`${key}.pub`));
    const attempts: number[] = [];
    const pool = testPool({
      prompter: { ...noPrompts, keyPassphrase: async (_path, attempt) => (attempts.push(attempt), attempt === 1 ? 'nope' : passphrase) },
    });
    try {
      const connection = await pool.acquire({ ...keyHost.resolved(), identityFiles: [key] });
      assert.match((await connection.runScript('echo key-ok')).output, /key-ok/);
      assert.deepEqual(attempts, [1, 2]);
      assert.ok(!testLog.lines.some((line) => line.includes(passphrase)));
    } finally {
      pool.dispose();
      await keyHost.dispose();
    }
  });
});
