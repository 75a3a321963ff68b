/**
 * The sync server over TLS (--tls-cert/--tls-key), with certificates made by openssl at test time
 * (a throwaway CA and two leaf certificates), and the renewal path: SIGHUP re-reads both files.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { ServerProcess } from './harness';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A CA plus a leaf for 127.0.0.1 signed by it; returns the leaf's paths. */
function makeLeaf(dir: string, name: string): { cert: string; key: string } {
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

function get(url: string, ca: Buffer, path = '/healthz'): Promise<{ status: number; body: string; peerCn: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { ca, agent: false }, (res) => {
      let body = '';
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerCn: String(peer.subject?.CN ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('sync server over TLS', function () {
  this.timeout(60_000);
  let dir: string;
  let ca: Buffer;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tether-tls-'));
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tether-test-ca'], dir);
    ca = readFileSync(join(dir, 'ca.crt'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves HTTPS with --tls-cert/--tls-key and picks up a renewed certificate on SIGHUP', async () => {
    const first = makeLeaf(dir, 'first');
    const second = makeLeaf(dir, 'second');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const server = await ServerProcess.start(['--data-dir', join(dir, 'data'), '--tls-cert', live.cert, '--tls-key', live.key]);
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const before = await get(server.url, ca);
      assert.equal(before.status, 200);
      assert.equal(before.peerCn, 'first');
      const unauthorized = await get(server.url, ca, '/v1/blobs');
      assert.equal(unauthorized.status, 401);

      // Plain HTTP to the TLS port gets nothing useful.
      const plain = await fetch(server.url.replace('https:', 'http:') + '/healthz').then((r) => r.status, () => 'refused');
      assert.notEqual(plain, 200);

      // A broken pair on SIGHUP is refused and the old certificate stays in use.
      writeFileSync(live.key, 'not a key');
      server.child.kill('SIGHUP');
      await waitForLog(server, 'tls_reload_failed');
      assert.equal((await get(server.url, ca)).peerCn, 'first');

      copyFileSync(second.cert, live.cert);
      copyFileSync(second.key, live.key);
      server.child.kill('SIGHUP');
      await waitForLog(server, 'tls_reloaded');
      const after = await get(server.url, ca);
      assert.equal(after.status, 200);
      assert.equal(after.peerCn, 'second');
    } finally {
      await server.stop();
    }
  });

  it('refuses to start with only one of the two files, or with a missing file', async () => {
    await assert.rejects(ServerProcess.start(['--data-dir', join(dir, 'data2'), '--tls-cert', join(dir, 'ca.crt')]), /go together/);
    await assert.rejects(ServerProcess.start(['--data-dir', join(dir, 'data3'), '--tls-cert', join(dir, 'nope.crt'), '--tls-key', join(dir, 'nope.key')]), /ENOENT|no such file/);
  });
});

async function waitForLog(server: ServerProcess, msg: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!server.logs().some((line) => line.msg === msg)) {
    if (Date.now() > deadline) throw new Error(`no ${msg} log line: ${server.lines.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
