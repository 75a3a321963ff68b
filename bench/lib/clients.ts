/**
 * The two clients the terminal benchmarks compare: Tether (a PersistentSession on a shared
 * ConnectionPool, observed at its 'data' events: what the Pseudoterminal would be handed) and the
 * system OpenSSH client (`ssh -tt … tmux attach`, observed at its stdout).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PersistentSession, PersistentSessionOptions } from '../../src/session/persistentSession';
import { ConnectionPool } from '../../src/ssh/sshConnection';
import { TrustStore } from '../../src/ssh/trustStore';
import type { Logger } from '../../src/common/logger';
import { newSessionId, sessionName } from '../../src/common/sessionId';
import type { BenchHost } from './hosts';
import { sleep, waitUntil } from './util';

export const quietLog: Logger = {
  debug() {},
  info() {},
  warn(message: string) {
    if (process.env.TETHER_BENCH_LOG) console.error(`[tether warn] ${message}`);
  },
  error(message: unknown) {
    console.error(`[tether error] ${String(message)}`);
  },
};

let trustDir: string | undefined;

export function benchPool(): ConnectionPool {
  if (!trustDir) {
    const dir = mkdtempSync(join(tmpdir(), 'tether-bench-trust-'));
    trustDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return new ConnectionPool({
    prompter: { keyPassphrase: async () => undefined, password: async () => undefined, keyboardInteractive: async () => undefined },
    trustStore: new TrustStore(join(trustDir, 'known_hosts')),
    confirmUnknownHostKey: async () => false,
    log: quietLog,
    keepaliveIntervalMs: 5000,
    keepaliveCountMax: 3,
    readyTimeoutMs: 10_000,
  });
}

/** Watches a byte/text stream for markers without keeping it: counts units and keeps a short tail. */
export class StreamWatch {
  units = 0;
  chunks = 0;
  lastAt = 0;
  private tail = '';
  private waiters: { marker: string; resolve: (at: number) => void }[] = [];

  push(chunk: string): void {
    const at = performance.now();
    this.units += chunk.length;
    this.chunks += 1;
    this.lastAt = at;
    if (this.waiters.length === 0) {
      this.tail = chunk.length >= 256 ? chunk.slice(-256) : (this.tail + chunk).slice(-256);
      return;
    }
    const window = this.tail + chunk;
    this.waiters = this.waiters.filter((waiter) => {
      if (!window.includes(waiter.marker)) return true;
      waiter.resolve(at);
      return false;
    });
    this.tail = window.slice(-256);
  }

  /** Resolves with the performance.now() of the chunk that completed `marker` (seen from now on). */
  waitFor(marker: string, timeoutMs: number): Promise<number> {
    this.tail = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.marker !== marker);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${JSON.stringify(marker)}`));
      }, timeoutMs);
      this.waiters.push({
        marker,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      });
    });
  }

  /** Waits until nothing has arrived for `quietMs`. */
  async settle(quietMs: number, timeoutMs = 10_000): Promise<void> {
    const start = performance.now();
    const last = (): number => Math.max(this.lastAt, start);
    while (performance.now() - last() < quietMs) {
      if (performance.now() - start > timeoutMs) throw new Error('output did not settle');
      await sleep(Math.max(5, quietMs / 4));
    }
  }
}

/** How Tether tabs talk to tmux in this process: 'control' is the shipped default (tether.tmux.mode). */
let tmuxMode: 'control' | 'attach' = 'control';

export function setTmuxMode(mode: 'control' | 'attach'): void {
  tmuxMode = mode;
}

export function currentTmuxMode(): 'control' | 'attach' {
  return tmuxMode;
}

export interface TetherTab {
  session: PersistentSession;
  watch: StreamWatch;
  /** performance.now() of each state change. */
  stateAt: Map<string, number>;
}

export function openTetherTab(pool: ConnectionPool, host: BenchHost, options: Partial<PersistentSessionOptions> & { port?: number; size?: { cols: number; rows: number } } = {}): TetherTab {
  const session = new PersistentSession({
    id: options.id ?? newSessionId(),
    host: host.resolved(options.port),
    pool,
    log: quietLog,
    mode: options.mode ?? 'create',
    preference: options.preference ?? 'tmux',
    multiplexer: options.multiplexer ?? 'tmux',
    tmuxVersion: options.tmuxVersion,
    historyLimit: options.historyLimit ?? 50_000,
    replayLines: options.replayLines ?? 0,
    // As TabManager passes them: tether.tmux.mode and tether.scrollback.replayLines (default 2000).
    tmuxMode: options.tmuxMode ?? tmuxMode,
    controlHistoryLines: options.controlHistoryLines ?? 2000,
    reconnect: options.reconnect,
    probeTimeoutMs: 15_000,
  });
  const watch = new StreamWatch();
  const stateAt = new Map<string, number>();
  session.on('data', (text) => watch.push(text));
  session.on('state', (state) => stateAt.set(state, performance.now()));
  void session.start(options.size ?? { cols: 120, rows: 40 });
  return { session, watch, stateAt };
}

export async function waitAttached(tab: TetherTab, timeoutMs = 20_000): Promise<void> {
  await waitUntil(() => tab.session.state === 'attached' || tab.session.state === 'ended', timeoutMs, 'attached');
  if (tab.session.state !== 'attached') throw new Error(`session ended instead of attaching`);
}

export interface OpenSshTab {
  child: ChildProcess;
  watch: StreamWatch;
  spawnedAt: number;
  write(text: string): void;
  close(): Promise<void>;
}

/** `ssh -tt host tmux -L tether attach -t =<name>` with stdin and stdout as pipes. */
export function openSshAttach(host: BenchHost, id: string, size = { cols: 120, rows: 40 }, extraSshArgs: string[] = [], command?: string, port?: number): OpenSshTab {
  const spawnedAt = performance.now();
  // With no local tty, ssh -tt asks for a 0x0 pty: size it like Tether's tab before tmux attaches.
  const remote = `stty cols ${size.cols} rows ${size.rows} && ${command ?? `exec tmux -L tether attach-session -t '=${sessionName(id)}'`}`;
  const child = spawn('ssh', [...host.sshArgs(['-tt', ...extraSshArgs], port), remote], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, TERM: 'xterm-256color', LC_ALL: 'C.UTF-8' },
  });
  const watch = new StreamWatch();
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (chunk: string) => watch.push(chunk));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.on('exit', (code) => {
    if (code && code !== 0 && code !== 255 && process.env.TETHER_BENCH_LOG) console.error(`[ssh exit ${code}] ${stderr}`);
  });
  return {
    child,
    watch,
    spawnedAt,
    write: (text) => void child.stdin!.write(text),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

/** A nonce that never appears in what we type: the typed form uses $((…)) arithmetic. */
export function markerCommand(tag: string): { typed: string; marker: string } {
  const n = Math.floor(Math.random() * 1e6) + 1000;
  return { typed: `echo ${tag}_$((${n}+1))`, marker: `${tag}_${n + 1}` };
}
