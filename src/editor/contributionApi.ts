/**
 * The typed way to use contributions.ts's tables: commands by ID with their argument types, settings
 * with their one default, context keys. Nothing in src/editor names a command, setting or context
 * key by a plain string.
 */
import * as os from 'node:os';
import * as vscode from 'vscode';
import { type CommandArgs, type CommandId, type ContextKey, type ContextKeyTypes, SETTINGS_SECTION, type SettingKey, Settings, type SettingValue } from './contributions';

/** Registers a Tether command; the handler gets the command's declared argument types. */
export function registerCommand<K extends CommandId>(id: K, handler: (...args: CommandArgs[K]) => unknown): vscode.Disposable {
  return vscode.commands.registerCommand(id, handler as (...args: unknown[]) => unknown);
}

/** Runs a Tether command with its declared arguments. */
export function executeCommand<K extends CommandId>(id: K, ...args: CommandArgs[K]): Thenable<unknown> {
  return vscode.commands.executeCommand(id, ...args);
}

/** A tree item's or a message link's command, typed like `executeCommand`. */
export function asCommand<K extends CommandId>(command: { command: K; title: string; arguments: CommandArgs[K] }): vscode.Command {
  return command;
}

const localKey = (key: SettingKey): string => key.slice(SETTINGS_SECTION.length + 1);

/** A setting's value, or its default from contributions.ts. */
export function readSetting<K extends SettingKey>(key: K): SettingValue<K> {
  return vscode.workspace.getConfiguration(SETTINGS_SECTION).get<SettingValue<K>>(localKey(key), Settings[key].default as SettingValue<K>);
}

/** Writes a setting (user settings unless told otherwise). */
export function writeSetting<K extends SettingKey>(key: K, value: SettingValue<K>, target: vscode.ConfigurationTarget = vscode.ConfigurationTarget.Global): Thenable<void> {
  return vscode.workspace.getConfiguration(SETTINGS_SECTION).update(localKey(key), value, target);
}

/** This device's name as other devices see it: tether.deviceName, else the machine's host name. */
export function deviceName(): string {
  return readSetting('tether.deviceName').trim() || os.hostname();
}

/** Whether a configuration change touches any of these settings. */
export function affectsSetting(event: vscode.ConfigurationChangeEvent, ...keys: SettingKey[]): boolean {
  return keys.some((key) => event.affectsConfiguration(key));
}

/** Sets a context key for package.json `when` clauses. */
export function setContext<K extends ContextKey>(key: K, value: ContextKeyTypes[K]): Thenable<unknown> {
  return vscode.commands.executeCommand('setContext', key, value);
}
