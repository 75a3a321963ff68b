/**
 * Scenario 20: a flood in a control-mode tab (docs/architecture.md, "Floods"): while a pane writes
 * faster than anyone reads, the tab shows tmux's screen at display rate; when the output stops the
 * tab is live again, its scrollback holds the last lines in order, and keys work throughout. A
 * burst that ends with an exact append, two million lines (tmux trims its history meanwhile, so
 * those end with a full sync), and `yes` stopped with Control+C. The packaged .vsix in
 * code-server, against a real sshd and tmux (3.3a here: control mode is the default).
 */
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Device } from './harness/device';
import { E2eHost } from './harness/hosts';
import { Scenario } from './harness/scenario';
import { openTetherTerminal, PROMPT, until } from './harness/steps';

// 12000 rows of 80 bytes flood the tab for longer than the 200 ms a flood takes to be noticed,
// and end before tmux's history fills (it trims from 45000 of 50000 rows), so the flood ends with
// an exact append of the rows tmux parsed after the mark (with REPLAY_LINES, all of them fit).
const BURST_COMMAND = "pad=$(printf '%68s' | tr ' ' .); seq -f \"burst-%.0f $pad\" 1 12000; echo burst-done";
const BURST_LAST = 12_000;
const REPLAY_LINES = 20_000;
// `%.0f`, not `%g`: seq's %g keeps six significant digits, so past 999999 rows read flood-1e+06.
const FLOOD_COMMAND = "seq -f 'flood-%.0f' 1 2000000; echo flood-done";
const FLOOD_LAST = 2_000_000;
const FLOOD_ENTERED = /output above [\d.]+ MB\/s; showing the screen at display rate until it calms/g;
// Every flood ends so; "flood over; …" is logged only when an append was tried.
const FLOOD_CALM = /output calm after [\d.]+ s; resuming/g;
const FLOOD_OVER = /flood over; [^\n]*/g;

/** The numbers of the `<word>-N` rows in a screen's text, top to bottom. */
function numbered(text: string, word: string): number[] {
  return text.split('\n').flatMap((line) => {
    const match = new RegExp(`^${word}-(\\d+)(?: \\.+)?$`).exec(line);
    return match ? [Number(match[1])] : [];
  });
}

/** The first place where a number is not the previous plus one, or undefined when there is none. */
function breakIn(numbers: number[], word: string): string | undefined {
  for (let index = 1; index < numbers.length; index++) {
    if (numbers[index] !== numbers[index - 1] + 1) return `${word}-${numbers[index - 1]} is followed by ${word}-${numbers[index]}`;
  }
  return undefined;
}

/**
 * As breakIn, for a screen caught while the pane writes: its last row may be cut short (seq writes
 * in blocks, and tmux shows the part written so far), e.g. flood-2 below flood-262579.
 */
function breakInLive(numbers: number[], word: string): string | undefined {
  const last = numbers.length - 1;
  const cut = last > 0 && numbers[last] !== numbers[last - 1] + 1 && String(numbers[last - 1] + 1).startsWith(String(numbers[last]));
  return breakIn(cut ? numbers.slice(0, last) : numbers, word);
}

/** Whether the screen shows `<word>-done` with a prompt below it: the flood's command has finished. */
function doneThenPrompt(text: string, word: string): boolean {
  const rows = text.split('\n');
  const done = rows.lastIndexOf(`${word}-done`);
  return done >= 0 && rows.slice(done + 1).some((row) => PROMPT.test(row));
}

function tetherLog(device: Device): string {
  return device.tetherLogs().map((file) => readFileSync(file, 'utf8')).join('\n');
}

function count(text: string, pattern: RegExp): number {
  return (text.match(pattern) ?? []).length;
}

/** The last non-blank row of a screen. */
function lastRow(text: string): string {
  return text.split('\n').filter((line) => line.trim()).pop() ?? '';
}

/**
 * Scrolls the focused terminal up a page at a time (Shift+PageUp, VS Code's binding) and returns
 * the `<word>-N` numbers of each page, checking each is consecutive and that the view moved.
 */
async function pagesUp(device: Device, word: string, pages: number): Promise<number[][]> {
  const workbench = device.workbench;
  const seen: number[][] = [];
  for (let page = 1; page <= pages; page++) {
    const before = await workbench.terminalText();
    await device.page.keyboard.press('Shift+PageUp');
    const text = await workbench.waitForTerminal((now) => now !== before, { what: `the view to move up (page ${page})`, timeout: 10_000 });
    const numbers = numbered(text, word);
    assert.ok(numbers.length >= 5, `page ${page} up shows ${word} rows; it showed:\n${text}`);
    assert.equal(breakIn(numbers, word), undefined, `page ${page} up: the ${word} rows are consecutive; it showed:\n${text}`);
    seen.push(numbers);
  }
  // Page after page the rows go back in time without a gap or a repeat: the pages are one run.
  const run = [...new Set(seen.flat())].sort((a, b) => a - b);
  assert.equal(breakIn(run, word), undefined, `${pages} pages up are one run of rows: ${describePages(seen)}`);
  return seen;
}

function describePages(pages: number[][]): string {
  return pages.map((numbers) => `${numbers[0]}–${numbers[numbers.length - 1]}`).join(', ');
}

/**
 * The terminal's whole buffer, scrollback and screen, the way a person gets it: Terminal: Select
 * All, Control+Shift+C (copy), and the clipboard's text.
 */
async function copyAll(device: Device): Promise<string> {
  type Clipboard = { navigator: { clipboard: { readText(): Promise<string>; writeText(text: string): Promise<void> } } };
  await device.page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(device.page.url()).origin });
  await device.page.evaluate(() => (globalThis as unknown as Clipboard).navigator.clipboard.writeText(''));
  await runTerminalCommand(device, 'Terminal: Select All');
  // The palette hides Copy Selection (it needs the terminal focused), but the palette gives focus
  // back to the terminal, where the key works; a click would clear the selection.
  await device.page.keyboard.press('Control+Shift+C');
  let text = '';
  await until(async () => (text = await device.page.evaluate(() => (globalThis as unknown as Clipboard).navigator.clipboard.readText())) !== '', 10_000, 'the copied text is on the clipboard');
  return text;
}

/**
 * Runs a terminal command from the palette and waits until the palette has closed: runCommand
 * presses Escape when it finds the palette still open, and an Escape that reaches the shell makes
 * readline take the next key as Meta+key (`yes` arrived as `es`).
 */
async function runTerminalCommand(device: Device, title: string): Promise<void> {
  await device.workbench.runCommand(title);
  await device.workbench.quickInput.waitFor({ state: 'hidden', timeout: 10_000 });
}

/** Samples the screen every 100 ms while a flood runs: what a person watching it saw. */
class ScreenSampler {
  readonly screens: number[][] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly device: Device,
    private readonly word: string,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const numbers = numbered(await this.device.workbench.terminalText().catch(() => ''), this.word);
      if (numbers.length > 0) this.screens.push(numbers);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

describe('Tether under a flood of output (code-server, packaged .vsix)', function () {
  this.timeout(300_000);
  let host: E2eHost;
  const hosts = E2eHost.forSuite((started) => (host = started));

  describe('scenario 20: a flood in a control-mode tab', () => {
    const scenario = Scenario.hooked('20-flood', hosts);
    let device: Device | undefined;
    let flooded = false;

    it('20: a burst of 12000 long lines floods the tab and ends with an exact append: the tab holds every row once, in order', async () => {
      device = await scenario.device({
        name: 'laptop',
        sshConfig: host.sshConfig(),
        // Room for every row the burst's append may add, and for the whole burst in VS Code's own
        // scrollback (1000 lines by default), so a copy of the tab shows any gap or repeat.
        settings: { 'tether.scrollback.replayLines': REPLAY_LINES, 'terminal.integrated.scrollback': REPLAY_LINES + 10_000 },
      });
      await openTetherTerminal(device, host.alias);
      const workbench = device.workbench;
      assert.equal(count(tetherLog(device), FLOOD_ENTERED), 0, 'no flood before any output');

      await workbench.typeLine(BURST_COMMAND);
      const screen = await workbench.waitForTerminal((text) => doneThenPrompt(text, 'burst'), { what: 'burst-done, then a prompt', timeout: 60_000 });
      await scenario.shot(device, 'burst done');
      const numbers = numbered(screen, 'burst');
      assert.equal(numbers[numbers.length - 1], BURST_LAST, `the last burst row is burst-${BURST_LAST}; the screen showed:\n${screen}`);
      assert.equal(breakIn(numbers, 'burst'), undefined, `the burst rows on the screen are consecutive; it showed:\n${screen}`);

      // The append is logged a moment after the resume (and the log is written a little behind).
      await until(() => count(tetherLog(device!), FLOOD_OVER) >= 1, 15_000, 'the Tether log says the burst was a flood, and how it ended');
      const log = tetherLog(device);
      const endings = log.match(FLOOD_OVER) ?? [];
      console.log(`      the burst: ${count(log, FLOOD_ENTERED)} flood(s); ${endings.join(' | ')}`);
      for (const ending of endings) assert.match(ending, /flood over; \d+ history rows appended/, 'the burst ends with an exact append');

      // Everything the tab holds: the whole burst, each row once and in order, across the point
      // where streaming stopped and the rows appended after it.
      const all = numbered(await copyAll(device), 'burst');
      assert.equal(breakIn(all, 'burst'), undefined, 'the burst rows in the whole tab are consecutive');
      assert.equal(all[0], 1, 'the tab holds the burst from its first row');
      assert.equal(all.length, BURST_LAST, `the tab holds each burst row once (${all.length} rows, burst-${all[0]} to burst-${all[all.length - 1]})`);
    });

    it('20b: two million lines end with flood-done and a prompt, the tab is live again at once, and the log says the screen was shown at display rate', async function () {
      if (!device) this.skip();
      const workbench = device.workbench;
      const floodsBefore = count(tetherLog(device), FLOOD_ENTERED);
      const calmsBefore = count(tetherLog(device), FLOOD_CALM);

      const sampler = new ScreenSampler(device, 'flood');
      const startedAt = Date.now();
      let screen: string;
      try {
        // Typing scrolls the view back to the bottom.
        await workbench.typeLine(FLOOD_COMMAND);
        screen = await workbench.waitForTerminal((text) => doneThenPrompt(text, 'flood'), { what: 'flood-done, then a prompt', timeout: 120_000 });
      } finally {
        await sampler.stop();
      }
      // 20c reads the scrollback even when a check below fails: a tab stuck painting looks live.
      flooded = true;
      const seconds = (Date.now() - startedAt) / 1000;
      await scenario.shot(device, 'flood done');
      // What a person saw meanwhile: a screen that kept moving, its rows in order.
      const distinct = new Set(sampler.screens.map((numbers) => numbers.join(','))).size;
      const jumbled = sampler.screens.filter((numbers) => breakInLive(numbers, 'flood'));
      console.log(
        `      flood-done and a prompt after ${seconds.toFixed(1)} s; ${sampler.screens.length} samples showed flood rows, ` +
          `${distinct} distinct screens, ${jumbled.length} with rows out of order${jumbled.length ? ` (first: ${breakInLive(jumbled[0], 'flood')})` : ''}`,
      );
      assert.ok(distinct >= 3, `the screen moved during the flood (${distinct} distinct screens in ${sampler.screens.length} samples)`);

      // The final screen ends with the flood's last rows, in order, right above flood-done.
      const numbers = numbered(screen, 'flood');
      assert.ok(numbers.length >= 5, `the last flood rows show above flood-done; the screen showed:\n${screen}`);
      assert.equal(numbers[numbers.length - 1], FLOOD_LAST, `the last flood row is flood-${FLOOD_LAST}; the screen showed:\n${screen}`);
      assert.equal(breakIn(numbers, 'flood'), undefined, `the flood rows on the final screen are consecutive; it showed:\n${screen}`);

      // The tab is live again: a command's output shows at once.
      const typedAt = Date.now();
      await workbench.typeLine('echo after-flood');
      await workbench.waitForTerminal(/^after-flood$/m, { what: 'after-flood right after the flood', timeout: 10_000 });
      console.log(`      after-flood shown ${Date.now() - typedAt} ms after typing began`);
      await scenario.shot(device, 'live after the flood');

      // The extension took the flood path (the log is written a little behind).
      await until(
        () => count(tetherLog(device!), FLOOD_ENTERED) > floodsBefore && count(tetherLog(device!), FLOOD_CALM) > calmsBefore,
        15_000,
        'the Tether log says the flood was shown at display rate, and that it ended',
      );
      const log = tetherLog(device);
      console.log(`      log: the flood was entered ${count(log, FLOOD_ENTERED) - floodsBefore} time(s), left ${count(log, FLOOD_CALM) - calmsBefore} time(s)`);
    });

    it('20c: scrolled back, the flood rows in the scrollback are consecutive', async function () {
      if (!device || !flooded) this.skip();
      const workbench = device.workbench;
      await workbench.focusTerminal();
      const pages = await pagesUp(device, 'flood', 3);
      await scenario.shot(device, 'flood scrolled back');
      assert.doesNotMatch(await workbench.terminalText(), /^after-flood$/m, 'the view left the bottom');
      const newest = Math.max(...pages.flat());
      assert.ok(newest > FLOOD_LAST - 100, `the pages show the flood's last rows, saw up to flood-${newest}`);

      // The whole tab: the flood's last rows, at least the replayed ones, in order and once each.
      const all = numbered(await copyAll(device), 'flood');
      assert.equal(breakIn(all, 'flood'), undefined, 'the flood rows in the whole tab are consecutive');
      assert.equal(all[all.length - 1], FLOOD_LAST, 'the tab ends with the flood’s last row');
      assert.ok(all.length >= REPLAY_LINES, `the tab holds at least the ${REPLAY_LINES} replayed rows, found ${all.length}`);
      console.log(`      flood pages up: ${describePages(pages)}; the tab holds flood-${all[0]} to flood-${all[all.length - 1]}`);
      await device.page.keyboard.press('Shift+End');
      await workbench.waitForTerminal(/^after-flood$/m, { what: 'the bottom again', timeout: 10_000 });
    });

    it('20d: keys work during a flood: Control+C stops `yes` and the next command runs', async function () {
      if (!device) this.skip();
      const workbench = device.workbench;
      const floodsBefore = count(tetherLog(device), FLOOD_ENTERED);
      await workbench.focusTerminal();
      await workbench.typeLine('yes flood-yes');
      await workbench.waitForTerminal(/^flood-yes$/m, { what: 'flood-yes', timeout: 15_000 });
      await device.page.waitForTimeout(2_000);
      await until(() => count(tetherLog(device!), FLOOD_ENTERED) > floodsBefore, 15_000, 'the Tether log says yes started a flood');
      await scenario.shot(device, 'yes flooding');
      // Still printing: the last row is flood-yes, or the part of it tmux has so far.
      const before = lastRow(await workbench.terminalText());
      assert.ok(before && 'flood-yes'.startsWith(before), `yes is still printing when Control+C is pressed; the last row is "${before}"`);

      const pressedAt = Date.now();
      await device.page.keyboard.press('Control+C');
      const screen = await workbench.waitForTerminal((text) => PROMPT.test(lastRow(text)), { what: 'the prompt after Control+C', timeout: 10_000 });
      console.log(`      prompt back ${Date.now() - pressedAt} ms after Control+C`);
      assert.match(screen, /^flood-yes/m, 'the screen still shows what yes printed, above the prompt');
      await scenario.shot(device, 'prompt after Control+C');

      await workbench.typeLine('echo after-yes');
      await workbench.waitForTerminal(/^after-yes$/m, { what: 'after-yes', timeout: 10_000 });
      await scenario.shot(device, 'after-yes');
    });
  });
});
