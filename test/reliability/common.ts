/**
 * Shared pieces of the reliability suite (issue 9): a logger that keeps every line, the figures
 * table every scenario reports into, and a sync server process that can be killed with SIGKILL,
 * restarted on the same port and run as an unprivileged user (so a read-only directory is
 * read-only for it; root ignores file modes).
 *
 * Everything is loopback-only and every loop is bounded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as readline from 'node:readline';
import type { Logger } from '../../src/common/logger';
import { buildServer } from '../integration/sync/harness';

/** A Logger that records every line at every level, debug included. */
export class CapturingLog implements Logger {
  readonly lines: string[] = [];
  constructor(private readonly echo = !!process.env.TETHER_TEST_LOG) {}
  private add(level: string, message: string | Error): void {
    const text = `${level} ${message instanceof Error ? `${message.message}\n${message.stack ?? ''}` : String(message)}`;
    this.lines.push(text);
    if (this.echo) console.log(`    [log] ${text}`);
  }
  debug(message: string): void {
    this.add('debug', message);
  }
  info(message: string): void {
    this.add('info', message);
  }
  warn(message: string): void {
    this.add('warn', message);
  }
  error(message: string | Error): void {
    this.add('error', message);
  }
  text(): string {
    return this.lines.join('\n');
  }
}

// ---- figures ---------------------------------------------------------------------------------

export interface Figure {
  scenario: string;
  iterations: number;
  /** Named counts, e.g. { 'sessions lost': 0, duplicates: 0 }. */
  counts: Record<string, number | string>;
}

const figures: Figure[] = [];
const figuresFile = process.env.TETHER_RELIABILITY_FIGURES ?? join(tmpdir(), `tether-reliability-figures-${process.pid}.jsonl`);

/** Records one row of the figures table and prints it at once. */
export function report(figure: Figure): void {
  figures.push(figure);
  const counts = Object.entries(figure.counts)
    .map(([name, value]) => `${name}=${value}`)
    .join(', ');
  console.log(`      [figures] ${figure.scenario}: ${figure.iterations} iterations; ${counts}`);
  try {
    appendFileSync(figuresFile, `${JSON.stringify(figure)}\n`);
  } catch {
    /* the printed line is enough */
  }
}

// Root-level hook: the whole table once the suite ends.
after(function () {
  if (figures.length === 0) return;
  console.log('\n  Reliability figures (issue 9)');
  for (const figure of figures) {
    const counts = Object.entries(figure.counts)
      .map(([name, value]) => `${name} ${value}`)
      .join(' | ');
    console.log(`  | ${figure.scenario} | ${figure.iterations} | ${counts} |`);
  }
  console.log(`  (also written to ${figuresFile})\n`);
});

// ---- misc ------------------------------------------------------------------------------------

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** Deterministic pseudo-random numbers, so a failing run can be repeated (seed printed). */
export function rng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

export function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Control characters, ESC, C1 and the bidi overrides: nothing that may reach a tree view or title. */
// eslint-disable-next-line no-control-regex
export const UNSAFE_DISPLAY = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

// ---- the sync server as a child process --------------------------------------------------------

let serverJsPromise: Promise<string> | undefined;

/** Every server child this process started: none may outlive the run (mocha --exit ends us abruptly). */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** The real server bundle (src/server/main.ts), built once per run into a world-readable folder. */
export function serverJs(): Promise<string> {
  if (!serverJsPromise) {
    const dir = mkdtempSync(join(tmpdir(), 'tetherrel-server-build-'));
    chmodSync(dir, 0o755);
    serverJsPromise = buildServer(dir).then((file) => {
      chmodSync(file, 0o644);
      return file;
    });
  }
  return serverJsPromise;
}

export interface SyncServerOptions {
  dataDir: string;
  port?: number;
  /** Run as this uid/gid (the data dir's modes then apply). */
  uid?: number;
  gid?: number;
  /** Extra flags, after the defaults above (a later flag wins). */
  args?: string[];
}

export class SyncServer {
  private constructor(
    readonly lines: string[],
    readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
  ) {}

  /** Starts the real server; rejects (with its output) if it exits before listening. */
  static async start(options: SyncServerOptions): Promise<SyncServer> {
    const js = await serverJs();
    const args = [js, '--port', String(options.port ?? 0), '--data-dir', options.dataDir, '--heartbeat-ms', '500', '--rate', '100000', '--burst', '100000', '--max-new-accounts-per-ip', '100000', ...(options.args ?? [])];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
      cwd: '/',
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    const lines: string[] = [];
    let resolveUrl: (url: string) => void = () => undefined;
    const listening = new Promise<string>((resolve) => (resolveUrl = resolve));
    for (const stream of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: stream }).on('line', (text) => {
        lines.push(text);
        if (process.env.TETHER_TEST_VERBOSE) console.log(`    [server] ${text}`);
        try {
          const parsed = JSON.parse(text) as { msg?: string; url?: string };
          if (parsed.msg === 'listening' && parsed.url) resolveUrl(parsed.url);
        } catch {
          /* not JSON */
        }
      });
    }
    const exited = once(child, 'exit').then(([code, signal]) => {
      throw new Error(`sync server exited (${String(code ?? signal)}) before listening: ${lines.join(' | ').slice(0, 1000)}`);
    });
    exited.catch(() => undefined);
    const url = await Promise.race([listening, exited]);
    return new SyncServer(lines, child, url, Number(new URL(url).port));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** kill -9: no handler runs, nothing is flushed. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** A fresh directory under a world-traversable parent. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

export function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}
