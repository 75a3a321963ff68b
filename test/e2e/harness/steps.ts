/** Steps the scenarios share: what a person does in the workbench, and waiting for what they see. */
import * as assert from 'node:assert/strict';
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

const SET_UP_SYNC = 'Tether: Set Up Sync';

/** Reads the new sync key from the dialog that shows it once, then closes the dialog (`shot` first, if given). */
export async function takeShownSyncKey(device: Device, shot?: () => Promise<void>): Promise<string> {
  const shown = await device.workbench.dialogText();
  const key = KEY_PATTERN.exec(`${shown.detail} ${shown.message}`)?.[0];
  assert.ok(key, `the dialog shows the sync key; it said: ${shown.message} / ${shown.detail}`);
  await shot?.();
  await device.page.keyboard.press('Escape');
  await device.page.locator('.monaco-dialog-box').waitFor({ state: 'hidden' });
  return key;
}

/**
 * Set Up Sync with a sync server, through the palette: a new key on this device ('create', the key
 * is returned; `shot` while its dialog shows), or another device's key pasted. Waits until live.
 */
export async function setUpSync(device: Device, serverUrl: string, key: 'create' | string, shot?: () => Promise<void>): Promise<string> {
  await device.workbench.runCommand(SET_UP_SYNC);
  if (key === 'create') {
    await device.workbench.pick('Create a new sync key', { title: SET_UP_SYNC });
    await device.workbench.answerInput(serverUrl, { title: 'Sync server URL' });
    key = await takeShownSyncKey(device, shot);
  } else {
    await device.workbench.pick('Paste a sync key from another device', { title: SET_UP_SYNC });
    await device.workbench.answerInput(key, { title: 'Paste the sync key from your other device' });
    await device.workbench.answerInput(serverUrl, { title: 'Sync server URL' });
  }
  await waitForSyncLive(device);
  return key;
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
