import * as vscode from 'vscode';
import type { AuthPrompter } from '../ssh/auth';
import type { HostKeyPromptInfo } from '../ssh/hostKeyVerifier';

/**
 * Asks the user for SSH secrets, and keeps them only in SecretStorage when the user agrees.
 * Nothing here is ever logged.
 */
export class VscodePrompter implements AuthPrompter {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  async keyPassphrase(keyPath: string, attempt: number): Promise<string | undefined> {
    const key = `tether.passphrase:${keyPath}`;
    if (attempt === 1) {
      const stored = await this.secrets.get(key);
      if (stored !== undefined) return stored;
    } else {
      await this.secrets.delete(key); // The stored one no longer works.
    }
    return vscode.window.showInputBox({
      title: 'Tether: SSH key passphrase',
      prompt: `Passphrase for ${keyPath}${attempt > 1 ? ' (the last one was wrong)' : ''}`,
      password: true,
      ignoreFocusOut: true,
    });
  }

  passphraseAccepted(keyPath: string, passphrase: string): void {
    void this.offerToKeep(`tether.passphrase:${keyPath}`, passphrase, `the passphrase for ${keyPath}`);
  }

  async password(label: string, user: string, attempt: number): Promise<string | undefined> {
    const key = `tether.password:${user}@${label}`;
    if (attempt === 1) {
      const stored = await this.secrets.get(key);
      if (stored !== undefined) return stored;
    } else {
      await this.secrets.delete(key);
    }
    return vscode.window.showInputBox({
      title: 'Tether: SSH password',
      prompt: `Password for ${user}@${label}${attempt > 1 ? ' (try again)' : ''}`,
      password: true,
      ignoreFocusOut: true,
    });
  }

  passwordAccepted(label: string, user: string, password: string): void {
    void this.offerToKeep(`tether.password:${user}@${label}`, password, `the password for ${user}@${label}`);
  }

  async keyboardInteractive(label: string, name: string, instructions: string, prompts: readonly { prompt: string; echo?: boolean }[]): Promise<string[] | undefined> {
    const answers: string[] = [];
    for (const prompt of prompts) {
      const answer = await vscode.window.showInputBox({
        title: `Tether: ${name || label}`,
        prompt: [instructions, prompt.prompt].filter(Boolean).join(' — '),
        password: !prompt.echo,
        ignoreFocusOut: true,
      });
      if (answer === undefined) return undefined;
      answers.push(answer);
    }
    return answers;
  }

  private async offerToKeep(key: string, secret: string, what: string): Promise<void> {
    if ((await this.secrets.get(key)) === secret) return;
    const choice = await vscode.window.showInformationMessage(`Keep ${what} in VS Code's secret storage?`, 'Keep', 'Not Now');
    if (choice === 'Keep') await this.secrets.store(key, secret);
  }
}

export async function confirmUnknownHostKey(info: HostKeyPromptInfo): Promise<boolean> {
  const trust = 'Trust and Connect';
  const choice = await vscode.window.showWarningMessage(
    `The authenticity of host ${info.label} (${info.host}:${info.port}) can't be established.`,
    { modal: true, detail: `${info.keyType} key fingerprint is ${info.fingerprint}.\nTrust it only if it matches the host's real key.` },
    trust,
  );
  return choice === trust;
}
