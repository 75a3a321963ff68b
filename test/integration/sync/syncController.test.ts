import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { SessionEntry } from '../../../src/sync/blob';
import type { registerSync as RegisterSync, TetherSync } from '../../../src/editor/syncController';
import { type RemoteState, SyncClient } from '../../../src/sync/syncClient';
import { deriveSyncKeys, parseSyncKey } from '../../../src/sync/syncKey';
import { newSessionId } from '../../../src/common/sessionId';
import { FakeEditor, installFakeVscode, useEditor, workspace } from './fakeVscode';
import { sampleSession, ServerProcess, tempRoot } from './harness';
import { parseSshSyncUrl } from '../../../src/sync/sshSyncUrl';
import { poolConnector, SshSyncTransport } from '../../../src/sync/sshTransport';
import { SshHost } from '../../support/sshHost';
import { testPool } from '../fixtures/sessionHarness';

/** A fake vscode.LogOutputChannel that keeps every line, so the test can check what was logged. */
function fakeLog(): { lines: string[]; channel: unknown } {
  const lines: string[] = [];
  const push = (level: string) => (message: string) => void lines.push(`${level} ${message}`);
  return { lines, channel: { trace: push('trace'), debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error'), show: () => undefined } };
}

function eventually<T>(subscribe: (listener: (value: T) => void) => { dispose(): void }, current: () => T, predicate: (value: T) => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (predicate(current())) return resolve();
    const subscription = subscribe((value) => {
      if (!predicate(value)) return;
      subscription.dispose();
      resolve();
    });
  });
}

function listed(remote: RemoteState, id: string): boolean {
  return remote.slots.some((slot) => slot.blob.sessions.some((s) => s.id === id));
}

describe('sync controller (thin VS Code layer, fake vscode, real server)', function () {
  const root = tempRoot();
  let server: ServerProcess;
  let registerSync: typeof RegisterSync;
  let other: SyncClient | undefined;

  before(async function () {
    installFakeVscode();
    // Loaded after the fake is installed, so its `import * as vscode` gets the fake.
    // require, not import(): the fake hooks CommonJS resolution only.
    ({ registerSync } = require('../../../src/editor/syncController') as { registerSync: typeof RegisterSync });
    await fs.mkdir(root, { recursive: true });
    server = await ServerProcess.start(path.join(root, 'data'));
  });

  after(async function () {
    await other?.stop();
    await server?.stop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('sets up with a new key, syncs both ways, signs out, and a second device joins by pasting the key', async function () {
    const local: SessionEntry[] = [sampleSession({ title: 'from the editor' })];

    // Device 1: no key yet, so sync is off.
    const first = new FakeEditor(path.join(root, 'editor-1'));
    useEditor(first);
    const log1 = fakeLog();
    const sync1: TetherSync = registerSync(first.context() as never, log1.channel as never);
    // The window's tabs, as crossDeviceController.ts publishes them once the snapshot's tabs are back.
    sync1.device.setWindowSessions(local);
    await eventually(sync1.onDidChangeState, () => sync1.state, (s) => s.state === 'off');
    assert.equal(sync1.configured, false, 'no key: not set up');
    assert.match(first.statusBarItems[0]!.text, /Sync off/);
    assert.equal(first.statusBarItems[0]!.command, 'tether.showLog');

    // Set Up Sync…: create a key, give the server URL, copy the key from the dialog.
    first.answers.quickPick.push((items: Array<{ action: string }>) => items.find((i) => i.action === 'create'));
    first.answers.inputBox.push(server.url);
    first.answers.info.push('Copy');
    await first.commands.get('tether.setUpSync')!();
    const keyText = first.clipboard;
    const key = parseSyncKey(keyText);
    assert.equal(first.secrets.get('tether.sync.key'), keyText, 'the key is kept in SecretStorage');
    assert.equal(first.settings.get('tether.sync.serverUrl'), server.url);
    await eventually(sync1.onDidChangeState, () => sync1.state, (s) => s.state === 'live');
    assert.equal(sync1.configured, true);
    assert.ok(sync1.client, 'the running client is exposed');
    assert.equal(sync1.client.state.state, 'live');
    assert.match(first.statusBarItems[0]!.text, /Sync/);
    assert.doesNotMatch(first.statusBarItems[0]!.text, /off|offline|error/);

    // Another device (a bare client with the same key) sees the editor's sessions, and vice versa.
    other = new SyncClient({ serverUrl: server.url, syncKey: key, slotId: newSessionId(), deviceName: 'other', stateDir: path.join(root, 'other'), writeDebounceMs: 10 });
    await other.start();
    const otherClient = other;
    await eventually(otherClient.onDidChangeRemote, () => otherClient.getRemoteState(), (r) => listed(r, local[0]!.id));
    local.push(sampleSession({ title: 'second tab' }));
    sync1.device.setWindowSessions(local);
    await eventually(otherClient.onDidChangeRemote, () => otherClient.getRemoteState(), (r) => listed(r, local[1]!.id));
    const fromOther = sampleSession({ hostLabel: 'other-host' });
    otherClient.publish([fromOther]);
    await eventually(sync1.onDidChangeRemote, () => sync1.remote, (r) => listed(r, fromOther.id));

    // Show Sync Key shows the same key and copies it.
    first.clipboard = '';
    first.answers.info.push('Copy');
    await first.commands.get('tether.showSyncKey')!();
    assert.equal(first.clipboard, keyText);

    // Sign out: the key leaves SecretStorage, sync goes off, and the other device drops this one.
    first.answers.warning.push('Sign Out');
    await first.commands.get('tether.signOutSync')!();
    assert.equal(first.secrets.has('tether.sync.key'), false);
    await eventually(sync1.onDidChangeState, () => sync1.state, (s) => s.state === 'off');
    assert.equal(sync1.client, undefined);
    assert.equal(sync1.configured, false, 'signed out: not set up');
    await eventually(otherClient.onDidChangeRemote, () => otherClient.getRemoteState(), (r) => !listed(r, local[0]!.id));

    // The key never reached settings, globalState or the log.
    const { token } = deriveSyncKeys(key);
    const compact = keyText.replace(/-/g, '');
    for (const value of [...first.settings.values(), ...first.globalState.values()]) {
      assert.equal(JSON.stringify(value).includes(compact.slice(8, 30)), false);
    }
    for (const line of log1.lines) {
      assert.equal(line.includes(keyText) || line.includes(compact.slice(8, 30)) || line.includes(token), false, `log line leaks the key: ${line}`);
    }
    await sync1.dispose();
    await first.dispose();

    // Device 2 pastes the key (with spaces and capitals, as people do) and sees the other device.
    const second = new FakeEditor(path.join(root, 'editor-2'));
    useEditor(second);
    const sync2 = registerSync(second.context() as never, fakeLog().channel as never);
    sync2.device.setWindowSessions([]);
    second.answers.quickPick.push((items: Array<{ action: string }>) => items.find((i) => i.action === 'paste'));
    second.answers.inputBox.push(` ${keyText.toUpperCase().replace(/-/g, ' ')} `, server.url);
    await second.commands.get('tether.setUpSync')!();
    assert.equal(second.secrets.get('tether.sync.key'), keyText, 'stored in canonical form');
    await eventually(sync2.onDidChangeRemote, () => sync2.remote, (r) => listed(r, fromOther.id));
    await eventually(sync2.onDidChangeState, () => sync2.state, (s) => s.state === 'live');

    // Turning cross-device sessions off stops sync on this device.
    assert.equal(sync2.crossDevice, true);
    const flips: boolean[] = [];
    sync2.onDidChangeCrossDevice((enabled) => flips.push(enabled));
    await workspace.getConfiguration('tether').update('crossDeviceSessions', false);
    assert.equal(sync2.crossDevice, false);
    assert.deepEqual(flips, [false], 'the change is told once, at once');
    await eventually(sync2.onDidChangeState, () => sync2.state, (s) => s.state === 'off');
    assert.deepEqual(sync2.remote.slots, []);
    assert.equal(sync2.configured, true, 'still set up: off only because sharing is');
    await sync2.dispose();
    await second.dispose();
  });

  it('refuses a mistyped key in the paste box', async function () {
    const editor = new FakeEditor(path.join(root, 'editor-3'));
    useEditor(editor);
    const sync = registerSync(editor.context() as never, fakeLog().channel as never);
    let validation: string | undefined;
    editor.answers.quickPick.push((items: Array<{ action: string }>) => items.find((i) => i.action === 'paste'));
    editor.answers.inputBox.push((options: { validateInput(text: string): string | undefined }) => {
      validation = options.validateInput('tether1-aaaaaa-bbbbbb');
      return undefined; // the user gives up
    });
    await editor.commands.get('tether.setUpSync')!();
    assert.match(validation ?? '', /characters|missing/);
    assert.equal(editor.secrets.size, 0);
    await sync.dispose();
    await editor.dispose();
  });
  it('asks before plain http:// to a host that is not loopback, and the status bar says it is not encrypted in transit', async function () {
    const editor = new FakeEditor(path.join(root, 'editor-4'));
    useEditor(editor);
    const sync = registerSync(editor.context() as never, fakeLog().channel as never);
    const remote = 'http://192.0.2.10:8787'; // TEST-NET-1: never answers, which is fine here
    let asked: unknown[] = [];

    // Declined: nothing is saved, no key is stored.
    editor.answers.quickPick.push((items: Array<{ action: string }>) => items.find((i) => i.action === 'create'));
    editor.answers.inputBox.push(remote);
    editor.answers.warning.push((...args: unknown[]) => {
      asked = args;
      return undefined;
    });
    await editor.commands.get('tether.setUpSync')!();
    assert.match(String(asked[0]), /192\.0\.2\.10:8787 will not be encrypted in transit/);
    assert.deepEqual(asked[1] && (asked[1] as { modal?: boolean }).modal, true);
    assert.equal(editor.settings.get('tether.sync.serverUrl'), undefined);
    assert.equal(editor.secrets.size, 0);

    // Confirmed: saved, and the status bar shows the open lock with the reason.
    editor.answers.quickPick.push((items: Array<{ action: string }>) => items.find((i) => i.action === 'create'));
    editor.answers.inputBox.push(remote);
    editor.answers.warning.push((_message: string, _options: unknown, confirm: string) => confirm);
    editor.answers.info.push(undefined);
    await editor.commands.get('tether.setUpSync')!();
    assert.equal(editor.settings.get('tether.sync.serverUrl'), remote);
    await eventually(sync.onDidChangeState, () => sync.state, (s) => s.state !== 'off');
    const item = editor.statusBarItems[0] as unknown as { text: string; tooltip: string };
    assert.match(item.text, /\$\(unlock\)/);
    assert.match(item.tooltip, /Not encrypted in transit: 192\.0\.2\.10:8787/);

    // Loopback needs no question, and shows no lock.
    const warningsBefore = editor.messages.filter((m) => m.kind === 'warning').length;
    editor.answers.quickPick.push((items: Array<{ action: string }>) => items.find((i) => i.action === 'server'));
    editor.answers.inputBox.push(server.url);
    await editor.commands.get('tether.setUpSync')!();
    assert.equal(editor.messages.filter((m) => m.kind === 'warning').length, warningsBefore);
    await eventually(sync.onDidChangeState, () => sync.state, (s) => s.state === 'live');
    assert.doesNotMatch(item.text, /unlock/);
    await sync.dispose();
    await editor.dispose();
  });
});

describe('sync controller: Set Up Sync through an SSH host (fake vscode, real sshd)', function () {
  this.timeout(120_000);
  const root = tempRoot();
  let host: SshHost;
  let registerSync: typeof RegisterSync;
  const pools = [testPool(), testPool()];
  let other: SyncClient | undefined;

  before(async function () {
    installFakeVscode();
    ({ registerSync } = require('../../../src/editor/syncController') as { registerSync: typeof RegisterSync });
    await fs.mkdir(root, { recursive: true });
    host = await SshHost.start({ user: 'tsyncctl' });
    host.run('rm -rf "$HOME/.tether/sync"');
  });

  after(async function () {
    await other?.stop();
    pools.forEach((pool) => pool.dispose());
    await host?.dispose();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('offers "Sync through an SSH host", takes a typed user@host:port, and syncs with another device through it', async function () {
    const local: SessionEntry[] = [sampleSession({ title: 'from the editor over ssh' })];
    const editor = new FakeEditor(path.join(root, 'editor-ssh'));
    useEditor(editor);
    const typed = `${host.user}@127.0.0.1:${host.port}`;
    const resolved = host.resolved();
    const sync = registerSync(editor.context() as never, fakeLog().channel as never, {
      pool: pools[0],
      resolve: (label) => {
        assert.equal(label, typed);
        return resolved;
      },
      configuredHosts: () => ['not-this-one'],
    });
    sync.device.setWindowSessions(local);
    let hostItems: Array<{ label: string; host?: string }> = [];
    editor.answers.quickPick.push(
      (items: Array<{ action: string; label: string }>) => items.find((i) => i.action === 'ssh'),
      (items: Array<{ action: string }>) => items.find((i) => i.action === 'create'),
      (items: Array<{ label: string; host?: string }>) => {
        hostItems = items;
        return items.find((i) => i.host === undefined);
      },
    );
    editor.answers.inputBox.push(typed);
    editor.answers.info.push('Copy');
    await editor.commands.get('tether.setUpSync')!();
    assert.ok(hostItems.some((i) => i.host === 'not-this-one'), 'ssh config hosts are offered');
    assert.equal(editor.settings.get('tether.sync.serverUrl'), `ssh://${typed}`);
    await eventually(sync.onDidChangeState, () => sync.state, (st) => st.state === 'live');

    const key = parseSyncKey(editor.clipboard);
    other = new SyncClient({
      serverUrl: '',
      transport: new SshSyncTransport({ location: parseSshSyncUrl(`ssh://${typed}`), token: deriveSyncKeys(key).token, ...poolConnector(pools[1], () => resolved), watcher: 'sh' }),
      syncKey: key,
      slotId: newSessionId(),
      deviceName: 'other over ssh',
      stateDir: path.join(root, 'other-ssh'),
      writeDebounceMs: 10,
    });
    await other.start();
    const otherClient = other;
    await eventually(otherClient.onDidChangeRemote, () => otherClient.getRemoteState(), (r) => listed(r, local[0]!.id));
    const fromOther = sampleSession({ hostLabel: 'other-host' });
    otherClient.publish([fromOther]);
    await eventually(sync.onDidChangeRemote, () => sync.remote, (r) => listed(r, fromOther.id));

    // Sign out deletes this device's slot on the host: the other device drops it.
    editor.answers.warning.push('Sign Out');
    await editor.commands.get('tether.signOutSync')!();
    await eventually(otherClient.onDidChangeRemote, () => otherClient.getRemoteState(), (r) => !listed(r, local[0]!.id));
    await sync.dispose();
    await editor.dispose();
  });
});
