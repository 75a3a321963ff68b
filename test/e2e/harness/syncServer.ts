/**
 * The Tether sync server as built into dist/server.js (run.ts copies it next to the run), started
 * on a free port with its own data folder. It prints JSON log lines; one of them carries "url".
 */
import { ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ARTIFACTS, REPO, RUN_ROOT } from './env';

export class SyncServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly logPath: string,
  ) {}

  static async start(): Promise<SyncServer> {
    const script = process.env.TETHER_E2E_SERVER ?? join(REPO, 'dist', 'server.js');
    if (!existsSync(script)) throw new Error(`no sync server at ${script}; run \`npm run package\` (run.ts does)`);
    const dataDir = mkdtempSync(join(RUN_ROOT, 'sync-server-'));
    const logPath = join(dataDir, 'server.log');
    const log = createWriteStream(logPath);
    const child = spawn(process.execPath, [script, '--port', '0', '--data-dir', dataDir, '--max-new-accounts-per-ip', '100000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the sync server printed no URL within 15 s; see ${logPath}`));
      }, 15_000);
      child.once('exit', (code) => reject(new Error(`the sync server exited with ${code}; see ${logPath}`)));
      // Its JSON log lines may come on either stream.
      const onLine = (line: string): void => {
        log.write(`${line}\n`);
        try {
          const parsed = JSON.parse(line) as { url?: unknown };
          if (typeof parsed.url === 'string') {
            clearTimeout(timer);
            resolve(parsed.url);
          }
        } catch {
          /* not JSON */
        }
      };
      createInterface({ input: child.stdout! }).on('line', onLine);
      createInterface({ input: child.stderr! }).on('line', onLine);
    });
    return new SyncServer(child, url, logPath);
  }

  saveLog(prefix: string): void {
    if (existsSync(this.logPath)) copyFileSync(this.logPath, join(ARTIFACTS, `${prefix}--sync-server.log`));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
