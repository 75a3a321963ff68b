/**
 * The Tether sync server as built into dist/server.js (run.ts copies it next to the run), started
 * on a free port with its own data folder (test/support/syncServer.ts); its log goes to a file.
 */
import { copyFileSync, createWriteStream, existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { SyncServerProcess } from '../../support/syncServer';
import { ARTIFACTS, REPO, RUN_ROOT } from './env';

export class SyncServer {
  private constructor(
    private readonly server: SyncServerProcess,
    readonly logPath: string,
  ) {}

  static async start(): Promise<SyncServer> {
    const script = process.env.TETHER_E2E_SERVER ?? join(REPO, 'dist', 'server.js');
    if (!existsSync(script)) throw new Error(`no sync server at ${script}; run \`npm run package\` (run.ts does)`);
    const dataDir = mkdtempSync(join(RUN_ROOT, 'sync-server-'));
    const logPath = join(dataDir, 'server.log');
    const log = createWriteStream(logPath);
    const server = await SyncServerProcess.launch({
      serverJs: script,
      args: ['--port', '0', '--data-dir', dataDir, '--max-new-accounts-per-ip', '100000'],
      onLine: (line) => log.write(`${line}\n`),
      timeoutMs: 15_000,
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n(see ${logPath})`);
    });
    return new SyncServer(server, logPath);
  }

  get url(): string {
    return this.server.url;
  }

  saveLog(prefix: string): void {
    if (existsSync(this.logPath)) copyFileSync(this.logPath, join(ARTIFACTS, `${prefix}--sync-server.log`));
  }

  async stop(): Promise<void> {
    await this.server.stop('SIGTERM', 5_000);
  }
}
