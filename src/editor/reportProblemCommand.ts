/**
 * "Tether: Report a Problem…": gathers what a bug report needs from the editor and the hosts this
 * window already talks to, builds the block (problemReport.ts redacts it) and copies it.
 */
import * as os from 'node:os';
import * as vscode from 'vscode';
import { hostCapabilities } from '../multiplexer/hostCapabilities';
import { formatVersion } from '../multiplexer/multiplexer';
import type { ConnectionPool } from '../ssh/sshConnection';
import type { TabManager } from './tabManager';
import type { SshHosts } from './sshHosts';
import { Commands } from './contributions';
import { readSetting, registerCommand } from './contributionApi';
import type { TetherSync } from './syncController';
import { ProblemReportInput, REPORT_LOG_LINES, ReportHost, buildProblemReport } from './problemReport';

/** A host's capabilities are asked for only on a connection that is already open, and not for long. */
const CAPABILITY_WAIT_MS = 5_000;

/** What a report reads; activate() passes the services it built. */
export interface ReportServices {
  readonly tabs: TabManager;
  readonly hosts: SshHosts;
  readonly pool: ConnectionPool;
  readonly sync: TetherSync;
  readonly log: vscode.LogOutputChannel;
}

export function registerReportProblem(context: vscode.ExtensionContext, services: ReportServices): void {
  context.subscriptions.push(
    registerCommand(Commands.ReportProblem, async () => {
      const report = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Tether: gathering a problem report' }, () =>
        problemReport(context, services),
      );
      await vscode.env.clipboard.writeText(report);
      const choice = await vscode.window.showInformationMessage(
        'Tether: a problem report is on the clipboard, with secrets, host keys and user names redacted. Read it before you share it, then paste it into your bug report.',
        'Open Report',
      );
      if (choice === 'Open Report') await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ content: report, language: 'markdown' }));
    }),
  );
}

async function problemReport(context: vscode.ExtensionContext, { tabs, hosts: sshHosts, pool, sync, log }: ReportServices): Promise<string> {
  const userNames = new Set<string>();
  try {
    userNames.add(os.userInfo().username);
  } catch {
    if (process.env.USER) userNames.add(process.env.USER);
  }
  // The users of every configured host, so a log line about any of them is redacted too.
  for (const label of sshHosts.configuredHosts().slice(0, 100)) {
    try {
      userNames.add(sshHosts.resolve(label).user);
    } catch {
      /* an entry that does not resolve names no user */
    }
  }
  // The active tab's host first, then the other hosts this window has tabs on.
  const active = tabs.tabFor(vscode.window.activeTerminal);
  const records = [...tabs.records()].sort((a, b) => Number(b.id === active?.id) - Number(a.id === active?.id));
  const seen = new Set<string>();
  const hosts: ReportHost[] = [];
  for (const record of records) {
    if (seen.has(record.hostLabel)) continue;
    seen.add(record.hostLabel);
    userNames.add(record.user);
    hosts.push(await describeHost(record.hostLabel, sshHosts, pool));
  }
  const serverUrl = readSetting('tether.sync.serverUrl').trim();
  const input: ProblemReportInput = {
    tetherVersion: String(context.extension.packageJSON.version ?? 'unknown'),
    vscodeVersion: vscode.version,
    appName: vscode.env.appName,
    uiKind: vscode.env.uiKind === vscode.UIKind.Web ? 'web' : 'desktop',
    remoteName: vscode.env.remoteName,
    extensionSide: context.extension.extensionKind === vscode.ExtensionKind.UI ? 'local (ui)' : 'remote (workspace)',
    nodeVersion: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    tmuxMode: readSetting('tether.tmux.mode'),
    multiplexer: readSetting('tether.multiplexer'),
    syncMode: `${!serverUrl ? 'no server set' : serverUrl.startsWith('ssh://') ? 'through an SSH host' : 'through a sync server'}, ${sync.state.state}`,
    hosts,
    logLines: await lastLogLines(context, log),
    userNames: [...userNames],
  };
  return buildProblemReport(input);
}

async function describeHost(label: string, sshHosts: SshHosts, pool: ConnectionPool): Promise<ReportHost> {
  try {
    const host = sshHosts.resolve(label);
    const connection = pool.peek(host);
    if (!connection) return { label, connected: false, note: 'not asked (no open connection)' };
    // Cached per host after the first tab there; on an open connection at worst one short script.
    const capabilities = await Promise.race([
      hostCapabilities(connection, CAPABILITY_WAIT_MS),
      new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`no answer within ${CAPABILITY_WAIT_MS / 1000} s`)), CAPABILITY_WAIT_MS)),
    ]);
    return {
      label,
      connected: true,
      os: capabilities.os,
      tmux: capabilities.tmux ? formatVersion(capabilities.tmux) : '',
      screen: capabilities.screen ? formatVersion(capabilities.screen) : '',
    };
  } catch (error) {
    return { label, connected: false, note: `not known: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** The tail of the Tether log file (the output channel's own file, in the extension's log folder). */
async function lastLogLines(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): Promise<string[]> {
  try {
    const entries = await vscode.workspace.fs.readDirectory(context.logUri);
    const file = entries.find(([name, type]) => type === vscode.FileType.File && name === `${log.name}.log`) ?? entries.find(([name, type]) => type === vscode.FileType.File && name.endsWith('.log'));
    if (!file) return [`(no log file in ${context.logUri.path})`];
    const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(context.logUri, file[0])));
    return text.split(/\r?\n/).filter((line) => line.length > 0).slice(-REPORT_LOG_LINES);
  } catch (error) {
    return [`(the log could not be read: ${error instanceof Error ? error.message : String(error)})`];
  }
}
