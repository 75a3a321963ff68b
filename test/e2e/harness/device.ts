/**
 * One "device": a code-server process (the real VS Code workbench and extension host) with its own
 * user-data-dir, extensions dir, HOME (whose ~/.ssh/config the extension reads) and workspace, and
 * a Chromium window on it driven by playwright-core. Two devices are two separate VS Code
 * instances: separate globalState, SecretStorage and extension hosts.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BrowserContext, Page, chromium } from 'playwright-core';
import { freePort } from '../../support/ports';
import { ARTIFACTS, CHROMIUM, CODE_SERVER_ENTRY, NODE24, RUN_ROOT, VSIX, slug } from './env';
import { alive } from './processes';
import { Workbench } from './workbench';

const execFileAsync = promisify(execFile);

export interface DeviceOptions {
  /** Short name, used in folder names and artifacts. */
  name: string;
  /** Text of ~/.ssh/config for the user running code-server. */
  sshConfig: string;
  /** Extra user settings on top of the suite's defaults. */
  settings?: Record<string, unknown>;
}

const BASE_SETTINGS: Record<string, unknown> = {
  // The DOM renderer fills .xterm-rows, so the test can read the screen.
  'terminal.integrated.gpuAcceleration': 'off',
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'security.workspace.trust.enabled': false,
  'extensions.ignoreRecommendations': true,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'chat.disableAIFeatures': true,
  'chat.commandCenter.enabled': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'files.hotExit': 'off',
  'window.commandCenter': false,
  'remote.autoForwardPorts': false,
};

export class Device {
  readonly root: string;
  readonly home: string;
  readonly userDataDir: string;
  readonly extensionsDir: string;
  readonly workspace: string;
  readonly browserProfile: string;
  readonly serverLog: string;
  port = 0;
  private server: ChildProcess | undefined;
  private context: BrowserContext | undefined;
  private currentPage: Page | undefined;
  private shots = 0;

  private constructor(readonly options: DeviceOptions) {
    this.root = join(RUN_ROOT, `${options.name}-${Date.now().toString(36)}`);
    this.home = join(this.root, 'home');
    this.userDataDir = join(this.root, 'user-data');
    this.extensionsDir = join(this.root, 'extensions');
    this.workspace = join(this.root, 'workspace');
    this.browserProfile = join(this.root, 'chromium-profile');
    this.serverLog = join(this.root, 'code-server.log');
    for (const dir of [this.home, join(this.home, '.ssh'), join(this.userDataDir, 'User'), this.extensionsDir, this.workspace, this.browserProfile]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    }
    writeFileSync(join(this.home, '.ssh', 'config'), options.sshConfig, { mode: 0o600 });
    writeFileSync(join(this.userDataDir, 'User', 'settings.json'), `${JSON.stringify({ ...BASE_SETTINGS, ...options.settings }, null, 2)}\n`);
    writeFileSync(join(this.workspace, 'README.txt'), `Tether end-to-end workspace for device ${options.name}\n`);
  }

  /** Creates the device's folders and installs the packaged extension into its extensions dir. */
  static async create(options: DeviceOptions): Promise<Device> {
    const device = new Device(options);
    await device.installVsix();
    return device;
  }

  get page(): Page {
    if (!this.currentPage) throw new Error(`device ${this.options.name} has no browser page`);
    return this.currentPage;
  }

  get workbench(): Workbench {
    return new Workbench(this.page);
  }

  get serverPid(): number | undefined {
    return this.server?.pid;
  }

  /** The environment code-server runs in: Node 24 first on PATH, and our own HOME. */
  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) {
      if (key.startsWith('VSCODE_') || key.startsWith('npm_') || key === 'NODE_OPTIONS' || key === 'ELECTRON_RUN_AS_NODE') delete env[key];
    }
    return {
      ...env,
      HOME: this.home,
      PATH: `${join(NODE24, '..')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      XDG_CONFIG_HOME: join(this.home, '.config'),
      XDG_DATA_HOME: join(this.home, '.local', 'share'),
      SHELL: '/bin/bash',
    };
  }

  private async installVsix(): Promise<void> {
    if (!existsSync(VSIX)) throw new Error(`no packaged extension at ${VSIX}; run \`npm run package\` (run.ts does)`);
    const { stdout, stderr } = await execFileAsync(
      NODE24,
      [CODE_SERVER_ENTRY, '--user-data-dir', this.userDataDir, '--extensions-dir', this.extensionsDir, '--install-extension', VSIX, '--force'],
      { env: this.env(), timeout: 120_000 },
    );
    const output = `${stdout}\n${stderr}`;
    if (!/successfully installed/i.test(output)) throw new Error(`installing ${VSIX} failed:\n${output}`);
    const installed = readdirSync(this.extensionsDir).filter((name) => name.startsWith('tether.tether-'));
    if (installed.length !== 1) throw new Error(`expected one tether.tether-* folder in ${this.extensionsDir}, found: ${readdirSync(this.extensionsDir).join(', ')}`);
  }

  /** Starts code-server (on the same port as before, if it ran already) and waits until it serves. */
  async startServer(): Promise<void> {
    if (this.server && this.server.exitCode === null) throw new Error('code-server already running');
    if (!this.port) this.port = await freePort();
    const out = createWriteStream(this.serverLog, { flags: 'a' });
    out.write(`\n===== start ${new Date().toISOString()} on port ${this.port}\n`);
    const child = spawn(
      NODE24,
      [
        CODE_SERVER_ENTRY,
        '--bind-addr', `127.0.0.1:${this.port}`,
        '--auth', 'none',
        '--user-data-dir', this.userDataDir,
        '--extensions-dir', this.extensionsDir,
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        '--disable-getting-started-override',
        this.workspace,
      ],
      // Its own process group, so a kill reaches the extension host and every helper it started.
      { env: this.env(), cwd: this.root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
    child.once('exit', (code, signal) => out.end(`===== exit code=${code} signal=${signal}\n`));
    this.server = child;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode}; see ${this.serverLog}`);
      try {
        const response = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        if (response.ok) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`code-server did not answer on port ${this.port} within 60 s; see ${this.serverLog}`);
  }

  /** Kills code-server and everything it started, at once (a crash, not a shutdown). */
  async killServer(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.server;
    this.server = undefined;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(-child.pid, signal);
    } catch {
      /* already gone */
    }
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (alive(child.pid)) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await exited;
    }
  }

  /** Opens (or reuses) this device's Chromium window on the workbench (on `folder`, default its workspace) and waits until it is usable. */
  async openWorkbench(folder: string = this.workspace): Promise<Page> {
    if (!this.context) {
      this.context = await chromium.launchPersistentContext(this.browserProfile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1400, height: 900 },
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
      });
      this.context.setDefaultTimeout(30_000);
      this.currentPage = this.context.pages()[0] ?? (await this.context.newPage());
    }
    // "load" waits for every script of the workbench; on a busy machine that takes over 30 s.
    await this.page.goto(`http://127.0.0.1:${this.port}/?folder=${encodeURIComponent(folder)}`, { timeout: 120_000 });
    await this.workbench.waitReady();
    return this.page;
  }

  /** Reloads the page (after a server restart): a fresh workbench and extension host. */
  async reload(): Promise<void> {
    await this.page.reload();
    await this.workbench.waitReady();
  }

  async screenshot(testTitle: string, step: string): Promise<string | undefined> {
    if (!this.currentPage) return undefined;
    this.shots += 1;
    const file = join(ARTIFACTS, `${slug(testTitle)}--${this.options.name}-${String(this.shots).padStart(2, '0')}-${slug(step)}.png`);
    try {
      await this.currentPage.screenshot({ path: file, timeout: 15_000 });
      return file;
    } catch {
      return undefined;
    }
  }

  /** The extension's "Tether" log files, found under the user-data-dir's logs folder. */
  tetherLogs(): string[] {
    const found: string[] = [];
    const walk = (dir: string, depth: number): void => {
      if (depth > 8 || !existsSync(dir)) return;
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const stat = statSync(path);
        if (stat.isDirectory()) walk(path, depth + 1);
        else if (/tether/i.test(name) && name.endsWith('.log')) found.push(path);
      }
    };
    walk(join(this.userDataDir, 'logs'), 0);
    return found.sort();
  }

  /** Copies the Tether log(s) and code-server's own output into the artifacts folder. */
  saveLogs(prefix: string): string[] {
    const saved: string[] = [];
    this.tetherLogs().forEach((log, index) => {
      const target = join(ARTIFACTS, `${prefix}--${this.options.name}-tether-${index + 1}.log`);
      copyFileSync(log, target);
      saved.push(target);
    });
    if (existsSync(this.serverLog)) {
      const target = join(ARTIFACTS, `${prefix}--${this.options.name}-code-server.log`);
      copyFileSync(this.serverLog, target);
      saved.push(target);
    }
    return saved;
  }

  async dispose(): Promise<void> {
    const context = this.context;
    this.context = undefined;
    this.currentPage = undefined;
    if (context) await Promise.race([context.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    await this.killServer('SIGTERM');
  }
}
