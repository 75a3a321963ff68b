/** Steps the scenarios share: what a person does in the workbench, and waiting for what they see. */
import type { Locator } from 'playwright-core';
import type { Device } from './device';
import { E2E_USER } from './hosts';

export const PROMPT = new RegExp(`${E2E_USER}@[^:\\s]+:~\\$`);
export const NEW_TERMINAL = 'Tether: New Persistent Terminal';
export const LIVE_VIEW = 'Live on other devices';
export const KEY_PATTERN = /tether1(?:-[a-z2-7]+)+/i;

/** The status bar shows plain "Sync" (cloud icon) once the client is live. */
export async function waitForSyncLive(device: Device): Promise<void> {
  await device.workbench.statusBarItem(/^\s*Sync\s*$/).first().waitFor({ state: 'visible', timeout: 60_000 });
}

export async function openTetherTerminal(device: Device, alias: string): Promise<void> {
  await device.workbench.runCommand(NEW_TERMINAL);
  await device.workbench.pick(alias, { title: NEW_TERMINAL });
  await device.workbench.waitForTerminal(PROMPT, { what: 'the remote shell prompt' });
}

/** Kills the focused terminal the way a person closes a tab (exit reason: user). */
export async function closeActiveTerminal(device: Device): Promise<void> {
  await device.workbench.focusTerminal();
  await device.workbench.runCommand('Terminal: Kill the Active Terminal Instance');
}

export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
}

/** Opens the Tether view container and waits for `deviceName`'s row and the row of its session on `alias`. */
export async function liveSessionRow(device: Device, deviceName: RegExp, alias: string): Promise<Locator> {
  await device.workbench.openActivity('Tether');
  const live = device.workbench.viewPane(LIVE_VIEW);
  await live.waitFor({ state: 'visible' });
  await device.workbench.treeRow(live, deviceName).first().waitFor({ state: 'visible', timeout: 30_000 });
  const row = device.workbench.treeRow(live, alias).first();
  await row.waitFor({ state: 'visible', timeout: 30_000 });
  return row;
}
