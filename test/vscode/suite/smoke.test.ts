/**
 * Smoke tests inside desktop VS Code's extension host (npm run test:vscode): the real `vscode` API,
 * the extension loaded from the repository (dist/extension.js), a throwaway profile and home.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { name, publisher } from '../../../package.json';
import { freePort } from '../../support/ports';

const EXTENSION_ID = `${publisher}.${name}`;

interface Manifest {
  contributes: {
    commands: { command: string }[];
    configuration: { properties: Record<string, { default?: unknown }> };
    viewsContainers: { activitybar: { id: string }[] };
    views: Record<string, { id: string }[]>;
    terminal: { profiles: { id: string }[] };
  };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function nextTerminalEvent(event: vscode.Event<vscode.Terminal>, matches: (terminal: vscode.Terminal) => boolean): Promise<vscode.Terminal> {
  return new Promise((resolve) => {
    const listener = event((terminal) => {
      if (!matches(terminal)) return;
      listener.dispose();
      resolve(terminal);
    });
  });
}

describe('Tether in desktop VS Code', () => {
  let extension: vscode.Extension<unknown>;
  let manifest: Manifest;

  before(async () => {
    const found = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(found, `${EXTENSION_ID} is loaded from the extension development path`);
    extension = found;
    manifest = found.packageJSON as Manifest;
    await extension.activate();
  });

  after(() => {
    for (const terminal of vscode.window.terminals) terminal.dispose();
  });

  it('activates', () => {
    assert.equal(extension.isActive, true);
  });

  it('registers every command that package.json contributes', async () => {
    const declared = manifest.contributes.commands.map(({ command }) => command);
    assert.ok(declared.length > 0, 'package.json contributes commands');
    const registered = new Set(await vscode.commands.getCommands(true));
    assert.deepEqual(declared.filter((command) => !registered.has(command)), [], 'contributed but not registered');
  });

  it('reads the declared default of every setting', () => {
    const properties = Object.entries(manifest.contributes.configuration.properties);
    assert.ok(properties.length > 0, 'package.json contributes settings');
    const configuration = vscode.workspace.getConfiguration();
    for (const [key, schema] of properties) {
      assert.ok('default' in schema, `${key} declares a default`);
      assert.deepEqual(configuration.inspect(key)?.defaultValue, schema.default, `${key}: the default VS Code registered`);
      // The profile is fresh, so the effective value is the default too.
      assert.deepEqual(configuration.get(key), schema.default, `${key}: the value the extension reads`);
    }
  });

  it('opens its view container and focuses each contributed view', async () => {
    const containers = manifest.contributes.viewsContainers.activitybar.map(({ id }) => id);
    assert.ok(containers.length > 0, 'package.json contributes a view container');
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const container of containers) {
      const views = manifest.contributes.views[container] ?? [];
      assert.ok(views.length > 0, `views in ${container}`);
      // VS Code creates these commands only for containers and views it registered.
      const commands = [`workbench.view.extension.${container}`, ...views.map(({ id }) => `${id}.focus`)];
      assert.deepEqual(commands.filter((command) => !registered.has(command)), [], 'view commands VS Code did not create');
      for (const command of commands) await vscode.commands.executeCommand(command);
    }
  });

  it('provides the contributed terminal profile(s)', () => {
    const profiles = manifest.contributes.terminal.profiles.map(({ id }) => id);
    assert.ok(profiles.length > 0, 'package.json contributes a terminal profile');
    for (const id of profiles) {
      // VS Code refuses a second provider for an id: the refusal shows Tether registered the first.
      let error: unknown;
      try {
        vscode.window.registerTerminalProfileProvider(id, { provideTerminalProfile: () => undefined }).dispose();
      } catch (caught) {
        error = caught;
      }
      assert.match(String(error), /already registered/, `a provider for ${id} is registered`);
    }
  });

  it('opens a Tether tab on a host that refuses the connection: the tab stays with the error until a key, then closes with code 1', async () => {
    // A port nothing listens on: connecting is refused at once.
    const host = `tether-smoke@127.0.0.1:${await freePort()}`;
    const existing = new Set(vscode.window.terminals);
    const opened = nextTerminalEvent(vscode.window.onDidOpenTerminal, (terminal) => !existing.has(terminal));
    await vscode.commands.executeCommand('tether.newTerminal', { host });
    const terminal = await within(opened, 10_000, 'the new Tether tab');
    assert.ok(terminal.name.startsWith(`${host} · `), `tab name "${terminal.name}"`);
    assert.ok('pty' in terminal.creationOptions, 'the tab is an extension pseudoterminal, not a local shell');

    const closed = nextTerminalEvent(vscode.window.onDidCloseTerminal, (candidate) => candidate === terminal);
    let closedYet = false;
    void closed.then(() => (closedYet = true));
    // No API reads a tab's text. The session prints the error and waits for a key (TetherPty); a
    // key before that goes to the session, which never attaches. So: a key every 250 ms.
    let keys = 0;
    const deadline = Date.now() + 20_000;
    while (!closedYet && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      if (closedYet) break;
      terminal.sendText('x', false);
      keys++;
    }
    assert.ok(closedYet, 'the tab closed on a key once the connection had failed');
    assert.ok(keys > 0, 'the tab did not close by itself before a key');
    assert.equal(terminal.exitStatus?.code, 1, 'a failed connection ends the tab with code 1, not as a clean exit');

    // The extension is still up and answering.
    assert.equal(extension.isActive, true);
    await vscode.commands.executeCommand('tether.showLog');
  });
});
