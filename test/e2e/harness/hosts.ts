/**
 * SSH hosts for the end-to-end suite: the integration fixtures' throwaway sshd (real OpenSSH, a
 * real test user, real tmux), reached through a TcpProxy so a test can cut the network, and the
 * ~/.ssh/config text that makes the host a pickable alias for the extension.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SshHost, testKeys, testUserName } from '../../support/sshHost';
import { TcpProxy } from '../../support/tcpProxy';
import { ARTIFACTS } from './env';

export const E2E_USER = testUserName('tethere2e');

export class E2eHost {
  private constructor(
    readonly host: SshHost,
    readonly proxy: TcpProxy,
    readonly alias: string,
  ) {}

  static async start(alias = 'e2e-host', user = E2E_USER): Promise<E2eHost> {
    const host = await SshHost.start({ user });
    const proxy = await TcpProxy.start(host.port);
    return new E2eHost(host, proxy, alias);
  }

  /**
   * One host for the enclosing describe(): started before its scenarios (and handed to `started`),
   * disposed after them. Returns what a Scenario asks for: the host, once it runs.
   */
  static forSuite(started: (host: E2eHost) => void, alias?: string): () => E2eHost[] {
    let host: E2eHost | undefined;
    before(async () => {
      host = await E2eHost.start(alias);
      started(host);
    });
    after(async () => {
      await host?.dispose();
    });
    return () => (host ? [host] : []);
  }

  /** ~/.ssh/config for a device: the alias goes through the proxy, with the host key pinned. */
  sshConfig(): string {
    return [
      `Host ${this.alias}`,
      '  HostName 127.0.0.1',
      `  Port ${this.proxy.port}`,
      `  User ${this.host.user}`,
      `  IdentityFile ${testKeys().clientKey}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${this.host.writeKnownHosts(this.proxy.port)}`,
      '',
    ].join('\n');
  }

  /** Tether's tmux sessions on the host. */
  sessions(): string[] {
    return this.host.tmuxSessions();
  }

  /** PIDs of the shells in Tether's tmux panes on the host. */
  panePids(): string[] {
    return this.host
      .tmux("list-panes -a -F '#{session_name} #{pane_pid}'")
      .split('\n')
      .filter((line) => line.startsWith('tether_'))
      .map((line) => line.split(' ')[1]);
  }

  saveLog(prefix: string): string | undefined {
    if (!existsSync(this.host.logPath)) return undefined;
    const target = join(ARTIFACTS, `${prefix}--sshd-${this.alias}.log`);
    copyFileSync(this.host.logPath, target);
    return target;
  }

  /** Ends every Tether session on the host (between tests). */
  clearSessions(): void {
    this.host.reboot();
  }

  async dispose(): Promise<void> {
    await this.proxy.close().catch(() => undefined);
    await this.host.dispose();
  }
}
