import * as vscode from 'vscode';
import { needsPlainHttpConfirmation, transportSecurity } from '../sync/transportSecurity';

export const USE_PLAIN_HTTP = 'Use http:// Anyway';

/** Asks before a plain http:// URL to another machine is saved; true to go on. Loopback and https need no question. */
export async function confirmPlainHttp(serverUrl: string): Promise<boolean> {
  if (!needsPlainHttpConfirmation(serverUrl)) return true;
  const security = transportSecurity(serverUrl);
  const host = security?.kind === 'plain' ? security.host : serverUrl;
  const choice = await vscode.window.showWarningMessage(
    `The connection to ${host} will not be encrypted in transit.`,
    {
      modal: true,
      detail:
        'Your session list stays end-to-end encrypted, but anyone on the network path can read the account token (and with it write to or delete from your sync account) and see when and how much you sync. Use an https:// URL (the server takes --tls-cert and --tls-key, or sits behind a reverse proxy: see docs/deploy.md) unless this network is private.',
    },
    USE_PLAIN_HTTP,
  );
  return choice === USE_PLAIN_HTTP;
}
