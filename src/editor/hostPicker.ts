import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseHostTarget } from '../ssh/sshConfig';
import { RECENT_HOSTS_KEY as RECENT_KEY, sshConfigOptions } from './sshHosts';
const MAX_RECENT = 10;

/** Quick pick of ssh config hosts and recent ones; also takes a typed user@host[:port]. */
export async function pickHost(context: vscode.ExtensionContext, configured: string[]): Promise<string | undefined> {
  const recent = context.globalState.get<string[]>(RECENT_KEY, []).filter((label) => typeof label === 'string');
  const picker = vscode.window.createQuickPick<vscode.QuickPickItem>();
  picker.title = 'Tether: New Persistent Terminal';
  picker.placeholder = 'Pick a host from ~/.ssh/config, or type user@host[:port]';
  const baseItems: vscode.QuickPickItem[] = [
    ...recent.map((label) => ({ label, description: 'recent' })),
    ...configured.filter((label) => !recent.includes(label)).map((label) => ({ label, description: 'ssh config' })),
  ];
  picker.items = baseItems;
  picker.onDidChangeValue((value) => {
    const typed = value.trim();
    if (!typed || baseItems.some((item) => item.label === typed)) {
      picker.items = baseItems;
      return;
    }
    let detail = 'connect to this host';
    try {
      parseHostTarget(typed);
    } catch (error) {
      detail = (error as Error).message;
    }
    picker.items = [{ label: typed, description: 'typed', detail, alwaysShow: true }, ...baseItems];
  });
  const choice = await new Promise<string | undefined>((resolve) => {
    picker.onDidAccept(() => resolve(picker.selectedItems[0]?.label ?? (picker.value.trim() || undefined)));
    picker.onDidHide(() => resolve(undefined));
    picker.show();
  });
  picker.dispose();
  if (!choice) return undefined;
  if (!configured.includes(choice)) {
    try {
      parseHostTarget(choice);
    } catch (error) {
      void vscode.window.showErrorMessage(`Tether: ${(error as Error).message}. Type user@host[:port], or pick a host from ~/.ssh/config.`);
      return undefined;
    }
  }
  await context.globalState.update(RECENT_KEY, [choice, ...recent.filter((label) => label !== choice)].slice(0, MAX_RECENT));
  return choice;
}

const NEW_CONFIG = `# SSH hosts for Tether (and ssh). One entry per host, for example:
#
# Host build-box
#   HostName build-box.example.org
#   User dev
#   IdentityFile ~/.ssh/id_ed25519
`;

/**
 * Opens the ~/.ssh/config that Tether reads (on the side where Tether runs). Only when asked to,
 * creates a missing one, commented out, with OpenSSH's modes (700 folder, 600 file).
 */
export async function openSshConfig(): Promise<void> {
  const { configPath } = sshConfigOptions();
  try {
    if (!fs.existsSync(configPath)) {
      fs.mkdirSync(path.dirname(configPath), { recursive: true, mode: 0o700 });
      fs.writeFileSync(configPath, NEW_CONFIG, { mode: 0o600, flag: 'wx' });
    }
    await vscode.window.showTextDocument(vscode.Uri.file(configPath));
  } catch (error) {
    void vscode.window.showErrorMessage(`Tether: cannot open ${configPath}: ${(error as Error).message}. Check that the folder is yours and writable, or create the file by hand.`);
  }
}
