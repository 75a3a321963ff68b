/**
 * A FAKE of the parts of the `vscode` module that src/editor/syncController.ts and
 * src/editor/syncStatusBar.ts use, so the thin layer runs under plain mocha. Each fake "window"
 * (one FakeEditor) has its own settings, secrets, globalState and scripted answers to prompts.
 * `installFakeVscode()` makes `require('vscode')` resolve to this file.
 */
import Module from 'node:module';

type Listener<T> = (value: T) => void;

export class EventEmitter<T> {
  private listeners = new Set<Listener<T>>();
  readonly event = (listener: Listener<T>): { dispose(): void } => {
    const entry = (value: T): void => listener(value);
    this.listeners.add(entry);
    return { dispose: () => void this.listeners.delete(entry) };
  };
  fire(value: T): void {
    for (const listener of [...this.listeners]) listener(value);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}

export interface FakeStatusBarItem {
  id: string;
  name?: string;
  text: string;
  tooltip?: string;
  command?: string;
  backgroundColor?: ThemeColor;
  visible: boolean;
}

/** A scripted answer for the next prompt of a kind; a function sees the prompt's options. */
type Answer = unknown | ((...args: unknown[]) => unknown);

/** One editor window with its own state. The module-level API below forwards to `current`. */
export class FakeEditor {
  readonly settings = new Map<string, unknown>();
  readonly secrets = new Map<string, string>();
  readonly globalState = new Map<string, unknown>();
  readonly commands = new Map<string, (...args: unknown[]) => unknown>();
  readonly statusBarItems: FakeStatusBarItem[] = [];
  readonly messages: Array<{ kind: string; message: string; detail?: string }> = [];
  readonly answers: Record<'quickPick' | 'inputBox' | 'info' | 'warning', Answer[]> = { quickPick: [], inputBox: [], info: [], warning: [] };
  readonly configEmitter = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();
  readonly secretsEmitter = new EventEmitter<{ key: string }>();
  clipboard = '';
  subscriptions: Array<{ dispose(): unknown }> = [];

  constructor(readonly globalStoragePath: string) {}

  context(): unknown {
    return {
      subscriptions: this.subscriptions,
      globalStorageUri: { fsPath: this.globalStoragePath },
      globalState: {
        get: (key: string, fallback?: unknown) => (this.globalState.has(key) ? this.globalState.get(key) : fallback),
        update: async (key: string, value: unknown) => void this.globalState.set(key, value),
        keys: () => [...this.globalState.keys()],
      },
      secrets: {
        get: async (key: string) => this.secrets.get(key),
        store: async (key: string, value: string) => {
          this.secrets.set(key, value);
          this.secretsEmitter.fire({ key });
        },
        delete: async (key: string) => {
          this.secrets.delete(key);
          this.secretsEmitter.fire({ key });
        },
        onDidChange: this.secretsEmitter.event,
      },
    };
  }

  answer(kind: keyof FakeEditor['answers'], ...args: unknown[]): unknown {
    const next = this.answers[kind].shift();
    return typeof next === 'function' ? (next as (...a: unknown[]) => unknown)(...args) : next;
  }

  async dispose(): Promise<void> {
    for (const subscription of this.subscriptions.splice(0).reverse()) await subscription.dispose();
  }
}

let current: FakeEditor | undefined;

/** Runs `fn` with `editor` as the window that the module-level API talks to. */
export function useEditor(editor: FakeEditor): void {
  current = editor;
}

function editor(): FakeEditor {
  if (!current) throw new Error('fake vscode: no editor selected; call useEditor()');
  return current;
}

export const window = {
  createStatusBarItem(id: string): FakeStatusBarItem & { show(): void; hide(): void; dispose(): void } {
    const owner = editor();
    const item = {
      id,
      text: '',
      visible: false,
      show: () => void (item.visible = true),
      hide: () => void (item.visible = false),
      dispose: () => void owner.statusBarItems.splice(owner.statusBarItems.indexOf(item), 1),
    };
    owner.statusBarItems.push(item);
    return item;
  },
  showQuickPick: async (items: unknown[]) => editor().answer('quickPick', items),
  showInputBox: async (options: { validateInput?: (text: string) => string | undefined }) => {
    const value = editor().answer('inputBox', options);
    // Like the real input box: an answer that fails validation cannot be accepted.
    if (typeof value === 'string' && options.validateInput?.(value)) throw new Error(`fake vscode: input ${JSON.stringify(value)} fails validation: ${options.validateInput(value)}`);
    return value;
  },
  showInformationMessage: async (message: string, ...rest: unknown[]) => {
    const options = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { detail?: string }) : undefined;
    editor().messages.push({ kind: 'info', message, ...(options?.detail ? { detail: options.detail } : {}) });
    return editor().answer('info', message, ...rest);
  },
  showWarningMessage: async (message: string, ...rest: unknown[]) => {
    editor().messages.push({ kind: 'warning', message });
    return editor().answer('warning', message, ...rest);
  },
};

export const workspace = {
  getConfiguration(section: string) {
    const owner = editor();
    return {
      get: <T>(key: string, fallback: T): T => {
        const full = `${section}.${key}`;
        return (owner.settings.has(full) ? owner.settings.get(full) : fallback) as T;
      },
      update: async (key: string, value: unknown) => {
        const full = `${section}.${key}`;
        owner.settings.set(full, value);
        owner.configEmitter.fire({ affectsConfiguration: (s: string) => full === s || full.startsWith(`${s}.`) });
      },
    };
  },
  onDidChangeConfiguration: (listener: Listener<{ affectsConfiguration(section: string): boolean }>) => editor().configEmitter.event(listener),
};

export const commands = {
  registerCommand(id: string, handler: (...args: unknown[]) => unknown) {
    const owner = editor();
    owner.commands.set(id, handler);
    return { dispose: () => void owner.commands.delete(id) };
  },
  executeCommand: async (id: string, ...args: unknown[]) => {
    const handler = editor().commands.get(id);
    if (!handler) throw new Error(`fake vscode: command ${id} is not registered`);
    return handler(...args);
  },
};

export const env = {
  clipboard: {
    writeText: async (text: string) => void (editor().clipboard = text),
    readText: async () => editor().clipboard,
  },
};

/** Makes `require('vscode')` return this module (idempotent). */
export function installFakeVscode(): void {
  const moduleWithResolve = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string; __tetherFakeVscode?: boolean };
  if (moduleWithResolve.__tetherFakeVscode) return;
  moduleWithResolve.__tetherFakeVscode = true;
  const original = moduleWithResolve._resolveFilename;
  moduleWithResolve._resolveFilename = function (request: string, ...rest: unknown[]): string {
    return original.call(this, request === 'vscode' ? __filename : request, ...rest);
  };
}
