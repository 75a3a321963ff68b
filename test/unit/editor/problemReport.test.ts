import * as assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { utils } from 'ssh2';
import { formatSyncKey, generateSyncKey } from '../../../src/sync/syncKey';
import { REPORT_LOG_LINES, ProblemReportInput, buildProblemReport, redact } from '../../../src/editor/problemReport';

const baseInput = (over: Partial<ProblemReportInput> = {}): ProblemReportInput => ({
  tetherVersion: '0.1.0',
  vscodeVersion: '1.99.0',
  appName: 'code-server',
  uiKind: 'web',
  extensionSide: 'remote (workspace)',
  nodeVersion: 'v20.19.0',
  platform: 'linux 6.1.0 x64',
  tmuxMode: 'control',
  multiplexer: 'auto',
  syncMode: 'off',
  hosts: [],
  logLines: [],
  userNames: [],
  ...over,
});

describe('problem report redaction', () => {
  it('removes a real sync key, whole or cut short', () => {
    const key = formatSyncKey(generateSyncKey());
    const out = redact(`sync: pasted key ${key} accepted; earlier ${key.slice(0, 20)}`);
    assert.ok(!out.includes(key.slice(8, 20)), out);
    assert.match(out, /pasted key <sync key redacted> accepted/);
  });

  it('removes private keys, PEM and OpenSSH, also when the log tail cuts the block', () => {
    const { privateKey } = generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const body = privateKey.split('\n')[1];
    const openssh = ['-----BEGIN OPENSSH PRIVATE KEY-----', randomBytes(48).toString('base64'), randomBytes(48).toString('base64'), '-----END OPENSSH PRIVATE KEY-----'].join('\n');
    const out = redact(`before\n${privateKey.trimEnd()}\nmiddle\n${openssh}\nafter`);
    assert.ok(!out.includes(body), out);
    assert.ok(!out.includes(openssh.split('\n')[1]), out);
    assert.equal(out, 'before\n<private key redacted>\nmiddle\n<private key redacted>\nafter');
    const cut = redact(`key file:\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n${randomBytes(30).toString('base64')}`);
    assert.equal(cut, 'key file:\n<private key redacted>');
  });

  it('removes host keys (typed and bare base64) and their SHA256 and MD5 fingerprints', () => {
    // A real OpenSSH public key line, as known_hosts holds it.
    const blob = utils.generateKeyPairSync('ed25519').public.split(' ')[1];
    assert.match(blob, /^AAAA/);
    const sha = 'SHA256:' + randomBytes(32).toString('base64').replace(/=+$/, '');
    const md5 = [...randomBytes(16)].map((byte) => byte.toString(16).padStart(2, '0')).join(':');
    const text = `known_hosts: [127.0.0.1]:2222 ssh-ed25519 ${blob}\nthe key ${blob} changed: expected ${sha}, got MD5:${md5}`;
    const out = redact(text);
    assert.ok(!out.includes(blob.slice(4, 30)), out);
    assert.ok(!out.includes(sha.slice(7)), out);
    assert.ok(!out.includes(md5), out);
    assert.match(out, /ssh-ed25519 <host key redacted>/);
    assert.match(out, /expected SHA256:<fingerprint redacted>, got <fingerprint redacted>/);
  });

  it('removes tokens, bearer headers, URL credentials, passphrases and passwords', () => {
    const token = randomBytes(32).toString('base64url');
    const hex = randomBytes(32).toString('hex');
    const text = [
      `GET /v1/slots Authorization: Bearer ${token}`,
      `token=${hex} account=${randomBytes(24).toString('hex')}`,
      'connecting to https://alice:hunter2@sync.example.org/api',
      'passphrase: "correct horse battery staple" for ~/.ssh/id_ed25519',
      'password=s3cr3t! retry',
      `syncKey: abc123def api_key='xyz' X-Tether-Token: ${token}`,
    ].join('\n');
    const out = redact(text);
    for (const secret of [token, hex, 'hunter2', 'correct horse', 's3cr3t!', 'abc123def', "'xyz'", 'alice']) assert.ok(!out.includes(secret), `${secret} left in:\n${out}`);
    assert.match(out, /Authorization: Bearer <redacted>/);
    assert.match(out, /https:\/\/<user>@sync\.example\.org\/api/);
    assert.match(out, /passphrase: <redacted> for ~\/\.ssh\/id_ed25519/);
  });

  it('removes user names: user@host, home folders, ssh config User, and every name it is given', () => {
    const text = [
      'connect bob@build-box:22 failed: All configured authentication methods failed',
      'IdentityFile /home/carol/.ssh/id_rsa missing; C:\\Users\\Dave\\.ssh\\config read',
      'config: Host x User erin',
      'session tether_abcdefghijklmnopqrstuvwxyz on host frank-laptop: attached as frank',
      'agent: /Users/gina/.tether/agent/s.sock',
    ].join('\n');
    const out = redact(text, ['frank', 'erin']);
    for (const name of ['bob', 'carol', 'Dave', 'erin', 'gina']) assert.ok(!new RegExp(`\\b${name}\\b`).test(out), `${name} left in:\n${out}`);
    assert.match(out, /connect <user>@build-box:22 failed/);
    assert.match(out, /\/home\/<user>\/\.ssh\/id_rsa/);
    assert.match(out, /attached as <user>/);
    // Whole words only: a host that contains the name is not mangled, and session IDs stay (they help).
    assert.match(out, /frank-laptop/);
    assert.match(out, /tether_abcdefghijklmnopqrstuvwxyz/);
  });

  it('does not blank every word for a one-letter user name, but still catches it in user@host', () => {
    assert.equal(redact('a tab on a@box', ['a']), 'a tab on <user>@box');
  });

  it('leaves ordinary log text alone', () => {
    const text = '2026-12-02 15:40:10.123 [info] session tether_abc: attached (tmux 3.3a, control mode) on e2e-host after 412 ms; host key for e2e-host verified';
    assert.equal(redact(text), text);
  });
});

describe('problem report block', () => {
  it('names versions, mode and hosts, and redacts hosts and log lines', () => {
    const key = formatSyncKey(generateSyncKey());
    const report = buildProblemReport(
      baseInput({
        hosts: [
          { label: 'ops@db1', connected: true, os: 'Linux 6.1.0-18-amd64 x86_64', tmux: '3.3a', screen: '' },
          { label: 'web', connected: false, note: 'not asked (no open connection)' },
        ],
        logLines: ['first', `sync key ${key}`, 'connect ops@db1: ok', '```'],
        userNames: ['ops'],
      }),
    );
    assert.match(report, /- Tether: 0\.1\.0/);
    assert.match(report, /- VS Code: 1\.99\.0 \(code-server, web UI, local window\)/);
    assert.match(report, /- Node: v20\.19\.0/);
    assert.match(report, /tether\.tmux\.mode: control/);
    assert.match(report, /- Host <user>@db1: connected; OS Linux 6\.1\.0-18-amd64 x86_64; tmux 3\.3a; no screen/);
    assert.match(report, /- Host web: not connected; not asked \(no open connection\)/);
    assert.ok(!report.includes(key) && !/\bops\b/.test(report), report);
    assert.match(report, /Last 4 log lines/);
    // The block's own fence cannot be closed by a log line.
    assert.equal(report.split('```').length - 1, 2);
  });

  it(`keeps only the last ${REPORT_LOG_LINES} log lines`, () => {
    const lines = Array.from({ length: REPORT_LOG_LINES + 20 }, (_, i) => `line-${i}`);
    const report = buildProblemReport(baseInput({ logLines: lines }));
    assert.ok(!report.includes('line-19\n'));
    assert.match(report, /line-20\n/);
    assert.match(report, new RegExp(`line-${REPORT_LOG_LINES + 19}`));
  });
});
