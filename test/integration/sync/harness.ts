import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { SessionEntry } from '../../../src/sync/blob';
import { newSessionId } from '../../../src/common/sessionId';
import { SyncServerProcess } from '../../support/syncServer';

const repoRoot = path.resolve(__dirname, '../../..');

/** Lines from a child's stdout, parsed as JSON where they are JSON. */
class LineWatcher {
  readonly lines: unknown[] = [];
  private waiters: Array<{ test: (line: unknown) => boolean; resolve: (line: unknown) => void }> = [];

  constructor(streams: NodeJS.ReadableStream[], private readonly label: string) {
    for (const input of streams) readline.createInterface({ input }).on('line', (text) => this.add(text));
  }

  private add(text: string): void {
    let line: unknown = text;
    try {
      line = JSON.parse(text);
    } catch {
      // plain text stays text
    }
    if (process.env.TETHER_TEST_VERBOSE) console.log(`[${this.label}] ${text}`);
    this.lines.push(line);
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.test(line)) return true;
      waiter.resolve(line);
      return false;
    });
  }

  /** Resolves with the first line (already seen from `from` on, or future) that passes `test`. */
  waitFor<T = Record<string, unknown>>(test: (line: Record<string, unknown>) => boolean, from = 0): Promise<T> {
    const check = (line: unknown): boolean => typeof line === 'object' && line !== null && test(line as Record<string, unknown>);
    const seen = this.lines.slice(from).find(check);
    if (seen !== undefined) return Promise.resolve(seen as T);
    return new Promise<T>((resolve) => this.waiters.push({ test: check, resolve: resolve as (line: unknown) => void }));
  }
}

/** The server bundle with a 500 ms heartbeat and limits raised for the tests' request rates. */
export class ServerProcess extends SyncServerProcess {
  static start(dataDir: string, port = 0): Promise<ServerProcess> {
    return ServerProcess.launch({
      args: ['--port', String(port), '--data-dir', dataDir, '--heartbeat-ms', '500', '--rate', '1000', '--burst', '1000', '--max-new-accounts-per-ip', '100000'],
    });
  }
}

export interface DeviceOptions {
  serverUrl: string;
  syncKey: string;
  slotId: string;
  deviceName: string;
  stateDir: string;
}

/** One device: a SyncClient in a separate Node process (test/integration/sync/syncChild.ts). */
export class DeviceProcess {
  private constructor(readonly process: ChildProcess, readonly output: LineWatcher) {}

  static start(options: DeviceOptions): DeviceProcess {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, 'syncChild.ts'), JSON.stringify(options)], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`[${options.deviceName} stderr] ${chunk.toString()}`));
    return new DeviceProcess(child, new LineWatcher([child.stdout!], options.deviceName));
  }

  send(command: object): void {
    this.process.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  publish(sessions: SessionEntry[]): void {
    this.send({ cmd: 'publish', sessions });
  }

  /** Waits for a remote-state event in which some slot lists a session with this ID. */
  waitForSession(id: string, from = 0): Promise<{ at: number; slots: Array<{ deviceName: string; blob: { sessions: SessionEntry[] } }> }> {
    return this.output.waitFor(
      (line) => line.type === 'remote' && Array.isArray(line.slots) && (line.slots as Array<{ blob: { sessions: SessionEntry[] } }>).some((slot) => slot.blob.sessions.some((s) => s.id === id)),
      from,
    );
  }

  waitForState(state: string, from = 0): Promise<Record<string, unknown>> {
    return this.output.waitFor((line) => line.type === 'state' && line.state === state, from);
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = once(this.process, 'exit');
    this.send({ cmd: 'stop' });
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export function sampleSession(overrides: Partial<SessionEntry> = {}): SessionEntry {
  // Through JSON so that an override of `undefined` removes the field, as it would on the wire.
  return JSON.parse(JSON.stringify({
    id: newSessionId(),
    hostLabel: 'build-1',
    user: 'dev',
    hostName: '127.0.0.1',
    port: 2222,
    multiplexer: 'tmux',
    cwd: "/home/dev/it's a $(dir)",
    startedAt: Date.now() - 60_000,
    title: 'make watch',
    ...overrides,
  })) as SessionEntry;
}

export function tempRoot(): string {
  return path.join(os.tmpdir(), `tether-sync-it-${process.pid}-${Date.now().toString(36)}`);
}

export interface WindowProcessOptions {
  serverUrl: string;
  syncKey: string;
  deviceName: string;
  /** Shared by every window of one device, as VS Code's global storage is. */
  globalStorage: string;
  kind: 'workspace' | 'window';
  key: string;
  label: string;
  legacyIds?: string[];
}

/** One window of a device: DeviceSync in its own process (test/integration/sync/deviceWindowChild.ts). */
export class WindowProcess {
  private constructor(readonly process: ChildProcess, readonly output: LineWatcher, readonly label: string) {}

  static async start(options: WindowProcessOptions): Promise<WindowProcess> {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, 'deviceWindowChild.ts'), JSON.stringify(options)], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const label = `${options.deviceName}/${options.label}`;
    child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`[${label} stderr] ${chunk.toString()}`));
    const window = new WindowProcess(child, new LineWatcher([child.stdout!], label), label);
    const fatal = window.output.waitFor((line) => line.type === 'fatal').then((line) => {
      throw new Error(`${label} failed: ${String(line.message)}`);
    });
    await Promise.race([window.output.waitFor((line) => line.type === 'started'), fatal]);
    return window;
  }

  send(command: object): void {
    this.process.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  setSessions(sessions: SessionEntry[]): void {
    this.send({ cmd: 'sessions', sessions });
  }

  async flush(): Promise<void> {
    const from = this.output.lines.length;
    this.send({ cmd: 'flush' });
    await this.output.waitFor((line) => line.type === 'flushed', from);
  }

  async status(ids: string[] = []): Promise<{ role?: string; slotId: string; holders: Record<string, string[]> }> {
    const from = this.output.lines.length;
    this.send({ cmd: 'status', ids });
    return this.output.waitFor((line) => line.type === 'status', from);
  }

  /** The window closes normally (its extension host is disposed). */
  close(): Promise<void> {
    return this.end({ cmd: 'close' });
  }

  /** The extension host ends without cleaning up (Open Folder on desktop, a crash). */
  crash(): Promise<void> {
    return this.end({ cmd: 'crash' });
  }

  private async end(command: object): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = once(this.process, 'exit');
    this.send(command);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
