/**
 * OpenSSH user certificates against a real sshd that trusts a user CA (TrustedUserCAKeys) and has
 * no authorized_keys entry for the key: only the certificate can let it in.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectError } from '../../src/ssh/sshConnection';
import { SshAgent } from './fixtures/sshAgent';
import { SshHost } from '../support/sshHost';
import { testPool } from './fixtures/sessionHarness';

function keygen(file: string, type = 'ed25519'): string {
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', file, '-f', file]);
  return file;
}

describe('user certificates (real sshd with TrustedUserCAKeys)', function () {
  let dir: string;
  let ca: string;
  let host: SshHost;

  /** Signs `key`.pub for `principal`; the certificate lands at `<key>-cert.pub`. */
  function sign(key: string, principal: string, validity = '+1h'): string {
    execFileSync('ssh-keygen', ['-q', '-s', ca, '-I', `tether-test-${principal}`, '-n', principal, '-V', validity, `${key}.pub`]);
    return `${key}-cert.pub`;
  }

  before(async function () {
    this.timeout(30_000);
    dir = mkdtempSync(join(tmpdir(), 'tether-ca-'));
    chmodSync(dir, 0o755);
    ca = keygen(join(dir, 'user_ca'));
    chmodSync(`${ca}.pub`, 0o644);
    host = await SshHost.start({ user: 'tethercert', trustedUserCAKeys: `${ca}.pub` });
  });
  after(async () => host?.dispose());

  for (const type of ['ed25519', 'ecdsa', 'rsa']) {
    it(`logs in with an ${type} key and its -cert.pub beside it, and not with the key alone`, async () => {
      const key = keygen(join(dir, `id_${type}`), type);
      const pool = testPool();
      try {
        // Without a certificate: the key is not in authorized_keys, so it must fail.
        await assert.rejects(pool.acquire({ ...host.resolved(), label: `${type}-plain`, identityFiles: [key] }), (error: unknown) => ConnectError.is(error) && error.reason === 'auth');
        sign(key, host.user);
        const connection = await pool.acquire({ ...host.resolved(), label: `${type}-cert`, identityFiles: [key] });
        assert.match((await connection.runScript('echo cert-ok')).output, /cert-ok/);
        assert.match(host.log(), new RegExp(`Accepted publickey for ${host.user} .*(CERT|cert)`, 'i'));
      } finally {
        pool.dispose();
      }
    });
  }

  it('uses CertificateFile from elsewhere, and says why a certificate for another user is not offered', async () => {
    const key = keygen(join(dir, 'id_elsewhere'));
    const certDir = mkdtempSync(join(tmpdir(), 'tether-certs-'));
    const pool = testPool();
    try {
      copyFileSync(sign(key, 'somebody-else'), join(certDir, 'wrong-cert.pub'));
      await assert.rejects(pool.acquire({ ...host.resolved(), label: 'wrong', identityFiles: [`${key}-missing`, key], certificateFiles: [join(certDir, 'wrong-cert.pub')] }), (error: unknown) => {
        assert.ok(ConnectError.is(error));
        assert.match(error.message, /is not for user tethercert/);
        return true;
      });
      execFileSync('rm', ['-f', `${key}-cert.pub`]);
      copyFileSync(sign(key, host.user), join(certDir, 'right-cert.pub'));
      execFileSync('rm', ['-f', `${key}-cert.pub`]);
      const connection = await pool.acquire({ ...host.resolved(), label: 'right', identityFiles: [key], certificateFiles: [join(certDir, 'right-cert.pub')] });
      assert.match((await connection.runScript('echo certfile-ok')).output, /certfile-ok/);
    } finally {
      pool.dispose();
    }
  });

  it('logs in with a certificate the agent offers (no identity files), and not with the agent\'s plain key', async () => {
    const key = keygen(join(dir, 'id_agent'));
    const plainAgent = await SshAgent.start([key]);
    const pool = testPool({ env: { ...process.env, SSH_AUTH_SOCK: plainAgent.socket } });
    try {
      await assert.rejects(pool.acquire({ ...host.resolved(), label: 'agent-plain', identityFiles: [], identitiesOnly: false }), (error: unknown) => ConnectError.is(error) && error.reason === 'auth');
    } finally {
      pool.dispose();
      plainAgent.stop();
    }
    sign(key, host.user);
    // ssh-add loads <key>-cert.pub with the key: the agent lists the certificate and the key.
    const agent = await SshAgent.start([key]);
    assert.match(agent.list(), /ED25519-CERT/);
    const certPool = testPool({ env: { ...process.env, SSH_AUTH_SOCK: agent.socket } });
    try {
      const connection = await certPool.acquire({ ...host.resolved(), label: 'agent-cert', identityFiles: [], identitiesOnly: false });
      assert.match((await connection.runScript('echo agent-cert-ok')).output, /agent-cert-ok/);
    } finally {
      certPool.dispose();
      agent.stop();
    }
  });

  it('does not offer an expired certificate, and says so', async () => {
    const key = keygen(join(dir, 'id_expired'));
    sign(key, host.user, '20200101:20200102');
    const pool = testPool();
    try {
      await assert.rejects(pool.acquire({ ...host.resolved(), label: 'expired', identityFiles: [key] }), (error: unknown) => {
        assert.ok(ConnectError.is(error));
        assert.match(error.message, /expired/);
        return true;
      });
    } finally {
      pool.dispose();
    }
  });
});
