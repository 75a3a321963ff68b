/**
 * Runs Tether's smoke suite (test/vscode/suite) inside desktop VS Code through
 * @vscode/test-electron. Usage:
 *
 *   npm run test:vscode                                    # = tsx test/vscode/runTests.ts
 *   VSCODE_EXECUTABLE=/path/to/code npm run test:vscode    # a VS Code build you already have
 *
 * Without VSCODE_EXECUTABLE it downloads VS Code into .vscode-test/ (or reuses a copy there). If
 * update.code.visualstudio.com cannot be reached and nothing is cached, or TETHER_VSCODE_DOWNLOAD=0,
 * it prints one line saying so and exits 0: a skip, not a pass. A VSCODE_EXECUTABLE that does not
 * exist is an error. On Linux without a display, run it under `xvfb-run -a`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundle } from '../support/bundle';
import { chooseVscodeBuild, VscodeBuildError, type BuildProbe } from './vscodeBuild';

const REPO = resolve(__dirname, '..', '..');
const CACHE = join(REPO, '.vscode-test');
/** Git-ignored (out/); the extension host requires index.js from here. */
const SUITE_OUT = join(REPO, 'out', 'vscodeTest');
/** Long enough for a slow DNS answer, short enough that an offline skip takes seconds. */
const PROBE_TIMEOUT_MS = 5000;

function log(message: string): void {
  console.log(`[test:vscode] ${message}`);
}

const probe: BuildProbe = {
  pathKind(path) {
    try {
      return statSync(path).isFile() ? 'file' : 'other';
    } catch {
      return 'missing';
    }
  },
  cachedBuilds() {
    try {
      // test-electron marks a finished download with an is-complete file.
      return readdirSync(CACHE).filter((name) => name.startsWith('vscode-') && existsSync(join(CACHE, name, 'is-complete')));
    } catch {
      return [];
    }
  },
  async downloadBlocker() {
    // test-electron's own request (same proxy handling and timeout); the download reuses its answer.
    const { fetchStableVersions } = await import('@vscode/test-electron/out/download');
    try {
      await fetchStableVersions(true, PROBE_TIMEOUT_MS);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  },
};

/** The extension (dist/, what extensionDevelopmentPath loads) and the suite, with esbuild.mjs's options. */
async function build(): Promise<string> {
  execFileSync(process.execPath, [join(REPO, 'esbuild.mjs')], { cwd: REPO, stdio: 'inherit' });
  const suite = join(REPO, 'test', 'vscode', 'suite');
  rmSync(SUITE_OUT, { recursive: true, force: true });
  await bundle({
    entryPoints: readdirSync(suite).filter((name) => name.endsWith('.ts')).map((name) => join(suite, name)),
    outdir: SUITE_OUT,
    // vscode comes from the extension host; mocha from node_modules (it loads the test files itself).
    external: ['vscode', 'mocha'],
  });
  return join(SUITE_OUT, 'index.js');
}

async function main(): Promise<number> {
  let choice;
  try {
    choice = await chooseVscodeBuild(process.env, probe);
  } catch (error) {
    if (!(error instanceof VscodeBuildError)) throw error;
    console.error(`test:vscode: ${error.message}`);
    return 1;
  }
  if (choice.kind === 'skip') {
    console.log(choice.line);
    return 0;
  }

  const { downloadAndUnzipVSCode, runTests } = await import('@vscode/test-electron');
  let vscodeExecutablePath: string;
  if (choice.kind === 'executable') {
    vscodeExecutablePath = choice.path;
    log(`VS Code from VSCODE_EXECUTABLE: ${vscodeExecutablePath}`);
  } else {
    if (choice.cached) log(`update.code.visualstudio.com cannot be reached: using the copy in ${CACHE}`);
    // No version: the newest stable that satisfies engines.vscode in package.json.
    vscodeExecutablePath = await downloadAndUnzipVSCode({ cachePath: CACHE, extensionDevelopmentPath: REPO });
    log(`VS Code: ${vscodeExecutablePath}`);
  }

  const extensionTestsPath = await build();
  // A throwaway profile and home: no settings, extensions or ~/.ssh/config of the person running it.
  const runRoot = mkdtempSync(join(tmpdir(), 'tether-vscode-test-'));
  mkdirSync(join(runRoot, 'home'));
  try {
    await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: REPO,
      extensionTestsPath,
      launchArgs: [
        '--disable-extensions',
        `--user-data-dir=${join(runRoot, 'user-data')}`,
        `--extensions-dir=${join(runRoot, 'extensions')}`,
      ],
      extensionTestsEnv: { HOME: join(runRoot, 'home') },
    });
    return 0;
  } catch (error) {
    // runTests has printed VS Code's output and the exit code; this names the step.
    console.error(`test:vscode: the suite failed in VS Code: ${(error as Error).message}`);
    return 1;
  } finally {
    if (process.env.TETHER_VSCODE_KEEP) log(`kept ${runRoot}`);
    else rmSync(runRoot, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`test:vscode: ${(error as Error).stack ?? error}`);
    process.exit(1);
  },
);
