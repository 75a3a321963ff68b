/**
 * A TCP proxy in front of an sshd that the benchmarks can cut (every connection reset) and shape:
 * a one-way delay in each direction (RTT is twice it), optional jitter and a bandwidth cap, as a
 * real network has (issue 16). Both Tether and the OpenSSH baseline go through the same proxy.
 * Nagle is off on both legs, so the proxy itself adds no delayed-ACK stalls. Bytes are never
 * reordered; the connection's end is delayed like its data.
 */
import { Server, Socket, createConnection, createServer } from 'node:net';
import { DelayLine, type LinkShape } from '../../test/support/delayLine';

export type { LinkShape };

export class CutProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private link: LinkShape = { oneWayDelayMs: 0 };
  /** Connections accepted so far (each is one SSH connection). */
  connections = 0;

  private constructor(private server: Server | undefined, readonly port: number) {}

  static async start(targetPort: number, link: LinkShape = { oneWayDelayMs: 0 }): Promise<CutProxy> {
    let proxy!: CutProxy;
    const server = createServer({ noDelay: true }, (client) => proxy.accept(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    proxy = new CutProxy(server, typeof address === 'object' && address ? address.port : 0);
    proxy.link = { ...link };
    return proxy;
  }

  setLink(link: LinkShape): void {
    this.link = { ...link };
  }

  get rttMs(): number {
    return this.link.oneWayDelayMs * 2;
  }

  private accept(client: Socket, targetPort: number): void {
    this.connections += 1;
    const upstream = createConnection({ port: targetPort, host: '127.0.0.1', noDelay: true });
    client.setNoDelay(true);
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const close = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    const forward = (from: Socket, to: Socket): void => {
      const line = new DelayLine(() => this.link);
      from.on('data', (chunk: Buffer) => line.send(() => void (to.destroyed || to.write(chunk)), chunk.length));
      from.on('end', () => line.send(() => to.end(), 0));
    };
    forward(client, upstream);
    forward(upstream, client);
    for (const socket of pair) {
      socket.on('close', () => setTimeout(close, this.link.oneWayDelayMs + (this.link.jitterMs ?? 0) + 50));
      socket.on('error', close);
    }
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
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
