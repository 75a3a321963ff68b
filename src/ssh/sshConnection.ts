import { EventEmitter } from 'node:events';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import type { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import { chooseAgent } from './agentSocket';
import { AuthPrompter, createAuthPlan } from './auth';
import { HostKeyCheck, HostKeyError, HostKeyPromptInfo, createHostKeyCheck } from './hostKeyVerifier';
import { HostFacts } from './hostFacts';
import type { Logger } from '../common/logger';
import { ProxyCommandError, ProxyCommandSocket } from './proxyCommand';
import { RemoteCommandError, ScriptResult, channelOpenError, openScriptChannel, runScript } from './remoteExec';
import type { ResolvedHost } from './sshConfig';
import type { TrustStore } from './trustStore';
import type { PseudoTtyOptions } from 'ssh2';
import { ReasonError } from '../common/reasonError';

export type ConnectFailureReason = 'host-key' | 'auth' | 'unreachable' | 'timeout' | 'closed';

export class ConnectError extends ReasonError<ConnectFailureReason> {
  constructor(
    reason: ConnectFailureReason,
    message: string,
    readonly hostKeyError?: HostKeyError,
  ) {
    super(reason, message);
  }
  override readonly name = 'ConnectError';
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
  /** tether.keepaliveInterval; a host's ServerAliveInterval/CountMax override these. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  readyTimeoutMs?: number;
  /** tether.forwardAgent: forward the agent to hosts whose config does not say (ForwardAgent wins). */
  forwardAgent?: boolean;
  /** Where agents and ProxyCommand's shell are looked up; process.env by default (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

/** Whether a connection to this host forwards the agent: ForwardAgent, else the setting. */
export function forwardsAgent(host: ResolvedHost, options: Pick<ConnectionOptions, 'forwardAgent'>): boolean {
  return host.forwardAgent === undefined ? options.forwardAgent === true : host.forwardAgent !== false;
}

/** One SSH connection to a host, with each ProxyJump hop as a channel over the previous hop. */
export class SshConnection extends EventEmitter {
  private closed = false;
  private terminals = 0;
  private claims = 0;
  private full = false;
  private readonly hops: Client[] = [];
  private channelsOpened = 0;

  private constructor(
    readonly host: ResolvedHost,
    readonly client: Client,
    /** The agent is forwarded on this connection: sessions keep a stable link to it (agentForwarding.ts). */
    readonly forwardsAgent: boolean,
    /** What the pool knows about this connection's host, shared by all of the host's connections. */
    readonly facts: HostFacts,
  ) {
    super();
  }

  static async open(host: ResolvedHost, options: ConnectionOptions, facts: HostFacts): Promise<SshConnection> {
    // As in OpenSSH, only the first host reached may use its ProxyCommand: every later one is
    // reached through the hop before it (ProxyJump overrides a ProxyCommand).
    const chain = [...host.proxyJump, host];
    for (const later of chain.slice(1)) {
      if (later.proxyCommand) options.log.info(`ssh: ${later.label}: ProxyCommand not used, the host is reached through ${chain[0].label}`);
    }
    const hops: Client[] = [];
    let sock: Duplex | undefined;
    try {
      for (const hop of host.proxyJump) {
        const { client } = await connectOne(hop, options, sock ?? startProxyCommand(hop, options));
        hops.push(client);
        sock = await forward(client, hop, host.proxyJump[hops.length] ?? host);
      }
      const { client, forwardsAgent } = await connectOne(host, options, sock ?? startProxyCommand(host, options));
      const connection = new SshConnection(host, client, forwardsAgent, facts);
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

  /** Session channels (exec or shell) asked for on this connection: each costs a round trip
   * after the handshake (ssh2 sends a pty's pty-req after the channel open confirms, so a
   * terminal costs one more). Tests and benchmarks count them per operation (issue 16). */
  get execChannels(): number {
    return this.channelsOpened;
  }

  /** Runs a probe script. A channel the host refuses (MaxSessions reached for a moment, while
   * terminals open) is retried briefly: probe channels are short-lived. */
  async runScript(script: string, timeoutMs?: number): Promise<ScriptResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        this.channelsOpened += 1;
        return await runScript(this.client, script, timeoutMs);
      } catch (error) {
        if (!isChannelRefusal(error) || attempt >= 8 || this.closed) throw error;
        await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** Math.min(attempt, 4)));
      }
    }
  }

  /** Room for another long-lived terminal channel on this connection, counting the tabs that
   * were handed this connection and have not opened their terminal yet. */
  get hasRoom(): boolean {
    return !this.full && this.terminals + this.claims < TERMINALS_PER_CONNECTION;
  }

  /** Reserves room for a terminal that is about to open; a claim lapses on its own after a while
   * (a tab that only probes, or that failed before opening anything). */
  claim(): void {
    this.claims += 1;
    setTimeout(() => (this.claims = Math.max(0, this.claims - 1)), 15_000).unref();
  }

  /** Opens a terminal channel (a pty running `script`, or the login shell without one). A refusal
   * marks the connection full until one of its terminals closes; the caller then asks the pool. */
  async openTerminal(script: string | undefined, pty: PseudoTtyOptions): Promise<ClientChannel> {
    let channel: ClientChannel;
    this.channelsOpened += 1;
    try {
      channel =
        script === undefined
          ? await new Promise<ClientChannel>((resolve, reject) =>
              this.client.shell({ term: pty.term, cols: pty.cols, rows: pty.rows }, (error, stream) => (error ? reject(channelOpenError(error)) : resolve(stream))),
            )
          : await openScriptChannel(this.client, script, pty);
    } catch (error) {
      if (isChannelRefusal(error)) this.full = true;
      throw error;
    }
    this.terminals += 1;
    this.claims = Math.max(0, this.claims - 1);
    channel.once('close', () => {
      this.terminals -= 1;
      this.full = false;
    });
    return channel;
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

/** The host refused to open another channel on this connection (sshd's MaxSessions). */
export function isChannelRefusal(error: unknown): boolean {
  return RemoteCommandError.is(error) && error.reason === 'channel-refused';
}

function describe(host: ResolvedHost): string {
  return `${host.user}@${host.hostName}:${host.port}`;
}

function startProxyCommand(host: ResolvedHost, options: ConnectionOptions): ProxyCommandSocket | undefined {
  if (!host.proxyCommand) return undefined;
  try {
    return ProxyCommandSocket.start(host, options.log, process.platform, options.env ?? process.env);
  } catch (error) {
    if (ProxyCommandError.is(error)) throw new ConnectError('unreachable', error.message);
    throw error;
  }
}

/** A logged-in client, and whether it forwards the agent. */
async function connectOne(host: ResolvedHost, options: ConnectionOptions, sock?: Duplex): Promise<{ client: Client; forwardsAgent: boolean }> {
  const env = options.env ?? process.env;
  const proxy = sock instanceof ProxyCommandSocket ? sock : undefined;
  // HostKeyAlias replaces "[host]:port" in known_hosts lookups by the bare alias (OpenSSH
  // get_hostfile_hostname_ipaddr), so the alias is looked up as if on port 22.
  const check: HostKeyCheck = createHostKeyCheck({
    label: host.label,
    host: host.hostKeyAlias ?? host.hostName,
    port: host.hostKeyAlias !== undefined ? 22 : host.port,
    knownHostsFiles: [...host.knownHostsFiles, ...(host.globalKnownHostsFiles ?? [])],
    trustStore: options.trustStore,
    confirmUnknown: options.confirmUnknownHostKey,
    strict: host.strictHostKeyChecking,
    onAcceptedNew: (info) => options.log.info(`ssh: ${host.label}: StrictHostKeyChecking accept-new: trusting new ${info.keyType} key ${info.fingerprint}`),
  });
  const agent = chooseAgent(host.identityAgent, { env, platform: process.platform, pipeExists: existsSync });
  const forwarding = forwardsAgent(host, options);
  // ForwardAgent may name another socket to forward than the one used to log in.
  const forwardedAgent = typeof host.forwardAgent === 'string' ? chooseAgent(host.forwardAgent, { env, platform: process.platform, pipeExists: existsSync }) : agent;
  const auth = createAuthPlan(host, options.prompter, agent.agent);
  // ssh2 loads on first connect, not at activation (it is most of the bundle's start-up cost).
  const { Client: SshClient } = require('ssh2') as typeof import('ssh2');
  const client = new SshClient();
  const keepaliveIntervalMs = host.serverAliveIntervalSeconds !== undefined ? host.serverAliveIntervalSeconds * 1000 : (options.keepaliveIntervalMs ?? 5000);
  const config: ConnectConfig = {
    host: host.hostName,
    port: host.port,
    username: host.user,
    sock: sock as ConnectConfig['sock'],
    hostVerifier: (key: Buffer, callback: (ok: boolean) => void) => {
      // The server answered: ConnectTimeout is over (a host key prompt may take as long as it takes).
      clearTimeout(connectTimer);
      check.verify(key, callback);
    },
    authHandler: auth.handler,
    keepaliveInterval: keepaliveIntervalMs,
    keepaliveCountMax: host.serverAliveCountMax ?? options.keepaliveCountMax ?? 3,
    readyTimeout: options.readyTimeoutMs ?? 20_000,
    tryKeyboard: true,
  } as ConnectConfig;
  if (forwarding) {
    if (forwardedAgent.agent) {
      config.agent = forwardedAgent.agent;
      config.agentForward = true;
    } else {
      options.log.warn(`ssh: ${host.label}: agent forwarding is on but there is no agent to forward (${forwardedAgent.source})`);
    }
  }
  const via = sock ? (proxy ? ` through ProxyCommand` : ' through a jump host') : '';
  options.log.info(`ssh: connecting to ${host.label} (${describe(host)})${via}; agent: ${agent.agent ? agent.source : `none (${agent.source})`}${config.agentForward ? ', forwarding it' : ''}`);
  let connectTimer: NodeJS.Timeout | undefined;
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: ConnectError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      client.end();
      client.destroy();
      proxy?.destroy();
      options.log.warn(`ssh: ${error.message}`);
      reject(error);
    };
    // With a ProxyCommand the command's own exit and stderr say more than ssh2's socket error.
    const withProxy = (message: string): string => {
      const detail = proxy?.describeFailure();
      return detail ? `${message} (${detail})` : message;
    };
    if (host.connectTimeoutSeconds !== undefined) {
      connectTimer = setTimeout(() => {
        fail(new ConnectError('timeout', withProxy(`${host.label} (${describe(host)}) did not answer within ConnectTimeout ${host.connectTimeoutSeconds} s`)));
      }, host.connectTimeoutSeconds * 1000);
    }
    client.once('ready', () => {
      settled = true;
      clearTimeout(connectTimer);
      // Small interactive packets (keystrokes, probe commands) must not wait for Nagle's algorithm.
      if (!sock) (client as Client & { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
      auth.onReady();
      options.log.info(`ssh: connected to ${host.label}`);
      client.on('error', (error) => options.log.warn(`ssh: ${host.label}: ${error.message}`));
      resolve({ client, forwardsAgent: config.agentForward === true });
    });
    client.on('error', (error: Error & { level?: string; code?: string }) => {
      if (settled) return;
      // An agent that is not there (a stale socket, no Pageant) only means the next method is tried.
      if (error.level === 'agent') {
        options.log.warn(`ssh: ${host.label}: agent (${agent.source}) not usable: ${error.message}`);
        return;
      }
      if (check.failure) {
        fail(new ConnectError('host-key', check.failure.message, check.failure));
      } else if (error.level === 'client-authentication') {
        fail(new ConnectError('auth', `${host.label}: ${auth.describeFailure()}`));
      } else if (error.level === 'client-timeout') {
        fail(new ConnectError('timeout', withProxy(`${host.label} (${describe(host)}) did not answer in time`)));
      } else {
        fail(new ConnectError('unreachable', withProxy(`cannot reach ${host.label} (${describe(host)}): ${error.message}`)));
      }
    });
    client.once('close', () =>
      fail(new ConnectError(check.failure ? 'host-key' : 'closed', check.failure?.message ?? withProxy(`${host.label} closed the connection during set-up`), check.failure)),
    );
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
 * Concurrent requests for a host wait on the same connect. sshd allows 10 sessions per connection
 * by default (MaxSessions), so a connection holds at most TERMINALS_PER_CONNECTION long-lived
 * terminals, leaving room for probes; beyond that, or once the host refuses a channel, the host
 * gets another connection.
 */
export const TERMINALS_PER_CONNECTION = 8;

export class ConnectionPool {
  /** What each host runs and the like, learned once per host (hostFacts.ts). */
  readonly facts = new HostFacts(ConnectionPool.keyOf);
  private readonly live = new Map<string, SshConnection[]>();
  /** Connects under way per host; more than one when more tabs wait than one connection holds. */
  private readonly connecting = new Map<string, Promise<SshConnection>[]>();
  /** Tabs waiting for a connect per host (see acquire). */
  private readonly waiting = new Map<string, number>();
  private readonly toldIgnored = new Set<string>();

  constructor(private readonly options: ConnectionOptions) {}

  static keyOf(host: ResolvedHost): string {
    return [...host.proxyJump, host].map(describe).join(' > ');
  }

  /** A connection to the host with room for another terminal (reserved for the caller). */
  async acquire(host: ResolvedHost): Promise<SshConnection> {
    const key = ConnectionPool.keyOf(host);
    for (let round = 0; ; round++) {
      if (round > 10) throw new ConnectError('closed', `${host.label} keeps closing new connections`);
      const usable = (this.live.get(key) ?? []).find((connection) => connection.isOpen && connection.hasRoom);
      if (usable) {
        usable.claim();
        return usable;
      }
      // Tabs that asked at once share connects, TERMINALS_PER_CONNECTION to each, started in
      // parallel (20 tabs restored at once pay one handshake time, not three in a row); then each
      // takes room or asks again.
      const inFlight = this.connecting.get(key) ?? [];
      const place = this.waiting.get(key) ?? 0;
      this.waiting.set(key, place + 1);
      try {
        const slot = Math.floor(place / TERMINALS_PER_CONNECTION);
        await (inFlight[slot] ?? this.connect(host, key));
      } finally {
        const left = (this.waiting.get(key) ?? 1) - 1;
        if (left > 0) this.waiting.set(key, left);
        else this.waiting.delete(key);
      }
    }
  }

  private connect(host: ResolvedHost, key: string): Promise<SshConnection> {
    for (const hop of [...host.proxyJump, host]) {
      // Said once per host, not on every reconnect.
      if (!hop.ignoredKeywords?.length || this.toldIgnored.has(hop.label)) continue;
      this.toldIgnored.add(hop.label);
      this.options.log.info(`ssh: ${hop.label}: ssh config sets ${hop.ignoredKeywords.join(', ')}, which Tether ignores (see the README, "SSH config")`);
    }
    const done = (): void => {
      const rest = (this.connecting.get(key) ?? []).filter((candidate) => candidate !== attempt);
      if (rest.length > 0) this.connecting.set(key, rest);
      else this.connecting.delete(key);
    };
    const attempt: Promise<SshConnection> = SshConnection.open(host, this.options, this.facts).then(
      (connection) => {
        done();
        this.live.set(key, [...(this.live.get(key) ?? []), connection]);
        connection.once('close', () => {
          const remaining = (this.live.get(key) ?? []).filter((candidate) => candidate !== connection);
          if (remaining.length > 0) this.live.set(key, remaining);
          else this.live.delete(key);
          this.options.log.info(`ssh: connection to ${host.label} closed`);
        });
        return connection;
      },
      (error) => {
        done();
        throw error;
      },
    );
    this.connecting.set(key, [...(this.connecting.get(key) ?? []), attempt]);
    return attempt;
  }

  /** An open connection for a host, if any, without connecting. */
  peek(host: ResolvedHost): SshConnection | undefined {
    return (this.live.get(ConnectionPool.keyOf(host)) ?? []).find((connection) => connection.isOpen);
  }

  /** How many connections the pool holds for a host (for tests and benchmarks). */
  connectionCount(host: ResolvedHost): number {
    return (this.live.get(ConnectionPool.keyOf(host)) ?? []).filter((connection) => connection.isOpen).length;
  }

  dispose(): void {
    for (const connections of this.live.values()) for (const connection of connections) connection.dispose();
    this.live.clear();
  }
}
