/**
 * Loopback OpenSSH hosts for the benchmarks. Same recipe as test/integration/fixtures/sshHost.ts
 * (whose key and user helpers it reuses), plus an optional `tmux` wrapper on the host's PATH that
 * logs every tmux invocation: the counting pass uses it, the timed passes never do.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResolvedHost } from '../../src/ssh/sshConfig';
import { ensureUser, freePort, testKeys } from '../../test/integration/fixtures/sshHost';

export class BenchHost {
  readonly dir: string;
  readonly hostKey: string;
  readonly knownHosts: string;
  readonly tmuxLog: string | undefined;
  readonly home: string;
  private child: ChildProcess | undefined;

  private constructor(
    readonly user: string,
    readonly port: number,
    countTmux: boolean,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `tether-bench-${user}-`));
    chmodSync(this.dir, 0o755);
    this.hostKey = join(this.dir, 'host_ed25519');
    this.knownHosts = join(this.dir, 'known_hosts');
    this.home = ensureUser(user).home;
    this.tmuxLog = countTmux ? join(this.dir, 'tmux-calls.log') : undefined;
  }

  /** maxSessions: sshd's MaxSessions; undefined leaves OpenSSH's default (10 per connection). */
  static async start(user: string, options: { countTmux?: boolean; maxSessions?: number } = {}): Promise<BenchHost> {
    const host = new BenchHost(user, await freePort(), options.countTmux ?? false);
    await host.launch(options.maxSessions);
    return host;
  }

  /** What Tether's ConnectionPool gets for this host (optionally through another port, e.g. a proxy). */
  resolved(port = this.port): ResolvedHost {
    const knownHosts = port === this.port ? this.knownHosts : this.writeKnownHosts(port);
    return {
      label: `${this.user}@127.0.0.1:${port}`,
      hostName: '127.0.0.1',
      user: this.user,
      port,
      identityFiles: [testKeys().clientKey],
      identitiesOnly: true,
      knownHostsFiles: [knownHosts],
      proxyJump: [],
    };
  }

  /** Arguments for the system OpenSSH client, as the brief prescribes, before the remote command. */
  sshArgs(extra: string[] = [], port = this.port): string[] {
    return [
      '-F', '/dev/null',
      '-o', `UserKnownHostsFile=${port === this.port ? this.knownHosts : this.writeKnownHosts(port)}`,
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

  writeKnownHosts(port: number): string {
    const [type, key] = readFileSync(`${this.hostKey}.pub`, 'utf8').trim().split(/\s+/);
    const path = join(this.dir, `known_hosts_${port}`);
    writeFileSync(path, `[127.0.0.1]:${port} ${type} ${key}\n`);
    return path;
  }

  run(command: string): string {
    return execFileSync('/usr/sbin/runuser', ['-u', this.user, '--', 'sh', '-c', command], {
      encoding: 'utf8',
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: this.home },
      maxBuffer: 64 * 1024 * 1024,
    });
  }

  tmux(args: string): string {
    try {
      return this.run(`tmux -L tether ${args} 2>&1`);
    } catch (error) {
      return String((error as { stdout?: string }).stdout ?? '');
    }
  }

  /** Lines logged by the tmux wrapper since the last call (counting hosts only). */
  takeTmuxCalls(): string[] {
    if (!this.tmuxLog || !existsSync(this.tmuxLog)) return [];
    const lines = readFileSync(this.tmuxLog, 'utf8').split('\n').filter(Boolean);
    writeFileSync(this.tmuxLog, '');
    return lines;
  }

  killTmuxServer(): void {
    this.tmux('kill-server');
  }

  async dispose(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
    this.killTmuxServer();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(maxSessions: number | undefined): Promise<void> {
    mkdirSync('/run/sshd', { recursive: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', this.hostKey]);
    writeFileSync(this.knownHosts, `[127.0.0.1]:${this.port} ${readFileSync(`${this.hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')}\n`);
    const authorizedKeys = join(this.dir, 'authorized_keys');
    writeFileSync(authorizedKeys, `${testKeys().clientPublicKey}\n`, { mode: 0o644 });
    const lines = [
      `Port ${this.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${this.hostKey}`,
      `PidFile ${join(this.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'UsePAM no',
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin no',
      `AllowUsers ${this.user}`,
      'LogLevel ERROR',
      'PrintMotd no',
      'PrintLastLog no',
      'ClientAliveInterval 0',
      'MaxStartups 100:30:200',
      ...(maxSessions === undefined ? [] : [`MaxSessions ${maxSessions}`]),
    ];
    if (this.tmuxLog) {
      const bin = join(this.dir, 'bin');
      mkdirSync(bin);
      chmodSync(bin, 0o755);
      writeFileSync(this.tmuxLog, '', { mode: 0o666 });
      chmodSync(this.tmuxLog, 0o666);
      const wrapper = join(bin, 'tmux');
      writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${this.tmuxLog}\nexec /usr/bin/tmux "$@"\n`, { mode: 0o755 });
      lines.push(`SetEnv PATH=${bin}:/usr/local/bin:/usr/bin:/bin`);
    }
    const config = join(this.dir, 'sshd_config');
    writeFileSync(config, `${lines.join('\n')}\n`);
    const child = spawn('/usr/sbin/sshd', ['-D', '-f', config, '-E', join(this.dir, 'sshd.log')], { stdio: 'ignore' });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${readFileSync(join(this.dir, 'sshd.log'), 'utf8')}`);
      const ok = await new Promise<boolean>((resolve) => {
        const socket = connect(this.port, '127.0.0.1');
        socket.once('data', (data) => {
          socket.destroy();
          resolve(data.toString().startsWith('SSH-'));
        });
        socket.once('error', () => resolve(false));
      });
      if (ok) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`sshd on port ${this.port} did not start`);
  }
}
