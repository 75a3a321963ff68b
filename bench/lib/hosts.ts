/**
 * Loopback OpenSSH hosts for the benchmarks: test/support/sshHost.ts's SshHost with a quieter sshd
 * (LogLevel ERROR, no last-login line, room for many connections at once) and optionally the tmux
 * on the host's PATH that logs every call: the counting pass uses it, the timed passes never do.
 */
import { rmSync } from 'node:fs';
import type { ResolvedHost } from '../../src/ssh/sshConfig';
import { SshHost, testKeys } from '../../test/support/sshHost';

export class BenchHost {
  /** known_hosts for the host's own port, written once (timed code asks for resolved() often). */
  private readonly knownHosts: string;

  private constructor(readonly host: SshHost) {
    this.knownHosts = host.writeKnownHosts();
  }

  /** maxSessions: sshd's MaxSessions; undefined leaves OpenSSH's default (10 per connection). */
  static async start(user: string, options: { countTmux?: boolean; maxSessions?: number } = {}): Promise<BenchHost> {
    const sshdConfig = ['PrintLastLog no', 'MaxStartups 100:30:200', ...(options.maxSessions === undefined ? [] : [`MaxSessions ${options.maxSessions}`])];
    return new BenchHost(await SshHost.start({ user, logLevel: 'ERROR', sshdConfig, countTmux: options.countTmux }));
  }

  get port(): number {
    return this.host.port;
  }

  get user(): string {
    return this.host.user;
  }

  /** What Tether's ConnectionPool gets for this host (optionally through another port, e.g. a proxy). */
  resolved(port = this.port): ResolvedHost {
    return this.host.resolved({ port, knownHostsFile: this.knownHostsFile(port) });
  }

  /** Arguments for the system OpenSSH client, as the brief prescribes, before the remote command. */
  sshArgs(extra: string[] = [], port = this.port): string[] {
    return [
      '-F', '/dev/null',
      '-o', `UserKnownHostsFile=${this.knownHostsFile(port)}`,
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'ControlMaster=no',
      '-o', 'ControlPath=none',
      '-i', testKeys().clientKey,
      '-p', String(port),
      ...extra,
      `${this.user}@127.0.0.1`,
    ];
  }

  run(command: string): string {
    return this.host.run(command);
  }

  tmux(args: string): string {
    return this.host.tmux(args);
  }

  /** Lines logged by the tmux wrapper since the last call (counting hosts only). */
  takeTmuxCalls(): string[] {
    return this.host.takeTmuxCalls();
  }

  killTmuxServer(): void {
    this.host.tmux('kill-server');
  }

  async dispose(): Promise<void> {
    await this.host.dispose();
    rmSync(this.host.dir, { recursive: true, force: true });
  }

  private knownHostsFile(port: number): string {
    return port === this.port ? this.knownHosts : this.host.writeKnownHosts(port);
  }
}
