/** The real sync server (test/support/syncServer.ts), run with the bench probe preloaded and its limits raised. */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SyncServerProcess } from '../../test/support/syncServer';

export interface ProbeRecord {
  slotId?: string;
  receivedAt?: number;
  firstWrite: number;
  lastWrite: number;
  streams: number;
}

export class ProbedServer {
  private constructor(
    readonly server: SyncServerProcess,
    readonly dir: string,
    private readonly probeOut: string,
  ) {}

  static async start(extraArgs: string[] = []): Promise<ProbedServer> {
    const dir = mkdtempSync(join(tmpdir(), 'tether-bench-server-'));
    const probeOut = join(dir, 'probe.json');
    const server = await SyncServerProcess.launch({
      nodeArgs: ['--require', join(__dirname, 'serverProbe.cjs')],
      args: ['--port', '0', '--data-dir', join(dir, 'data'),
        '--rate', '1000000', '--burst', '1000000', '--ip-rate', '1000000', '--ip-burst', '1000000',
        '--max-slots', '1000', '--max-streams', '100000', '--max-new-accounts-per-ip', '100000',
        '--max-connections-per-ip', '100000', '--max-streams-per-ip', '100000', ...extraArgs],
      env: { ...process.env, TETHER_BENCH_PROBE_OUT: probeOut },
    });
    return new ProbedServer(server, dir, probeOut);
  }

  get child(): ChildProcess {
    return this.server.child;
  }

  get url(): string {
    return this.server.url;
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
    await this.server.stop('SIGTERM', 15_000);
    const records = existsSync(this.probeOut) ? (JSON.parse(readFileSync(this.probeOut, 'utf8')) as { records: ProbeRecord[] }).records : [];
    rmSync(this.dir, { recursive: true, force: true });
    return records;
  }
}
