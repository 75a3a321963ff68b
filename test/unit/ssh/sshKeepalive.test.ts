import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Client, Server, utils } from 'ssh2';

/**
 * ssh2's keepalive with our patch (patches/ssh2+1.17.0.patch): any bytes from the server count as
 * a sign of life, as OpenSSH's ServerAliveCountMax does. The server is a fake (an in-process ssh2
 * Server): real sshd cannot be told to answer pings late, which is what a reply queued behind
 * megabytes of output looks like to a busy client.
 */
describe('ssh keepalive (fake server: ssh2 Server answering pings late)', () => {
  it('keeps a connection that streams output although the replies to its pings come late', async function () {
    this.timeout(20_000);
    const hostKey = utils.generateKeyPairSync('ed25519').private;
    const server = new Server({ hostKeys: [hostKey] }, (conn) => {
      // Each ping's reply leaves 3 s late: with a 300 ms interval and 2 misses allowed, the client
      // would call the server dead after ~900 ms if only replies counted.
      const proto = (conn as unknown as { _protocol: { requestFailure(): void } })._protocol;
      const reply = proto.requestFailure.bind(proto);
      proto.requestFailure = () => void setTimeout(reply, 3000);
      conn.on('authentication', (ctx) => ctx.accept());
      conn.on('session', (accept) => {
        accept().on('exec', (acceptExec) => {
          const stream = acceptExec();
          const timer = setInterval(() => stream.write('output\n'), 50);
          stream.on('close', () => clearInterval(timer));
          conn.on('close', () => clearInterval(timer));
        });
      });
      conn.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = new Client();
    try {
      let failure: Error | undefined;
      client.on('error', (error) => (failure = error));
      await new Promise<void>((resolve, reject) => {
        client.once('ready', resolve).once('error', reject);
        client.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, username: 'dev', hostVerifier: () => true, keepaliveInterval: 300, keepaliveCountMax: 2 });
      });
      let lines = 0;
      await new Promise<void>((resolve, reject) => {
        client.exec('stream', (error, channel) => {
          if (error) return reject(error);
          channel.on('data', (chunk: Buffer) => (lines += chunk.toString().split('\n').length - 1));
          setTimeout(resolve, 2500);
        });
      });
      assert.equal(failure, undefined, `the connection was dropped: ${failure?.message}`);
      assert.ok(lines > 20, `output kept flowing (${lines} lines)`);
    } finally {
      client.end();
      server.close();
    }
  });
});
