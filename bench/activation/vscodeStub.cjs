/*
 * STUB of the `vscode` module, for the activation benchmark ONLY. It is not VS Code: every API
 * object is inert (registrations return disposables, events never fire, settings return their
 * defaults, storage is empty). What the benchmark measures with it is the extension's own cost:
 * loading the bundle and running activate() against API objects that do nothing.
 */
'use strict';
const os = require('node:os');
const path = require('node:path');

const disposable = () => ({ dispose() {} });
const event = () => disposable();
const noop = () => undefined;

/** Anything not listed below: a callable, constructible object that returns itself (never a thenable). */
const inert = new Proxy(function inertApi() {}, {
  get: (_target, prop) => (prop === 'then' ? undefined : prop === Symbol.toPrimitive ? () => '' : inert),
  apply: () => inert,
  construct: () => inert,
});
const withFallback = (object) =>
  new Proxy(object, { get: (target, prop) => (prop in target ? target[prop] : prop === 'then' ? undefined : inert) });

class EventEmitter {
  constructor() {
    this.event = () => disposable();
  }
  fire() {}
  dispose() {}
}
class Disposable {
  constructor(callOnDispose) {
    this.callOnDispose = callOnDispose;
  }
  static from() {
    return disposable();
  }
  dispose() {
    if (this.callOnDispose) this.callOnDispose();
  }
}
class TreeItem {
  constructor(label, collapsibleState) {
    this.label = label;
    this.collapsibleState = collapsibleState;
  }
}
class ThemeIcon {
  constructor(id, color) {
    this.id = id;
    this.color = color;
  }
}
class ThemeColor {
  constructor(id) {
    this.id = id;
  }
}
class MarkdownString {
  constructor(value = '') {
    this.value = value;
  }
  appendMarkdown(text) {
    this.value += text;
    return this;
  }
  appendText(text) {
    this.value += text;
    return this;
  }
}
const logChannel = () =>
  withFallback({ name: 'Tether', logLevel: 2, onDidChangeLogLevel: event, trace: noop, debug: noop, info: noop, warn: noop, error: noop, append: noop, appendLine: noop, replace: noop, clear: noop, show: noop, hide: noop, dispose: noop });
const statusBarItem = () => withFallback({ text: '', tooltip: undefined, command: undefined, show: noop, hide: noop, dispose: noop });

module.exports = withFallback({
  version: '1.90.0-stub',
  EventEmitter,
  Disposable,
  TreeItem,
  ThemeIcon,
  ThemeColor,
  MarkdownString,
  TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  TerminalLocation: { Panel: 1, Editor: 2 },
  TerminalExitReason: { Unknown: 0, Shutdown: 1, Process: 2, User: 3, Extension: 4 },
  Uri: { file: (fsPath) => ({ fsPath, path: fsPath, scheme: 'file', toString: () => `file://${fsPath}` }) },
  window: withFallback({
    terminals: [],
    activeTerminal: undefined,
    createOutputChannel: logChannel,
    createStatusBarItem: statusBarItem,
    registerTerminalProfileProvider: disposable,
    registerTreeDataProvider: disposable,
    createTreeView: () => withFallback({ dispose: noop, onDidChangeVisibility: event }),
    onDidOpenTerminal: event,
    onDidCloseTerminal: event,
    onDidChangeActiveTerminal: event,
    onDidChangeTerminalState: event,
    showInformationMessage: async () => undefined,
    showWarningMessage: async () => undefined,
    showErrorMessage: async () => undefined,
  }),
  commands: withFallback({ registerCommand: disposable, executeCommand: async () => undefined }),
  workspace: withFallback({
    getConfiguration: () => withFallback({ get: (_key, fallback) => fallback, has: () => false, inspect: () => undefined, update: async () => undefined }),
    onDidChangeConfiguration: event,
    // A window without a folder (syncController's windowIdentity reads these).
    workspaceFile: undefined,
    workspaceFolders: undefined,
    name: undefined,
  }),
  env: withFallback({ machineId: 'stub-machine', appName: 'stub', clipboard: { readText: async () => '', writeText: async () => undefined } }),
});

/** An inert ExtensionContext with empty state and a private storage folder. */
module.exports.__stubContext = (storageDir) => {
  const memento = () => withFallback({ get: (_key, fallback) => fallback, update: async () => undefined, keys: () => [], setKeysForSync: noop });
  return withFallback({
    subscriptions: [],
    globalState: memento(),
    workspaceState: memento(),
    secrets: withFallback({ get: async () => undefined, store: async () => undefined, delete: async () => undefined, onDidChange: event }),
    globalStorageUri: { fsPath: path.join(storageDir, 'global'), path: path.join(storageDir, 'global'), scheme: 'file' },
    storageUri: { fsPath: path.join(storageDir, 'workspace'), path: path.join(storageDir, 'workspace'), scheme: 'file' },
    logUri: { fsPath: path.join(storageDir, 'log'), path: path.join(storageDir, 'log'), scheme: 'file' },
    extensionUri: { fsPath: storageDir, path: storageDir, scheme: 'file' },
    extensionPath: storageDir,
    extensionMode: 1,
    environmentVariableCollection: inert,
  });
};
void os;
