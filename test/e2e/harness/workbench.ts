/**
 * Using the VS Code workbench the way a person does: the command palette (F1), quick picks,
 * the terminal panel (read from the DOM renderer's .xterm-rows), tree views and the status bar.
 */
import type { Locator, Page } from 'playwright-core';

/** The little of the DOM that page.evaluate callbacks use (the project's tsconfig has no DOM lib). */
interface DomElement {
  readonly offsetParent: unknown;
  readonly children: ArrayLike<DomElement>;
  readonly textContent: string | null;
}
/** Cast inside page.evaluate callbacks (they run in the page, so they may not call our helpers). */
type DomGlobal = { document: { querySelectorAll(selector: string): ArrayLike<DomElement> } };

export class Workbench {
  constructor(readonly page: Page) {}

  async waitReady(): Promise<void> {
    await this.page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
    await this.page.locator('.part.statusbar').waitFor({ state: 'visible', timeout: 60_000 });
    // The workbench takes input once the editor area is laid out.
    await this.page.locator('.part.editor').waitFor({ state: 'visible', timeout: 60_000 });
  }

  get quickInput(): Locator {
    return this.page.locator('.quick-input-widget');
  }

  /**
   * F1, type the command's title, Enter on the matching entry. Right after the workbench appears
   * the palette may not list extension commands yet, so it tries again for up to a minute.
   */
  async runCommand(title: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      await this.dismissQuickInput();
      await this.page.keyboard.press('F1');
      const input = this.quickInput.locator('input');
      await input.waitFor({ state: 'visible' });
      await this.page.keyboard.type(title, { delay: 5 });
      const row = this.quickInput.locator('.monaco-list-row.focused', { hasText: title }).first();
      try {
        await row.waitFor({ state: 'visible', timeout: 10_000 });
        await this.page.keyboard.press('Enter');
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await this.page.keyboard.press('Escape');
      }
    }
  }

  /** Waits for a quick pick (optionally with a title), enters `text` and accepts the row labelled so. */
  async pick(text: string, options: { title?: string } = {}): Promise<void> {
    await this.quickInput.waitFor({ state: 'visible' });
    if (options.title) await this.quickInput.locator('.quick-input-title', { hasText: options.title }).waitFor({ state: 'visible' });
    const input = this.quickInput.locator('input');
    await input.fill(text);
    await this.quickInput.locator('.monaco-list-row.focused .label-name', { hasText: text }).first().waitFor({ state: 'visible' });
    const value = await input.inputValue();
    if (value !== text) throw new Error(`quick pick input holds "${value}", expected "${text}"`);
    await this.page.keyboard.press('Enter');
  }

  /**
   * Answers an input box (showInputBox) with the given title: replaces its text, as a paste
   * does, and presses Enter. Waits until the box takes the answer (its validation passes).
   */
  async answerInput(text: string, options: { title: string }): Promise<void> {
    await this.quickInput.locator('.quick-input-title', { hasText: options.title }).waitFor({ state: 'visible' });
    const input = this.quickInput.locator('input');
    await input.click();
    await this.page.keyboard.press('Control+A');
    await this.page.keyboard.insertText(text);
    const value = await input.inputValue();
    if (value !== text) throw new Error(`input box "${options.title}" holds "${value}", expected "${text}"`);
    await this.page.keyboard.press('Enter');
    await this.quickInput.locator('.quick-input-title', { hasText: options.title }).waitFor({ state: 'hidden' });
  }

  /** The open modal dialog: its message and detail text. */
  async dialogText(): Promise<{ message: string; detail: string }> {
    const dialog = this.page.locator('.monaco-dialog-box');
    await dialog.waitFor({ state: 'visible' });
    const message = (await dialog.locator('.dialog-message-text').first().textContent()) ?? '';
    const detail = (await dialog.locator('.dialog-message-detail').first().textContent().catch(() => '')) ?? '';
    return { message, detail };
  }

  /** Clicks a button of the open modal dialog. */
  async dialogButton(label: string): Promise<void> {
    const dialog = this.page.locator('.monaco-dialog-box');
    await dialog.locator('.dialog-buttons a.monaco-button, .dialog-buttons .monaco-button', { hasText: label }).first().click();
    await dialog.waitFor({ state: 'hidden' });
  }

  /** Opens a view container from the activity bar by its title (e.g. "Tether"). */
  async openActivity(title: string): Promise<void> {
    const item = this.page.locator(`.part.activitybar .action-item a[aria-label^="${title}"], .part.activitybar .action-item .action-label[aria-label^="${title}"]`).first();
    await item.click();
  }

  /** A view pane in the side bar, by its title (e.g. "Live on other devices"). */
  viewPane(title: string): Locator {
    return this.page.locator('.part.sidebar .pane').filter({ has: this.page.locator('.pane-header', { hasText: title }) });
  }

  async dismissQuickInput(): Promise<void> {
    if (await this.quickInput.isVisible()) await this.page.keyboard.press('Escape');
  }

  /** The visible terminal's screen, row by row (DOM renderer). */
  async terminalText(): Promise<string> {
    return this.page.evaluate(() => {
      const screens = Array.from((globalThis as unknown as DomGlobal).document.querySelectorAll('.xterm-rows')).filter((element) => element.offsetParent !== null);
      return screens
        .map((screen) => Array.from(screen.children).map((row) => (row.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd()).join('\n'))
        .join('\n');
    });
  }

  /** Polls the visible terminal until `test` accepts its text; returns that text. */
  async waitForTerminal(test: RegExp | ((text: string) => boolean), options: { timeout?: number; what?: string } = {}): Promise<string> {
    const check = typeof test === 'function' ? test : (text: string) => test.test(text);
    const deadline = Date.now() + (options.timeout ?? 60_000);
    let text = '';
    while (Date.now() < deadline) {
      text = await this.terminalText().catch(() => '');
      if (check(text)) return text;
      await this.page.waitForTimeout(200);
    }
    throw new Error(`timed out waiting for ${options.what ?? String(test)} in the terminal; it showed:\n${text}`);
  }

  /**
   * Records every line the visible terminal shows, sampled every 100 ms, so a line that scrolls
   * away or a tab that closes right after printing is still seen.
   */
  recordTerminal(): TerminalRecorder {
    return new TerminalRecorder(this);
  }

  /** Clicks into the visible terminal so that keys go to it. */
  async focusTerminal(): Promise<void> {
    const screen = this.page.locator('.terminal-wrapper.active .xterm-screen, .xterm-screen').filter({ visible: true }).first();
    await screen.click();
  }

  /** Types text into the focused terminal and presses Enter. */
  async typeLine(text: string): Promise<void> {
    await this.page.keyboard.type(text, { delay: 10 });
    await this.page.keyboard.press('Enter');
  }

  /** Names of the terminals in the panel's tab list (empty when the panel shows a single one without tabs). */
  async terminalCount(): Promise<number> {
    return this.page.evaluate(() => (globalThis as unknown as DomGlobal).document.querySelectorAll('.terminal-wrapper').length);
  }

  /** Text of the notification toasts currently shown. */
  async notifications(): Promise<string[]> {
    return this.page.locator('.notification-toast .notification-list-item-message').allInnerTexts();
  }

  statusBarItem(text: string | RegExp): Locator {
    return this.page.locator('.part.statusbar .statusbar-item').filter({ hasText: text });
  }

  /** A row of a tree view, by its visible text. */
  treeRow(view: Locator, text: string | RegExp): Locator {
    return view.locator('.monaco-list-row').filter({ hasText: text });
  }
}

export class TerminalRecorder {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly workbench: Workbench) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const text = await this.workbench.terminalText().catch(() => '');
      for (const line of text.split('\n')) {
        const trimmed = line.trim();
        if (trimmed && !this.seen.has(trimmed)) {
          this.seen.add(trimmed);
          this.order.push(trimmed);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  lines(): string[] {
    return [...this.order];
  }

  has(test: RegExp): boolean {
    return this.order.some((line) => test.test(line));
  }

  async waitFor(test: RegExp, timeoutMs: number, what: string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const line = this.order.find((candidate) => test.test(candidate));
      if (line) return line;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out waiting for ${what}; the terminal showed:\n${this.order.slice(-40).join('\n')}`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
