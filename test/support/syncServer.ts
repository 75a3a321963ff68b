/**
 * The real sync server as a child process, for tests and benchmarks: the bundle of src/server
 * (built once per run, as `npm run build` builds dist/server.js) or any command line, ready once
 * its "listening" log line names its URL. Every line it prints is kept. No server outlives the
 * process that started it (mocha --exit ends a run abruptly).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as readline from 'node:readline';
import { buildServer } from './bundle';

let bundled: Promise<string> | undefined;

/**
 * The server bundle of this checkout, built once per process into a folder every user can read
 * (some tests run the server as an unprivileged user), removed when the process exits.
 */
export function serverBundle(): Promise<string> {
  bundled ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tether-server-bundle-'));
    chmodSync(dir, 0o755);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const file = await buildServer(dir);
    chmodSync(file, 0o644);
    return file;
  })();
  return bundled;
}

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One JSON log line of the server. */
export interface LogRecord {
  msg?: string;
  level?: string;
  [key: string]: unknown;
}

export interface ServerLaunch {
  /** Server flags, after the bundle. */
  args?: string[];
  /** The bundle to run: serverBundle() unless given. */
  serverJs?: string;
  /** Node flags before the bundle, e.g. `--require` a probe. */
  nodeArgs?: string[];
  /** A whole command line instead of node and a bundle (a deployment recipe's own command). */
  command?: string[];
  /** The child's whole environment: this process's unless given. */
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  cwd?: string;
  /** Each line it prints, as it arrives. */
  onLine?: (line: string) => void;
  /** Kill it and fail when it is not listening within this many ms. */
  timeoutMs?: number;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export class SyncServerProcess {
  constructor(
    readonly child: ChildProcess,
    readonly url: string,
    /** Every line it printed (stdout and stderr), in order of arrival. */
    readonly lines: string[],
    readonly exited: Promise<ServerExit>,
  ) {}

  /** Starts the server and resolves once it listens; rejects with its output if it exits or times out first. */
  static async launch<T extends SyncServerProcess>(
    this: new (...args: ConstructorParameters<typeof SyncServerProcess>) => T,
    options: ServerLaunch = {},
  ): Promise<T> {
    const command = options.command ?? [process.execPath, ...(options.nodeArgs ?? []), options.serverJs ?? (await serverBundle()), ...(options.args ?? [])];
    const child = spawn(command[0], command.slice(1), {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    children.add(child);
    const exited = new Promise<ServerExit>((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    const lines: string[] = [];
    const verbose = !!process.env.TETHER_TEST_VERBOSE;
    let listening: ((url: string) => void) | undefined;
    const url = new Promise<string>((resolve) => (listening = resolve));
    for (const stream of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        options.onLine?.(line);
        if (verbose) console.log(`    [server] ${line}`);
        if (listening && line.includes('"listening"')) {
          const found = listeningUrl(line);
          if (found) {
            listening(found);
            listening = undefined;
          }
        }
      });
    }
    let timer: NodeJS.Timeout | undefined;
    // 'close' comes after the last line has been read, so the error carries all of them.
    const failed = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => reject(new Error(`sync server exited (${code ?? signal}) before listening:\n${lines.join('\n')}`)));
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`sync server not listening within ${options.timeoutMs} ms:\n${lines.join('\n')}`));
        }, options.timeoutMs);
      }
    });
    failed.catch(() => undefined);
    try {
      return new this(child, await Promise.race([url, failed]), lines, exited);
    } finally {
      clearTimeout(timer);
    }
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Its JSON log lines, parsed (lines that are not JSON left out). */
  logs(): LogRecord[] {
    return this.lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as LogRecord];
      } catch {
        return [];
      }
    });
  }

  /** Sends `signal` and waits for the exit, with SIGKILL after `killAfterMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 10_000): Promise<ServerExit> {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  /** kill -9: no handler runs, nothing is flushed. */
  kill9(): Promise<ServerExit> {
    return this.stop('SIGKILL');
  }
}

function listeningUrl(line: string): string | undefined {
  try {
    const record = JSON.parse(line) as LogRecord;
    return record.msg === 'listening' && typeof record.url === 'string' ? record.url : undefined;
  } catch {
    return undefined; // not JSON (a usage error, say): kept in `lines` for the failure message
  }
}
