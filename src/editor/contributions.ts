/**
 * Everything Tether contributes to VS Code, as typed tables (in the style of vscode-js-debug's
 * contributionUtils.ts): command IDs with their argument types, settings with their defaults,
 * context keys, views, the terminal profile and tree item context values. package.json declares
 * the same things; test/unit/editor/contributions.test.ts checks the two against each other both
 * ways. Defaults are stated here once; code reads settings through `readSetting` (contributionApi.ts).
 *
 * No runtime vscode import (types only), so the test runs under plain mocha.
 */
import type * as vscode from 'vscode';
import type { MultiplexerPreference } from '../multiplexer/multiplexer';
import type { DeviceGroup, LiveSession } from '../sync/liveSessions';
import type { HostSessionRow } from './hostSessionText';

export const Commands = {
  NewTerminal: 'tether.newTerminal',
  DetachTerminal: 'tether.detachTerminal',
  ShowLog: 'tether.showLog',
  SetUpSync: 'tether.setUpSync',
  ShowSyncKey: 'tether.showSyncKey',
  SignOutSync: 'tether.signOutSync',
  KillSession: 'tether.killSession',
  RenameSession: 'tether.renameSession',
  JoinSession: 'tether.joinSession',
  RefreshHosts: 'tether.refreshHosts',
  NewTerminalOnHost: 'tether.newTerminalOnHost',
  JoinHostSession: 'tether.joinHostSession',
  KillHostSession: 'tether.killHostSession',
  ForgetDevice: 'tether.forgetDevice',
  ReportProblem: 'tether.reportProblem',
  OpenSshConfig: 'tether.openSshConfig',
} as const;
export type CommandId = (typeof Commands)[keyof typeof Commands];

/** A Hosts view node as VS Code passes it to a row's action (hostsView.ts). */
export interface HostNodeArg {
  readonly host?: string;
  readonly row?: HostSessionRow;
}
/** A "Live on other devices" session node (liveSessionsView.ts); a row's own click passes the session itself. */
export interface LiveSessionNodeArg {
  readonly session: LiveSession;
}
/** A "Live on other devices" device node (liveSessionsView.ts). */
export interface DeviceNodeArg {
  readonly group: Pick<DeviceGroup, 'slotId'>;
}
/** `tether.newTerminal`'s argument, for other extensions, command links and tests. */
export interface NewTerminalArgs {
  readonly host?: string;
  readonly cwd?: string;
}

/**
 * Each command's arguments. They come from VS Code (a tree node, a terminal), from command links or
 * from other extensions, so handlers still check what they get at runtime; these are what we pass.
 */
export interface CommandArgs {
  [Commands.NewTerminal]: [args?: NewTerminalArgs];
  [Commands.DetachTerminal]: [];
  [Commands.ShowLog]: [];
  [Commands.SetUpSync]: [];
  [Commands.ShowSyncKey]: [];
  [Commands.SignOutSync]: [];
  [Commands.KillSession]: [target?: HostNodeArg | LiveSessionNodeArg | LiveSession];
  /** From the tab's context menu VS Code may pass the terminal; from the palette, nothing. */
  [Commands.RenameSession]: [terminal?: vscode.Terminal];
  [Commands.JoinSession]: [target?: LiveSessionNodeArg | LiveSession];
  [Commands.RefreshHosts]: [];
  [Commands.NewTerminalOnHost]: [node?: HostNodeArg];
  [Commands.JoinHostSession]: [node?: HostNodeArg];
  [Commands.KillHostSession]: [node?: HostNodeArg];
  [Commands.ForgetDevice]: [node?: DeviceNodeArg];
  [Commands.ReportProblem]: [];
  [Commands.OpenSshConfig]: [];
}

/** A setting's default and, for a string with fixed choices, its choices (package.json `enum`). */
export interface SettingSpec<T> {
  readonly default: T;
  readonly values?: readonly T[];
}
const spec = <T>(fallback: T, values?: readonly T[]): SettingSpec<T> => (values ? { default: fallback, values } : { default: fallback });

export type TmuxMode = 'control' | 'attach';
export type TerminalLocationSetting = 'panel' | 'editor';

/** Every `contributes.configuration` property with its default (the one place defaults are stated). */
export const Settings = {
  'tether.multiplexer': spec<MultiplexerPreference>('auto', ['auto', 'tmux', 'screen', 'none']),
  'tether.historyLimit': spec(50_000),
  'tether.restoreOnStartup': spec(true),
  'tether.scrollback.replayLines': spec(2000),
  'tether.keepaliveInterval': spec(5000),
  'tether.forwardAgent': spec(false),
  'tether.sync.serverUrl': spec(''),
  'tether.deviceName': spec(''),
  'tether.crossDeviceSessions': spec(true),
  'tether.sync.staleDeviceDays': spec(30),
  'tether.terminalLocation': spec<TerminalLocationSetting>('panel', ['panel', 'editor']),
  'tether.tmux.mode': spec<TmuxMode>('control', ['control', 'attach']),
} as const;
export type SettingKey = keyof typeof Settings;
export type SettingValue<K extends SettingKey> = (typeof Settings)[K]['default'];
/** All settings live under this section. */
export const SETTINGS_SECTION = 'tether';

/** Context keys Tether sets (`setContext`) for package.json `when` clauses. */
export const ContextKeys = {
  /** The active terminal is a Tether tab (Rename Session in the tab's context menu). */
  ActiveTerminalIsTether: 'tether.activeTerminalIsTether',
  /** Sync is set up on this device (a key and a server URL), whether or not it runs. */
  SyncConfigured: 'tether.syncConfigured',
  /** tether.crossDeviceSessions is off. */
  CrossDeviceOptedOut: 'tether.crossDeviceOptedOut',
} as const;
export type ContextKey = (typeof ContextKeys)[keyof typeof ContextKeys];
export interface ContextKeyTypes {
  [ContextKeys.ActiveTerminalIsTether]: boolean;
  [ContextKeys.SyncConfigured]: boolean;
  [ContextKeys.CrossDeviceOptedOut]: boolean;
}

export const Views = {
  LiveSessions: 'tether.liveSessions',
  Hosts: 'tether.hosts',
} as const;

export const TerminalProfiles = {
  Ssh: 'tether.sshProfile',
} as const;

/** Tree item context values (`viewItem` in package.json menus). */
export const ViewItems = {
  Host: 'tether.host',
  HostSession: 'tether.hostSession',
  OrphanSession: 'tether.orphanSession',
  Device: 'tether.device',
  StaleDevice: 'tether.staleDevice',
  ThisDevice: 'tether.thisDevice',
  LiveSession: 'tether.liveSession',
  LocalSession: 'tether.localSession',
} as const;
