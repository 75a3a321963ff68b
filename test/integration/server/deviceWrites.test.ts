/**
 * What one device writes to the server (issue 21: writes per device set how many devices one
 * PostgreSQL cluster carries). The extension republishes the device's sessions on every tab event and
 * after each cwd refresh (every 30 s, src/editor/tabManager.ts) through CrossDeviceSessions.publish;
 * only a real change may cost a PUT.
 * Counted from the real server's request log.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEntry } from '../../../src/sync/blob';
import { CrossDeviceSessions } from '../../../src/sync/crossDevice';
import { SyncClient } from '../../../src/sync/syncClient';
import { generateSyncKey } from '../../../src/sync/syncKey';
import { newSessionId } from '../../../src/common/sessionId';
import { ServerProcess } from './harness';

function session(cwd: string, id: string): SessionEntry {
  return { id, hostLabel: 'build-1', user: 'dev', hostName: '127.0.0.1', port: 2222, multiplexer: 'tmux', cwd, startedAt: 1_700_000_000_000, title: 'make watch' };
}

describe('writes per device', function () {
  this.timeout(60_000);
  const root = mkdtempSync(join(tmpdir(), 'tether-device-writes-'));
  let server: ServerProcess;
  let client: SyncClient | undefined;
  const slotId = newSessionId();

  before(async () => {
    server = await ServerProcess.start(['--data-dir', join(root, 'data'), '--rate', '1000', '--burst', '1000']);
  });
  after(async () => {
    await client?.stop();
    await server?.stop('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  const puts = (): number => server.logs().filter((record) => record.msg === 'request' && record.route === 'putBlob' && record.slotId === slotId).length;

  it('writes once per real change, and never for a refresh that found nothing new', async () => {
    const quiet = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    client = new SyncClient({ serverUrl: server.url, syncKey: generateSyncKey(), slotId, deviceName: 'device-a', stateDir: join(root, 'state'), log: quiet, writeDebounceMs: 20 });
    await client.start();
    // Connected and listed first, as a device is in normal use (the first list then already holds our slot).
    const live = client;
    await new Promise<void>((resolve) => {
      if (live.state.state === 'live') return resolve();
      const subscription = live.onDidChangeState((change) => {
        if (change.state !== 'live') return;
        subscription.dispose();
        resolve();
      });
    });
    // The extension's path: tabs -> CrossDeviceSessions.publish -> SyncClient (src/editor/crossDeviceController.ts).
    const cross = new CrossDeviceSessions({ log: quiet });
    cross.useClient(live);
    const ids = [newSessionId(), newSessionId()];
    const tabs = (cwds: string[]): SessionEntry[] => cwds.map((cwd, i) => session(cwd, ids[i]));

    cross.publish(tabs(['/home/dev/0', '/srv']));
    assert.equal(await client.flush(), true);
    // Connecting the client publishes what CrossDeviceSessions holds (still nothing), then the tabs.
    const atStart = puts();
    assert.ok(atStart >= 1 && atStart <= 2, `${atStart} PUTs at start`);

    // An hour of cwd refreshes, compressed: 120 refreshes (one per 30 s); the directory of one tab
    // changes before every 10th. Each refresh hands over a fresh, equal list, as the extension does.
    let changes = 0;
    for (let refresh = 0; refresh < 120; refresh++) {
      const changed = refresh % 10 === 9;
      if (changed) changes += 1;
      cross.publish(tabs([`/home/dev/${changes}`, '/srv']));
      assert.equal(await client.flush(), true);
    }
    assert.equal(changes, 12);
    assert.equal(puts() - atStart, changes, 'one PUT per change, none for the 108 refreshes that changed nothing');
    cross.dispose();
  });
});
