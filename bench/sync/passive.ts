/**
 * Passive devices for the cross-device benchmark: K SyncClients in one process, each with its own
 * slot, each listing one session. They only follow the stream (decrypting every change, as real
 * devices do). Prints {"type":"ready"} once every client is live; exits on stdin close.
 *   node --require tsx/cjs bench/sync/passive.ts '{"serverUrl":…,"syncKey":…,"slotIds":[…],"stateDir":…}'
 */
import * as readline from 'node:readline';
import { SyncClient } from '../../src/sync/syncClient';
import { parseSyncKey } from '../../src/sync/syncKey';
import { newSessionId } from '../../src/common/sessionId';
import { sampleSession } from '../../test/integration/sync/harness';

interface Options {
  serverUrl: string;
  syncKey: string;
  slotIds: string[];
  stateDir: string;
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as Options;
  const key = parseSyncKey(options.syncKey);
  const clients = options.slotIds.map(
    (slotId, index) =>
      new SyncClient({ serverUrl: options.serverUrl, syncKey: key, slotId, deviceName: `passive-${index}`, stateDir: options.stateDir, writeDebounceMs: 0, requestTimeoutMs: 30_000 }),
  );
  let events = 0;
  for (const client of clients) {
    client.onDidChangeRemote(() => void events++);
    client.publish([sampleSession({ id: newSessionId(), title: 'idle', startedAt: Date.now() - 60_000 })]);
  }
  await Promise.all(clients.map((client) => client.start()));
  await Promise.all(clients.map((client) => client.flush()));
  const deadline = Date.now() + 60_000;
  while (clients.some((client) => client.state.state !== 'live')) {
    if (Date.now() > deadline) throw new Error('passive clients did not go live');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  process.stdout.write(`${JSON.stringify({ type: 'ready' })}\n`);
  readline.createInterface({ input: process.stdin }).on('close', () => {
    void Promise.all(clients.map((client) => client.stop())).then(() => {
      process.stdout.write(`${JSON.stringify({ type: 'stopped', events })}\n`);
      process.exit(0);
    });
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
