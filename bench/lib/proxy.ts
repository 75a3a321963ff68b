/**
 * A TCP proxy in front of an sshd that the reconnect benchmark can cut (every connection reset).
 * Like test/integration/fixtures/tcpProxy.ts, but with Nagle off on both legs, so the proxy itself
 * adds no delayed-ACK stalls to whatever it carries (both Tether and the OpenSSH baseline go through it).
 */
import { Server, Socket, createConnection, createServer } from 'node:net';

export class CutProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(targetPort: number): Promise<CutProxy> {
    const pairs = new Set<[Socket, Socket]>();
    const server = createServer({ noDelay: true }, (client) => {
      const upstream = createConnection({ port: targetPort, host: '127.0.0.1', noDelay: true });
      client.setNoDelay(true);
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const close = (): void => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      for (const socket of pair) {
        socket.on('close', close);
        socket.on('error', close);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    const proxy = new CutProxy(server, typeof address === 'object' && address ? address.port : 0);
    (proxy as unknown as { pairs: Set<[Socket, Socket]> }).pairs = pairs;
    return proxy;
  }

  /** Resets every live connection, as a dropped network does once the OS notices. */
  cut(): void {
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
