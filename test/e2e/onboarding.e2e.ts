/**
 * Scenarios 7–9 (issue 19): the walkthrough and its first step's command, the terminal panel shown
 * (without focus) after a restore, and the Hosts view's empty state; the packaged .vsix in
 * code-server, against a real sshd and tmux.
 */
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Device } from './harness/device';
import { E2eHost } from './harness/hosts';
import { Scenario } from './harness/scenario';
import { NEW_TERMINAL, openTetherTerminal, PROMPT, until } from './harness/steps';

const WALKTHROUGH = 'Get Started with Tether';

/** Whether keyboard focus is inside a terminal (the panel was shown with preserveFocus if not). */
function focusInTerminal(device: Device): Promise<boolean> {
  return device.page.evaluate(() => {
    const active = (globalThis as unknown as { document: { activeElement: { closest(selector: string): unknown } | null } }).document.activeElement;
    return !!active && !!active.closest('.xterm, .terminal-wrapper');
  });
}

function restoreLogged(device: Device, times: number): boolean {
  const text = device.tetherLogs().map((file) => readFileSync(file, 'utf8')).join('\n');
  return (text.match(/restore: 1 tab\(s\) from the snapshot/g) ?? []).length >= times;
}

describe('Tether onboarding and restore in a real VS Code (code-server, packaged .vsix)', function () {
  this.timeout(300_000);
  let host: E2eHost;
  const hosts = E2eHost.forSuite((started) => (host = started));

  describe('scenario 19a: walkthrough', () => {
    const scenario = Scenario.hooked('19a-walkthrough', hosts);

    it('19a: the walkthrough opens from the palette, shows its first step with its image, and the step’s button opens a persistent terminal', async () => {
      const device = await scenario.device({ name: 'laptop', sshConfig: host.sshConfig() });
      const workbench = device.workbench;
      await workbench.runCommand('Open Walkthrough');
      await workbench.pick(WALKTHROUGH);
      const page = device.page;
      const walkthrough = page.locator('.gettingStartedContainer');
      await walkthrough.getByText(WALKTHROUGH).first().waitFor({ state: 'visible', timeout: 60_000 });
      for (const title of ['Open a persistent terminal', 'Survive a disconnect', 'Set up sync', 'See and join your other devices']) {
        await walkthrough.getByText(title, { exact: true }).first().waitFor({ state: 'visible' });
      }
      // The first step is open, with its diagram loaded from the extension.
      const image = walkthrough.locator('.getting-started-media img');
      // The workbench sets srcset (not src); currentSrc is what the browser loaded.
      type Img = { currentSrc: string; complete: boolean; naturalWidth: number };
      const loaded = (): Promise<Img> => image.first().evaluate((img) => {
        const { currentSrc, complete, naturalWidth } = img as unknown as Img;
        return { currentSrc, complete, naturalWidth };
      });
      await until(async () => {
        const state = await loaded().catch(() => undefined);
        return !!state && /openTerminal\.svg/.test(state.currentSrc) && state.complete && state.naturalWidth > 0;
      }, 30_000, 'the first step shows media/walkthrough/openTerminal.svg, loaded');
      await scenario.shot(device, 'walkthrough first step');

      // Exact: the step itself is a button whose name starts with the same words (case aside).
      await walkthrough.getByRole('button', { name: 'Open a Persistent Terminal', exact: true }).first().click();
      await workbench.pick(host.alias, { title: NEW_TERMINAL });
      await workbench.waitForTerminal(PROMPT, { what: 'the remote shell prompt', timeout: 60_000 });
      assert.equal(host.sessions().length, 1, `one tmux session on the host, found: ${host.sessions().join(', ')}`);
      await scenario.shot(device, 'terminal from the walkthrough');
    });
  });

  describe('scenario 19b: restore shows the panel', () => {
    const scenario = Scenario.hooked('19b-restore-shows-panel', hosts);

    it('19b: after a restart the restored tab shows in the panel without focus, also when the panel was hidden, and stays active over the local default terminal', async () => {
      const device = await scenario.device({ name: 'laptop', sshConfig: host.sshConfig() });
      const workbench = device.workbench;
      const panel = device.page.locator('.part.panel');
      await openTetherTerminal(device, host.alias);
      await workbench.typeLine('echo "restored-mark-$((3*7))"');
      await workbench.waitForTerminal(/^restored-mark-21$/m, { what: 'restored-mark-21' });

      // 1. The panel is hidden when VS Code goes away: the restore has to show it.
      await workbench.runCommand('View: Hide Panel');
      await panel.waitFor({ state: 'hidden' });
      // The workbench writes its layout (panel hidden) on shutdown and on its periodic state save,
      // every 60 s. Killed sooner, it could come back with the panel open and create its default
      // local terminal before Tether activates: step 2's case, not this one (seen once in CI).
      await device.page.waitForTimeout(65_000);
      await device.killServer('SIGKILL');
      await device.startServer();
      await device.reload();
      await panel.waitFor({ state: 'visible', timeout: 90_000 });
      await workbench.waitForTerminal(/^restored-mark-21$/m, { what: 'the restored tab in the shown panel', timeout: 90_000 });
      await until(() => restoreLogged(device, 1), 30_000, 'the Tether log records the restore');
      await scenario.shot(device, 'panel shown after restore');
      assert.equal(await focusInTerminal(device), false, 'the restore did not move keyboard focus into the terminal');
      assert.equal(await workbench.terminalCount(), 1, 'only the restored Tether tab: no local terminal was opened');

      // 2. The panel is open when VS Code goes away: the workbench opens its default local terminal
      //    before Tether activates (docs/e2e-findings.md, 3); the restored tab must end up active.
      await device.killServer('SIGKILL');
      await device.startServer();
      await device.reload();
      await until(() => restoreLogged(device, 2), 90_000, 'the Tether log records the second restore');
      await workbench.waitForTerminal(/^restored-mark-21$/m, { what: 'the restored Tether tab as the visible terminal', timeout: 90_000 });
      const terminals = await workbench.terminalCount();
      console.log(`      terminal views in the panel after the second restore: ${terminals}`);
      await scenario.shot(device, 'restored tab active over the local terminal');
      const text = await workbench.terminalText();
      assert.match(text, /restored-mark-21/, 'the visible terminal is the restored Tether tab');
      assert.equal(await focusInTerminal(device), false, 'the restore did not move keyboard focus into the terminal');
    });
  });

  describe('scenario 19c: Hosts view empty state', () => {
    const scenario = Scenario.hooked('19c-hosts-empty', hosts);
    let device: Device | undefined;

    it('19c: with no host in ~/.ssh/config the Hosts view explains it, and its Open SSH Config action opens the file', async () => {
      device = await scenario.device({ name: 'empty', sshConfig: '' });
      const workbench = device.workbench;
      await workbench.openActivity('Tether');
      const hostsPane = workbench.viewPane('Hosts');
      await hostsPane.waitFor({ state: 'visible', timeout: 60_000 });
      const welcome = hostsPane.locator('.welcome-view-content');
      await welcome.getByText(/No hosts yet: ~\/\.ssh\/config has no Host entries/).waitFor({ state: 'visible', timeout: 60_000 });
      await scenario.shot(device, 'hosts empty state');
      await welcome.getByRole('button', { name: 'Open SSH Config' }).click();
      await device.page.locator('.part.editor .tab', { hasText: 'config' }).first().waitFor({ state: 'visible', timeout: 30_000 });
      await scenario.shot(device, 'ssh config opened');
    });

    it('19d: Report a Problem copies a report with versions and the log tail, and Open Report shows it', async function () {
      if (!device) this.skip();
      const workbench = device.workbench;
      await workbench.runCommand('Tether: Report a Problem');
      const toast = device.page.locator('.notification-toast', { hasText: 'a problem report is on the clipboard' });
      await toast.waitFor({ state: 'visible', timeout: 30_000 });
      await toast.getByRole('button', { name: 'Open Report' }).click();
      const editor = device.page.locator('.part.editor .monaco-editor .view-lines').filter({ visible: true }).first();
      // Monaco renders spaces as no-break spaces.
      const editorText = async (): Promise<string> => ((await editor.textContent().catch(() => '')) ?? '').replace(/\u00a0/g, ' ');
      await until(async () => /Tether problem report/.test(await editorText()), 30_000, 'the report opens in an editor');
      const text = await editorText();
      await scenario.shot(device, 'problem report');
      assert.match(text, /- Tether: \d+\.\d+\.\d+/);
      assert.match(text, /- Node: v\d+/);
      assert.match(text, /tether\.tmux\.mode: control/);
      // The log tail was read: the extension logged its (empty) restore at startup.
      assert.match(text, /restore: 0 tab\(s\) from the snapshot/);
    });
  });
});
