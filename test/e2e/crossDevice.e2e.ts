/**
 * Scenarios 4 and 5 of issue 7: two code-server instances are two devices ("laptop" and
 * "desktop") sharing one sync server. Sync is set up through the UI (a new key on the laptop, the
 * key pasted on the desktop), a session started on the laptop shows in the desktop's "Live on
 * other devices" tree, the desktop joins it and types; closing on the desktop keeps it alive on
 * the laptop, and closing on the laptop ends it everywhere.
 */
import * as assert from 'node:assert/strict';
import type { Device } from './harness/device';
import { E2eHost } from './harness/hosts';
import { Scenario } from './harness/scenario';
import { closeActiveTerminal, LIVE_VIEW, liveSessionRow, openTetherTerminal, setUpSync, until } from './harness/steps';
import { SyncServer } from './harness/syncServer';

describe('Tether across two devices (two code-servers, one sync server)', function () {
  this.timeout(300_000);
  let host: E2eHost | undefined;
  let server: SyncServer | undefined;
  let laptop: Device | undefined;
  let desktop: Device | undefined;
  const scenario = new Scenario('4-5-two-devices', () => (host ? [host] : []));
  let inlineJoinAskedAgain: boolean | undefined;

  before(async () => {
    host = await E2eHost.start('e2e-shared');
    server = await SyncServer.start();
    [laptop, desktop] = await Promise.all([
      scenario.device({ name: 'laptop', sshConfig: host.sshConfig(), settings: { 'tether.deviceName': 'laptop' } }),
      scenario.device({ name: 'desktop', sshConfig: host.sshConfig(), settings: { 'tether.deviceName': 'desktop' } }),
    ]);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') server?.saveLog('4-5-two-devices--FAILED');
    await scenario.afterEach(this);
  });

  after(async function () {
    await scenario.after(this);
    await server?.stop();
    await host?.dispose();
  });

  it('4: sync set up by pasting the key; the laptop’s session shows on the desktop, which joins it and types', async () => {
    const a = laptop!;
    const b = desktop!;
    const shared = host!;

    // Laptop: a new sync key, shown once in a dialog for the user to carry to the other device.
    const key = await setUpSync(a, server!.url, 'create', () => scenario.shot(a, 'sync key shown'));

    // Desktop: paste that key.
    await setUpSync(b, server!.url, key);
    await scenario.shot(b, 'sync live');

    // Laptop: a session with some output.
    await openTetherTerminal(a, shared.alias);
    await a.workbench.typeLine('echo "shared-from-$((40+2))"');
    await a.workbench.waitForTerminal(/^shared-from-42$/m, { what: 'shared-from-42 on the laptop' });
    await scenario.shot(a, 'session on the laptop');

    // Desktop: the session appears under the laptop in "Live on other devices".
    const row = await liveSessionRow(b, /laptop/, shared.alias);
    await scenario.shot(b, 'live on other devices');

    // Join with the row's inline action, as a person would.
    await row.hover();
    const join = row.locator('.action-label[aria-label^="Join"]').first();
    await join.waitFor({ state: 'visible' });
    await join.click();
    // The action should join this very session. If it asks again with a quick pick of all live
    // sessions instead (the bug 4b reports), pick the laptop's session there and go on.
    inlineJoinAskedAgain = false;
    const askedAgain = b.workbench.quickInput.locator('.quick-input-title', { hasText: 'Tether: Join Session' });
    await until(async () => (await askedAgain.isVisible()) || /shared-from-42/.test(await b.workbench.terminalText()), 30_000, 'the joined tab or a join quick pick appears');
    if (await askedAgain.isVisible()) {
      inlineJoinAskedAgain = true;
      await scenario.shot(b, 'inline join asked again');
      await b.workbench.quickInput.locator('.monaco-list-row.focused', { hasText: 'laptop' }).waitFor({ state: 'visible' });
      await b.page.keyboard.press('Enter');
    }
    await b.workbench.waitForTerminal(/shared-from-42/, { what: 'the laptop’s output in the joined tab', timeout: 60_000 });
    assert.equal(shared.sessions().length, 1, 'joining created no new session');
    await scenario.shot(b, 'joined');

    // Desktop types; both devices see it.
    await b.workbench.focusTerminal();
    await b.workbench.typeLine('echo "typed-on-desktop-$((2+3))"');
    await b.workbench.waitForTerminal(/^typed-on-desktop-5$/m, { what: 'typed-on-desktop-5 on the desktop' });
    await a.workbench.waitForTerminal(/^typed-on-desktop-5$/m, { what: 'typed-on-desktop-5 on the laptop' });
    await scenario.shot(b, 'typed on the desktop');
    await scenario.shot(a, 'laptop sees the desktop’s command');
  });

  it('4b: the inline Join action on a tree row joins that session directly', function () {
    if (inlineJoinAskedAgain === undefined) this.skip();
    assert.equal(
      inlineJoinAskedAgain,
      false,
      'clicking Join on the session row opened the "Tether: Join Session" quick pick of all live sessions instead of joining the clicked one (see docs/e2e-findings.md)',
    );
  });

  it('5: closing on the desktop keeps the session alive on the laptop; closing on the laptop ends it everywhere', async function () {
    const a = laptop!;
    const b = desktop!;
    const shared = host!;
    if (shared.sessions().length !== 1) this.skip();
    const [session] = shared.sessions();

    // Desktop closes its tab: only a detach, since the laptop still uses the session.
    await closeActiveTerminal(b);
    await until(async () => !(await b.workbench.terminalText()).includes('typed-on-desktop-5'), 30_000, 'the desktop’s tab is gone');
    await scenario.shot(b, 'desktop closed its tab');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.deepEqual(shared.sessions(), [session], 'the session is still on the host');
    await a.workbench.focusTerminal();
    await a.workbench.typeLine('echo "laptop-still-$((3*3))"');
    await a.workbench.waitForTerminal(/^laptop-still-9$/m, { what: 'laptop-still-9 on the laptop' });
    await scenario.shot(a, 'laptop still works');
    // The desktop lists it again: it is open on another device, not here.
    const live = b.workbench.viewPane(LIVE_VIEW);
    await b.workbench.treeRow(live, shared.alias).first().waitFor({ state: 'visible', timeout: 30_000 });

    // Laptop closes its tab: the last device, so the session is killed on the host.
    await closeActiveTerminal(a);
    await until(() => shared.sessions().length === 0, 30_000, 'the session is gone from the host');
    await scenario.shot(a, 'laptop closed its tab');
    // …and it leaves the desktop's list.
    await b.workbench.treeRow(live, shared.alias).first().waitFor({ state: 'hidden', timeout: 30_000 });
    await scenario.shot(b, 'gone from live on other devices');
  });
});
