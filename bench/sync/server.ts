/** The real sync server (src/server bundled the way esbuild.mjs does), run with the bench probe preloaded. */
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as readline from 'node:readline';
import { buildServer } from '../../test/integration/sync/harness';

export interface ProbeRecord {
  slotId?: string;
  receivedAt?: number;
  firstWrite: number;
  lastWrite: number;
  streams: number;
}

export class ProbedServer {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly dir: string,
    private readonly probeOut: string,
  ) {}

  static async start(extraArgs: string[] = []): Promise<ProbedServer> {
    const dir = mkdtempSync(join(tmpdir(), 'tether-bench-server-'));
    const serverJs = await buildServer(dir);
    const probeOut = join(dir, 'probe.json');
    const child = spawn(
      process.execPath,
      ['--require', join(__dirname, 'serverProbe.cjs'), serverJs, '--port', '0', '--data-dir', join(dir, 'data'),
        '--rate', '1000000', '--burst', '1000000', '--ip-rate', '1000000', '--ip-burst', '1000000',
        '--max-slots', '1000', '--max-streams', '100000', '--max-new-accounts-per-ip', '100000',
        '--max-connections-per-ip', '100000', '--max-streams-per-ip', '100000', ...extraArgs],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TETHER_BENCH_PROBE_OUT: probeOut } },
    );
    const url = await new Promise<string>((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stderr! });
      lines.on('line', (line) => {
        try {
          const parsed = JSON.parse(line) as { msg?: string; url?: string };
          if (parsed.msg === 'listening' && parsed.url) resolve(parsed.url);
        } catch {
          /* not JSON */
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    return new ProbedServer(child, url, dir, probeOut);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resident set size of the server process, from /proc. */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : NaN;
  }

  /** Stops the server and returns what the probe recorded. */
  async stop(): Promise<ProbeRecord[]> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    const records = existsSync(this.probeOut) ? (JSON.parse(readFileSync(this.probeOut, 'utf8')) as { records: ProbeRecord[] }).records : [];
    rmSync(this.dir, { recursive: true, force: true });
    return records;
  }
}
