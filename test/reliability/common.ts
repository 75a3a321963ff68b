/**
 * Shared pieces of the reliability suite (issue 9): a logger that keeps every line, the figures
 * table every scenario reports into, and a sync server process that can be killed with SIGKILL,
 * restarted on the same port and run as an unprivileged user (so a read-only directory is
 * read-only for it; root ignores file modes).
 *
 * Everything is loopback-only and every loop is bounded.
 */
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../src/common/logger';
import { SyncServerProcess } from '../support/syncServer';

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

export interface SyncServerOptions {
  dataDir: string;
  port?: number;
  /** Run as this uid/gid (the data dir's modes then apply). */
  uid?: number;
  gid?: number;
  /** Extra flags, after the defaults (a later flag wins). */
  args?: string[];
}

/** The real server (test/support/syncServer.ts) with a 500 ms heartbeat and the rate limits raised. */
export class SyncServer extends SyncServerProcess {
  static start(options: SyncServerOptions): Promise<SyncServer> {
    return SyncServer.launch({
      args: ['--port', String(options.port ?? 0), '--data-dir', options.dataDir, '--heartbeat-ms', '500', '--rate', '100000', '--burst', '100000', '--max-new-accounts-per-ip', '100000', ...(options.args ?? [])],
      uid: options.uid,
      gid: options.gid,
      cwd: '/',
    });
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
