import { EventEmitter } from 'node:events';
import { Client } from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import type { Duplex } from 'node:stream';
import { AuthPrompter, createAuthPlan } from './auth';
import { HostKeyCheck, HostKeyError, HostKeyPromptInfo, createHostKeyCheck } from './hostKeyVerifier';
import type { Logger } from './logger';
import { ScriptResult, openScriptChannel, runScript } from './remoteExec';
import type { ResolvedHost } from './sshConfig';
import type { TrustStore } from './trustStore';
import type { PseudoTtyOptions } from 'ssh2';

export type ConnectFailureReason = 'host-key' | 'auth' | 'unreachable' | 'timeout' | 'closed';

export class ConnectError extends Error {
  constructor(
    readonly reason: ConnectFailureReason,
    message: string,
    readonly hostKeyError?: HostKeyError,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
  static is(error: unknown): error is ConnectError {
    return error instanceof ConnectError;
  }
  /** Failures that a retry will not fix without the user doing something. */
  get permanent(): boolean {
    return this.reason === 'host-key' || this.reason === 'auth';
  }
}

export interface ConnectionOptions {
  prompter: AuthPrompter;
  trustStore: TrustStore;
  confirmUnknownHostKey: (info: HostKeyPromptInfo) => Promise<boolean>;
  log: Logger;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  readyTimeoutMs?: number;
}

/** One SSH connection to a host, with each ProxyJump hop as a channel over the previous hop. */
export class SshConnection extends EventEmitter {
  private closed = false;
  private readonly hops: Client[] = [];

  private constructor(
    readonly host: ResolvedHost,
    readonly client: Client,
  ) {
    super();
  }

  static async open(host: ResolvedHost, options: ConnectionOptions): Promise<SshConnection> {
    const withCommand = [...host.proxyJump, host].find((hop) => hop.proxyCommand);
    if (withCommand) {
      throw new ConnectError('unreachable', `${withCommand.label} uses ProxyCommand, which Tether cannot run; use ProxyJump instead`);
    }
    const hops: Client[] = [];
    let sock: Duplex | undefined;
    try {
      for (const hop of host.proxyJump) {
        const client = await connectOne(hop, options, sock);
        hops.push(client);
        sock = await forward(client, hop, host.proxyJump[hops.length] ?? host);
      }
      const client = await connectOne(host, options, sock);
      const connection = new SshConnection(host, client);
      connection.hops.push(...hops);
      const onGone = (): void => connection.markClosed();
      client.on('close', onGone);
      client.on('end', onGone);
      for (const hop of hops) hop.on('close', () => connection.dispose());
      return connection;
    } catch (error) {
      for (const hop of hops) hop.end();
      throw error;
    }
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  runScript(script: string, timeoutMs?: number): Promise<ScriptResult> {
    return runScript(this.client, script, timeoutMs);
  }

  openTerminal(script: string, pty: PseudoTtyOptions): Promise<ClientChannel> {
    return openScriptChannel(this.client, script, pty);
  }

  /** Ends the connection and every hop under it. */
  dispose(): void {
    this.client.end();
    for (const hop of this.hops) hop.end();
    this.markClosed();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const hop of this.hops) hop.end();
    this.emit('close');
  }
}

function describe(host: ResolvedHost): string {
  return `${host.user}@${host.hostName}:${host.port}`;
}

async function connectOne(host: ResolvedHost, options: ConnectionOptions, sock?: Duplex): Promise<Client> {
  const check: HostKeyCheck = createHostKeyCheck({
    label: host.label,
    host: host.hostKeyAlias ?? host.hostName,
    port: host.port,
    knownHostsFiles: [...host.knownHostsFiles, ...(host.globalKnownHostsFiles ?? [])],
    trustStore: options.trustStore,
    confirmUnknown: options.confirmUnknownHostKey,
  });
  const auth = createAuthPlan(host, options.prompter);
  const client = new Client();
  const config: ConnectConfig = {
    host: host.hostName,
    port: host.port,
    username: host.user,
    sock: sock as ConnectConfig['sock'],
    hostVerifier: (key: Buffer, callback: (ok: boolean) => void) => check.verify(key, callback),
    authHandler: auth.handler,
    keepaliveInterval: options.keepaliveIntervalMs ?? 5000,
    keepaliveCountMax: options.keepaliveCountMax ?? 3,
    readyTimeout: options.readyTimeoutMs ?? 20_000,
    tryKeyboard: true,
  } as ConnectConfig;
  options.log.info(`ssh: connecting to ${host.label} (${describe(host)})${sock ? ' through a jump host' : ''}`);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: ConnectError): void => {
      if (settled) return;
      settled = true;
      client.end();
      options.log.warn(`ssh: ${error.message}`);
      reject(error);
    };
    client.once('ready', () => {
      settled = true;
      auth.onReady();
      options.log.info(`ssh: connected to ${host.label}`);
      client.on('error', (error) => options.log.warn(`ssh: ${host.label}: ${error.message}`));
      resolve(client);
    });
    client.on('error', (error: Error & { level?: string; code?: string }) => {
      if (settled) return;
      if (check.failure) {
        fail(new ConnectError('host-key', check.failure.message, check.failure));
      } else if (error.level === 'client-authentication') {
        fail(new ConnectError('auth', `${host.label}: ${auth.describeFailure()}`));
      } else if (error.level === 'client-timeout' || /timed out/i.test(error.message)) {
        fail(new ConnectError('timeout', `${host.label} (${describe(host)}) did not answer in time`));
      } else {
        fail(new ConnectError('unreachable', `cannot reach ${host.label} (${describe(host)}): ${error.message}`));
      }
    });
    client.once('close', () => fail(new ConnectError(check.failure ? 'host-key' : 'closed', check.failure?.message ?? `${host.label} closed the connection during set-up`, check.failure)));
    client.connect(config);
  });
}

function forward(client: Client, from: ResolvedHost, to: ResolvedHost): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 0, to.hostName, to.port, (error, stream) => {
      if (error) reject(new ConnectError('unreachable', `jump host ${from.label} cannot reach ${to.hostName}:${to.port}: ${error.message}`));
      else resolve(stream);
    });
  });
}

/**
 * Shares one connection per host among all tabs and probes, as OpenSSH's ControlMaster does.
 * Concurrent requests for a host wait on the same connect.
 */
export class ConnectionPool {
  private readonly live = new Map<string, SshConnection>();
  private readonly connecting = new Map<string, Promise<SshConnection>>();

  constructor(private readonly options: ConnectionOptions) {}

  static keyOf(host: ResolvedHost): string {
    return [...host.proxyJump, host].map(describe).join(' > ');
  }

  async acquire(host: ResolvedHost): Promise<SshConnection> {
    const key = ConnectionPool.keyOf(host);
    const existing = this.live.get(key);
    if (existing?.isOpen) return existing;
    const inFlight = this.connecting.get(key);
    if (inFlight) return inFlight;
    const attempt = SshConnection.open(host, this.options).then(
      (connection) => {
        this.connecting.delete(key);
        this.live.set(key, connection);
        connection.once('close', () => {
          if (this.live.get(key) === connection) this.live.delete(key);
          this.options.log.info(`ssh: connection to ${host.label} closed`);
        });
        return connection;
      },
      (error) => {
        this.connecting.delete(key);
        throw error;
      },
    );
    this.connecting.set(key, attempt);
    return attempt;
  }

  /** The open connection for a host, if any, without connecting. */
  peek(host: ResolvedHost): SshConnection | undefined {
    const connection = this.live.get(ConnectionPool.keyOf(host));
    return connection?.isOpen ? connection : undefined;
  }

  dispose(): void {
    for (const connection of this.live.values()) connection.dispose();
    this.live.clear();
  }
}
