/**
 * One VS Code window of a device, in its own process: the same DeviceSync, FolderDeviceFiles,
 * SyncClient and AccountSlots composition that src/editor/syncController.ts builds, minus the editor.
 * Several of these share one global storage folder, as windows of one VS Code installation do.
 * Started as `node --require tsx/cjs deviceWindowChild.ts '<options JSON>'`; one JSON object per line.
 *   in:  {"cmd":"sessions","sessions":[...]} | {"cmd":"tombstone","id":...} | {"cmd":"flush"} | {"cmd":"status"}
 *        | {"cmd":"close"} (the window closes: dispose) | {"cmd":"crash"} (the process just ends)
 *   out: {"type":"started"} | {"type":"status","role":...,"holders":{...},"slotId":...} | {"type":"flushed"} | {"type":"log",...}
 */
import * as path from 'node:path';
import * as readline from 'node:readline';
import { AccountSlots } from '../../../src/sync/accountSlots';
import type { SessionEntry } from '../../../src/sync/blob';
import { FolderDeviceFiles } from '../../../src/sync/deviceFiles';
import { DeviceSync } from '../../../src/sync/deviceSync';
import { SyncClient } from '../../../src/sync/syncClient';
import { parseSyncKey } from '../../../src/sync/syncKey';
import type { WindowProcessOptions } from './harness';

function send(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as WindowProcessOptions;
  const emit = (level: string) => (message: string | Error) => send({ type: 'log', level, message: String(message) });
  const log = { trace: emit('trace'), debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
  const syncKey = parseSyncKey(options.syncKey);
  const legacyDir = path.join(options.globalStorage, 'sync');
  const device = new DeviceSync({ files: new FolderDeviceFiles(path.join(options.globalStorage, 'device')), window: { kind: options.kind, key: options.key, label: options.label }, log, pollMs: 200 });
  device.onDidChangeRole((role) => send({ type: 'role', role }));
  const account = new AccountSlots({ serverUrl: options.serverUrl, syncKey });
  await device.connect(
    (slotId, role) =>
      new SyncClient({
        serverUrl: options.serverUrl, syncKey, slotId, deviceName: options.deviceName, stateDir: path.join(legacyDir, role === 'writer' ? 'device' : 'device-reader'), log,
        writeDebounceMs: 50, pollIntervalMs: 500, reconnectInitialMs: 200, reconnectMaxMs: 1000, requestTimeoutMs: 3000,
      }),
    account.legacySlots(legacyDir, () => options.legacyIds ?? []),
  );
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = JSON.parse(line) as { cmd: string; sessions?: SessionEntry[]; id?: string; ids?: string[] };
    if (command.cmd === 'sessions') device.setWindowSessions(command.sessions ?? []);
    else if (command.cmd === 'tombstone' && command.id) device.recordTombstone(command.id);
    else if (command.cmd === 'flush') void device.flush().then(() => send({ type: 'flushed' }));
    else if (command.cmd === 'status') {
      void device.deviceSlotId().then((slotId) =>
        send({ type: 'status', role: device.role, slotId, holders: Object.fromEntries((command.ids ?? []).map((id) => [id, device.holders(id)])) }),
      );
    } else if (command.cmd === 'close') void device.dispose().then(() => process.exit(0));
    else if (command.cmd === 'crash') process.exit(0);
  });
  lines.on('close', () => void device.dispose().then(() => process.exit(0)));
  send({ type: 'started', role: device.role });
}

main().catch((error: unknown) => {
  send({ type: 'fatal', message: error instanceof Error ? error.stack : String(error) });
  process.exit(1);
});
