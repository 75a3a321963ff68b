/**
 * ProxyCommand, run the way OpenSSH runs it (sshconnect.c ssh_proxy_connect): the command goes to
 * the user's shell as `exec <command>` after %-token expansion, and the child's stdin/stdout carry
 * the SSH stream. ssh2 takes any Duplex as its socket, so the child is wrapped in one.
 *
 * Only a ProxyCommand read from the user's own ~/.ssh/config ever gets here (sshConfig.ts); a host
 * built from another device's listing has it removed (tabManager.hostForRecord).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { Logger } from '../common/logger';
import { parseHostTarget, type ResolvedHost } from './sshConfig';
import { ReasonError } from '../common/reasonError';

export class ProxyCommandError extends ReasonError<'unknown-token' | 'spawn' | 'exited'> {
  override readonly name = 'ProxyCommandError';
}

/** The name the user gave (%n): the alias or typed host, without user and port. */
function originalHost(host: ResolvedHost): string {
  try {
    return parseHostTarget(host.label).host;
  } catch {
    return host.hostName;
  }
}

/** Expands %h %p %r %n and %% as OpenSSH does for ProxyCommand; any other token is an error, as in ssh. */
export function expandProxyCommand(command: string, host: ResolvedHost): string {
  const tokens: Record<string, string> = { '%': '%', h: host.hostName, p: String(host.port), r: host.user, n: originalHost(host) };
  return command.replace(/%(.?)/g, (_whole, key: string) => {
    const value = tokens[key];
    if (value === undefined) {
      throw new ProxyCommandError('unknown-token', `ProxyCommand for ${host.label}: unknown token %${key} (Tether expands %h %p %r %n %%)`);
    }
    return value;
  });
}

/** How to start it: POSIX shells get `exec` so the shell is replaced and a kill reaches the command. */
export function proxyCommandArgv(command: string, platform: NodeJS.Platform, env: NodeJS.ProcessEnv): { file: string; args: string[]; shell: boolean } {
  if (platform === 'win32') return { file: command, args: [], shell: true };
  return { file: env.SHELL || '/bin/sh', args: ['-c', `exec ${command}`], shell: false };
}

const STDERR_TAIL_BYTES = 2048;

/** The child's stdout as the readable side, its stdin as the writable side. */
export class ProxyCommandSocket extends Duplex {
  private stderrTail = '';
  private exitStatus: string | undefined;
  private stderrEnded = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly command: string,
  ) {
    super({ allowHalfOpen: false });
    const { stdout, stdin } = child;
    stdout!.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stdout!.pause();
    });
    // The stream ends once the command has exited and its stderr is read (each waited for at most a
    // second), so a failed connect is reported with the exit status and the last words on stderr.
    stdout!.on('end', () => {
      if (this.exitStatus !== undefined && this.stderrEnded) this.push(null);
      else setTimeout(() => this.push(null), 1000).unref();
    });
    // A command that exits closes the pipe; the error is the exit, reported through 'close'.
    stdin!.on('error', () => undefined);
    stdout!.on('error', (error) => this.destroy(error));
  }

  static start(host: ResolvedHost, log: Logger, platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): ProxyCommandSocket {
    const command = expandProxyCommand(host.proxyCommand ?? '', host);
    const { file, args, shell } = proxyCommandArgv(command, platform, env);
    log.info(`ssh: ${host.label}: starting ProxyCommand ${command}`);
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], shell, windowsHide: true, env });
    const socket = new ProxyCommandSocket(child, command);
    child.stderr!.setEncoding('utf8');
    let partial = '';
    child.stderr!.on('data', (text: string) => {
      socket.stderrTail = (socket.stderrTail + text).slice(-STDERR_TAIL_BYTES);
      const lines = (partial + text).split(/\r?\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') log.warn(`ssh: ${host.label}: ProxyCommand: ${line}`);
    });
    child.stderr!.on('end', () => {
      if (partial.trim() !== '') log.warn(`ssh: ${host.label}: ProxyCommand: ${partial}`);
      socket.stderrEnded = true;
      if (socket.exitStatus !== undefined) setImmediate(() => socket.push(null));
    });
    child.once('error', (error) => {
      socket.exitStatus = `could not start: ${error.message}`;
      socket.destroy(new ProxyCommandError('spawn', `ProxyCommand for ${host.label} could not start: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      socket.exitStatus = signal ? `killed by ${signal}` : `exited with status ${code}`;
      log.info(`ssh: ${host.label}: ProxyCommand ${socket.exitStatus}`);
      // 'exit' can come before the pipes are read to the end: let stdout drain and stderr be read
      // (a grandchild may hold stderr open, hence the bound), then make sure ssh2 sees the end.
      if (socket.stderrEnded) setImmediate(() => socket.push(null));
      else setTimeout(() => socket.push(null), 1000).unref();
    });
    return socket;
  }

  /** For a failed connect: how the command ended and the last of what it printed on stderr. */
  describeFailure(): string | undefined {
    if (this.exitStatus === undefined && this.stderrTail.trim() === '') return undefined;
    const tail = this.stderrTail.trim().split(/\r?\n/).slice(-5).join(' / ');
    return `ProxyCommand ${this.exitStatus ?? 'is still running'}${tail ? `: ${tail}` : ''}`;
  }

  override _read(): void {
    this.child.stdout?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stdin = this.child.stdin;
    if (!stdin || stdin.destroyed) return callback(new ProxyCommandError('exited', `ProxyCommand ${this.exitStatus ?? 'closed its input'}`));
    stdin.write(chunk, () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.child.stdin?.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    callback(error);
  }
}
