/**
 * Scenario 15 (issue 15): sync with no server. Two code-servers set up sync through the palette,
 * choosing "Sync through an SSH host" and the ssh config alias they already use for their
 * terminals: the laptop creates the key, the desktop pastes it. No sync server runs. The laptop's
 * session shows under "Live on other devices" on the desktop, which joins it and types; both see
 * the output. On the host, the account folder holds only sealed blobs, markers and presence files.
 */
import * as assert from 'node:assert/strict';
import type { Device } from './harness/device';
import { E2eHost } from './harness/hosts';
import { Scenario } from './harness/scenario';
import { liveSessionRow, openTetherTerminal, takeShownSyncKey, waitForSyncLive } from './harness/steps';

const SET_UP = 'Tether: Set Up Sync';
const VIA_SSH = 'Sync through an SSH host';

/** Set Up Sync → Sync through an SSH host → the key step → the host alias. */
async function setUpThroughSsh(device: Device, alias: string, key: 'create' | string): Promise<string | undefined> {
  await device.workbench.runCommand(SET_UP);
  await device.workbench.pick(VIA_SSH, { title: SET_UP });
  if (key === 'create') {
    await device.workbench.pick('Create a new sync key', { title: 'Tether: Sync Through an SSH Host: the sync key' });
  } else {
    await device.workbench.pick('Paste a sync key from another device', { title: 'Tether: Sync Through an SSH Host: the sync key' });
    await device.workbench.answerInput(key, { title: 'Paste the sync key from your other device' });
  }
  await device.workbench.pick(alias, { title: 'Tether: Sync Through an SSH Host' });
  return key === 'create' ? takeShownSyncKey(device) : undefined;
}

describe('sync through an SSH host (two code-servers, no sync server)', function () {
  this.timeout(300_000);
  let host: E2eHost | undefined;
  let laptop: Device | undefined;
  let desktop: Device | undefined;
  const scenario = new Scenario('15-ssh-sync', () => (host ? [host] : []));

  before(async () => {
    host = await E2eHost.start('e2e-sync-host');
    // The test user's home outlives a run on a developer machine: start with no sync folder.
    host.host.run('rm -rf "$HOME/.tether/sync"');
    // One after the other: two workbenches loading at once time out on a busy machine.
    laptop = await scenario.device({ name: 'laptop', sshConfig: host.sshConfig(), settings: { 'tether.deviceName': 'laptop' } });
    desktop = await scenario.device({ name: 'desktop', sshConfig: host.sshConfig(), settings: { 'tether.deviceName': 'desktop' } });
  });

  afterEach(async function () {
    await scenario.afterEach(this);
  });

  after(async function () {
    await scenario.after(this);
    await host?.dispose();
  });

  it('15: set up through the palette on both devices; the desktop lists the laptop’s session, joins it and types', async () => {
    const a = laptop!;
    const b = desktop!;
    const shared = host!;

    const key = await setUpThroughSsh(a, shared.alias, 'create');
    await waitForSyncLive(a);
    await scenario.shot(a, 'sync through the host is live');
    await setUpThroughSsh(b, shared.alias, key!);
    await waitForSyncLive(b);

    await openTetherTerminal(a, shared.alias);
    await a.workbench.typeLine('echo "via-ssh-sync-$((6*7))"');
    await a.workbench.waitForTerminal(/^via-ssh-sync-42$/m, { what: 'via-ssh-sync-42 on the laptop' });

    const row = await liveSessionRow(b, /laptop/, shared.alias);
    await scenario.shot(b, 'the laptop’s session, listed through the SSH host');

    await row.hover();
    const join = row.locator('.action-label[aria-label^="Join"]').first();
    await join.waitFor({ state: 'visible' });
    await join.click();
    await b.workbench.waitForTerminal(/via-ssh-sync-42/, { what: 'the laptop’s output in the joined tab', timeout: 60_000 });
    assert.equal(shared.sessions().length, 1, 'joining created no new session');
    await b.workbench.focusTerminal();
    await b.workbench.typeLine('echo "typed-on-desktop-$((2+3))"');
    await a.workbench.waitForTerminal(/^typed-on-desktop-5$/m, { what: 'the desktop’s command on the laptop' });
    await scenario.shot(b, 'joined and typed');

    // What the host keeps: one folder per account (hex), holding only slot files, markers and
    // presence, and the blobs are sealed: no session ID, host name or device name in plain text.
    const accounts = shared.host.run('ls "$HOME/.tether/sync"').split('\n').filter((name) => name !== '');
    assert.equal(accounts.length, 1, `one account folder: ${accounts.join(' ')}`);
    assert.match(accounts[0], /^[0-9a-f]{64}$/);
    const files = shared.host.run(`ls "$HOME/.tether/sync/${accounts[0]}"`).split('\n').filter((name) => name !== '');
    assert.ok(files.length >= 4, `both devices wrote: ${files.join(' ')}`);
    for (const name of files) assert.match(name, /^[a-z2-7]{26}\.(blob|v[0-9]+|s[0-9]+|d[0-9]+|z[0-9]+)$/, `unexpected file ${name}`);
    const contents = shared.host.run('cat "$HOME"/.tether/sync/*/*.blob');
    const [session] = shared.sessions();
    for (const secret of [session.replace(/^tether_/, ''), 'laptop', 'desktop', shared.alias]) assert.ok(!contents.includes(secret), `"${secret}" is readable on the host`);
  });
});
