/** npm run test:vscode: which VS Code build it runs in, and when it skips (test/vscode/vscodeBuild.ts). */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type BuildProbe, chooseVscodeBuild, skipLine, VscodeBuildError } from '../vscode/vscodeBuild';

const REPO = join(__dirname, '..', '..');

/** A probe with fixed answers that records whether the network check ran. */
function probe(over: { kinds?: Record<string, 'file' | 'other'>; cached?: string[]; blocker?: string } = {}): BuildProbe & { checkedDownloads: number } {
  return {
    checkedDownloads: 0,
    pathKind: (path) => over.kinds?.[path] ?? 'missing',
    cachedBuilds: () => over.cached ?? [],
    async downloadBlocker() {
      this.checkedDownloads++;
      return over.blocker;
    },
  };
}

describe('test:vscode: choosing the VS Code build', () => {
  it('uses VSCODE_EXECUTABLE when it names a file, without touching the network', async () => {
    const fake = probe({ kinds: { '/opt/code/code': 'file' }, blocker: 'offline' });
    assert.deepEqual(await chooseVscodeBuild({ VSCODE_EXECUTABLE: '/opt/code/code', TETHER_VSCODE_DOWNLOAD: '0' }, fake), { kind: 'executable', path: '/opt/code/code' });
    assert.equal(fake.checkedDownloads, 0);
  });

  it('fails, never skips, when VSCODE_EXECUTABLE does not exist or is a folder', async () => {
    const fake = probe({ kinds: { '/opt/code': 'other' } });
    await assert.rejects(chooseVscodeBuild({ VSCODE_EXECUTABLE: '/nonexistent' }, fake), (error: Error) => error instanceof VscodeBuildError && /VSCODE_EXECUTABLE=\/nonexistent does not exist/.test(error.message));
    await assert.rejects(chooseVscodeBuild({ VSCODE_EXECUTABLE: '/opt/code' }, fake), (error: Error) => error instanceof VscodeBuildError && /\/opt\/code is not a file/.test(error.message));
    assert.equal(fake.checkedDownloads, 0);
  });

  it('treats an empty VSCODE_EXECUTABLE as unset', async () => {
    assert.deepEqual(await chooseVscodeBuild({ VSCODE_EXECUTABLE: ' ' }, probe()), { kind: 'download', cached: false });
  });

  it('downloads when the download server answers', async () => {
    const fake = probe({ cached: ['vscode-linux-x64-1.99.0'] });
    assert.deepEqual(await chooseVscodeBuild({}, fake), { kind: 'download', cached: false });
    assert.equal(fake.checkedDownloads, 1);
  });

  it('falls back to a completed earlier download when the server cannot be reached', async () => {
    assert.deepEqual(await chooseVscodeBuild({}, probe({ blocker: 'getaddrinfo ENOTFOUND', cached: ['vscode-linux-x64-1.99.0'] })), { kind: 'download', cached: true });
  });

  it('skips with one line naming the reason and the fix when there is nothing to run in', async () => {
    const choice = await chooseVscodeBuild({}, probe({ blocker: 'getaddrinfo ENOTFOUND\n  update.code.visualstudio.com' }));
    assert.equal(choice.kind, 'skip');
    const { line } = choice as { line: string };
    assert.doesNotMatch(line, /\n/);
    assert.equal(line, skipLine('VSCODE_EXECUTABLE is not set and update.code.visualstudio.com cannot be reached (getaddrinfo ENOTFOUND update.code.visualstudio.com)'));
    assert.match(line, /^test:vscode: skipped — no VS Code build: .*set VSCODE_EXECUTABLE=\/path\/to\/code, or allow downloads from update\.code\.visualstudio\.com$/);
  });

  it('skips without a network check when TETHER_VSCODE_DOWNLOAD=0, even with a cached download', async () => {
    for (const value of ['0', 'false', 'off']) {
      const fake = probe({ cached: ['vscode-linux-x64-1.99.0'] });
      const choice = await chooseVscodeBuild({ TETHER_VSCODE_DOWNLOAD: value }, fake);
      assert.equal(choice.kind, 'skip', value);
      assert.match((choice as { line: string }).line, /TETHER_VSCODE_DOWNLOAD=0 turns downloads off/);
      assert.equal(fake.checkedDownloads, 0);
    }
    assert.equal((await chooseVscodeBuild({ TETHER_VSCODE_DOWNLOAD: '1' }, probe())).kind, 'download');
  });
});

describe('test:vscode: the runner (no network, no VS Code)', () => {
  const runner = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [join(REPO, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(REPO, 'test', 'vscode', 'runTests.ts')], {
      cwd: REPO,
      env: { ...process.env, VSCODE_EXECUTABLE: '', TETHER_VSCODE_DOWNLOAD: '', ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('prints exactly the skip line and exits 0 when downloads are off', () => {
    const result = runner({ TETHER_VSCODE_DOWNLOAD: '0' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${skipLine('VSCODE_EXECUTABLE is not set and TETHER_VSCODE_DOWNLOAD=0 turns downloads off')}\n`);
    assert.equal(result.stderr, '');
  });

  it('exits 1 with the reason when VSCODE_EXECUTABLE does not exist', () => {
    const result = runner({ VSCODE_EXECUTABLE: '/nonexistent/code' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^test:vscode: VSCODE_EXECUTABLE=\/nonexistent\/code does not exist/);
    assert.equal(result.stdout, '');
  });
});
