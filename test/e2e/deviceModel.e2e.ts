/**
 * Scenario 7 (issue 12): one device, another workspace. The laptop opens a Tether tab in its
 * `work` folder; the desktop lists it. The laptop's window switches to another folder (in
 * code-server: code-server restarts and the page opens the other folder, as desktop VS Code's
 * File > Open Folder ends the old extension host). The desktop still lists the session, joins it,
 * and closes it with ✕: the close only detaches and a notification says why ("still open on
 * laptop") with a "Kill anyway…" action. The laptop opens `work` again and gets its tab back.
 */
import * as assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Device } from './harness/device';
import { E2eHost } from './harness/hosts';
import { Scenario } from './harness/scenario';
import { LIVE_VIEW, openTetherTerminal, setUpSync, until, waitForSyncLive } from './harness/steps';
import { SyncServer } from './harness/syncServer';

describe('one device, another workspace (two code-servers, one sync server)', function () {
  this.timeout(420_000);
  let host: E2eHost | undefined;
  let server: SyncServer | undefined;
  let laptop: Device | undefined;
  let desktop: Device | undefined;
  const scenario = new Scenario('7-workspace-switch', () => (host ? [host] : []));

  before(async () => {
    host = await E2eHost.start('e2e-switch');
    server = await SyncServer.start();
    // One after the other: two workbenches loading at once time out on a busy machine.
    laptop = await scenario.device({ name: 'laptop', sshConfig: host.sshConfig(), settings: { 'tether.deviceName': 'laptop' } });
    desktop = await scenario.device({ name: 'desktop', sshConfig: host.sshConfig(), settings: { 'tether.deviceName': 'desktop' } });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') server?.saveLog('7-workspace-switch--FAILED');
    await scenario.afterEach(this);
  });

  after(async function () {
    await scenario.after(this);
    await server?.stop();
    await host?.dispose();
  });

  it('7: a workspace switch keeps the session listed; the desktop’s ✕ only detaches and says why; `work` gets its tab back', async () => {
    const a = laptop!;
    const b = desktop!;
    const shared = host!;

    // Sync: a new key on the laptop, pasted on the desktop.
    const key = await setUpSync(a, server!.url, 'create');
    await setUpSync(b, server!.url, key);

    // Laptop, folder `work`: a session with a line of history.
    await openTetherTerminal(a, shared.alias);
    await a.workbench.typeLine('echo "work-history-$((6*7))"');
    await a.workbench.waitForTerminal(/^work-history-42$/m, { what: 'work-history-42 on the laptop' });
    assert.equal(shared.sessions().length, 1);
    const [session] = shared.sessions();
    await scenario.shot(a, 'session in work');

    await b.workbench.openActivity('Tether');
    const live = b.workbench.viewPane(LIVE_VIEW);
    await live.waitFor({ state: 'visible' });
    await b.workbench.treeRow(live, shared.alias).first().waitFor({ state: 'visible', timeout: 30_000 });
    await scenario.shot(b, 'listed on the desktop');

    // Laptop: File > Open Folder on another folder (the old extension host ends).
    const other = join(a.root, 'other-project');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'README.txt'), 'another folder\n');
    await a.killServer('SIGKILL');
    await a.startServer();
    await a.openWorkbench(other);
    await waitForSyncLive(a);
    await scenario.shot(a, 'laptop on another folder');
    assert.equal(await a.workbench.terminalCount(), 0, 'the other folder restores no tabs');

    // The desktop keeps listing it: the laptop's `work` workspace will restore it.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    const row = b.workbench.treeRow(live, shared.alias).first();
    await row.waitFor({ state: 'visible', timeout: 5_000 });
    await scenario.shot(b, 'still listed after the switch');

    // The desktop joins it and closes it with ✕.
    await row.hover();
    await row.locator('.action-label[aria-label^="Join"]').first().click();
    await b.workbench.waitForTerminal(/work-history-42/, { what: 'the laptop’s history in the joined tab', timeout: 60_000 });
    await b.workbench.focusTerminal();
    await b.workbench.runCommand('Terminal: Kill the Active Terminal Instance');
    await until(async () => (await b.workbench.notifications()).some((text) => /detached, not killed: still open on laptop/.test(text)), 30_000, 'the desktop says why the close only detached');
    const toast = b.page.locator('.notification-toast', { hasText: 'detached, not killed' }).first();
    await toast.locator('.monaco-button', { hasText: 'Kill anyway' }).first().waitFor({ state: 'visible' });
    await scenario.shot(b, 'close explained, Kill anyway offered');
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.deepEqual(shared.sessions(), [session], 'the desktop’s close did not kill the session');

    // Laptop: back to `work`; its tab comes back by itself, with its history.
    await a.killServer('SIGKILL');
    await a.startServer();
    await a.openWorkbench();
    await a.workbench.waitForTerminal(/work-history-42/, { what: 'the restored tab in work, with its history', timeout: 90_000 });
    await scenario.shot(a, 'work restored');
    assert.deepEqual(shared.sessions(), [session], 'the same session, and no new one');
  });
});
