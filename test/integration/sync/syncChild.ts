/**
 * One device, in its own process: a SyncClient driven over stdin/stdout with one JSON object per
 * line. Started by the integration tests as `node --require tsx/cjs syncChild.ts '<options JSON>'`.
 *   in:  {"cmd":"publish","sessions":[...]} | {"cmd":"flush"} | {"cmd":"stop"}
 *   out: {"type":"state",...} | {"type":"remote","slots":[...],"at":<ms>} | {"type":"flushed","ok":bool} | {"type":"log",...}
 */
import * as readline from 'node:readline';
import type { SessionEntry } from '../../../src/sync/blob';
import { SyncClient } from '../../../src/sync/syncClient';
import { parseSyncKey } from '../../../src/sync/syncKey';

interface ChildOptions {
  serverUrl: string;
  syncKey: string;
  slotId: string;
  deviceName: string;
  stateDir: string;
}

function send(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
  const log = (level: string) => (message: string) => send({ type: 'log', level, message });
  const client = new SyncClient({
    serverUrl: options.serverUrl,
    syncKey: parseSyncKey(options.syncKey),
    slotId: options.slotId,
    deviceName: options.deviceName,
    stateDir: options.stateDir,
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    writeDebounceMs: 50,
    pollIntervalMs: 500,
    reconnectInitialMs: 200,
    reconnectMaxMs: 1000,
    requestTimeoutMs: 3000,
  });
  client.onDidChangeState((state) => send({ type: 'state', ...state }));
  client.onDidChangeRemote((remote) => send({ type: 'remote', slots: remote.slots, at: Date.now() }));
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const command = JSON.parse(line) as { cmd: string; sessions?: SessionEntry[] };
    if (command.cmd === 'publish') client.publish(command.sessions ?? []);
    else if (command.cmd === 'flush') void client.flush().then((ok) => send({ type: 'flushed', ok }));
    else if (command.cmd === 'stop') void client.stop().then(() => process.exit(0));
  });
  lines.on('close', () => void client.stop().then(() => process.exit(0)));
  await client.start();
  send({ type: 'started' });
}

main().catch((error: unknown) => {
  send({ type: 'fatal', message: error instanceof Error ? error.stack : String(error) });
  process.exit(1);
});
