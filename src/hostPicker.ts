import * as vscode from 'vscode';
import { parseHostTarget } from './terminal/sshConfig';

const RECENT_KEY = 'tether.recentHosts';
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
      void vscode.window.showErrorMessage(`Tether: ${(error as Error).message}`);
      return undefined;
    }
  }
  await context.globalState.update(RECENT_KEY, [choice, ...recent.filter((label) => label !== choice)].slice(0, MAX_RECENT));
  return choice;
}
