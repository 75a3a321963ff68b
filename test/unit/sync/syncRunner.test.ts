/** SyncRunner: when the client runs, why it is off, serialized restarts, sharing off, stop and dispose (fake device, no network). */
import assert from 'node:assert/strict';
import { Emitter } from '../../../src/common/emitter';
import type { DeviceClientFactory, LegacySlots, SyncPort } from '../../../src/sync/deviceSync';
import type { RemoteState, SyncStateChange } from '../../../src/sync/syncClient';
import { SYNC_OFF_TEXT, type SyncConnection, SyncRunner, type SyncRunnerOptions } from '../../../src/sync/syncRunner';

/** Every Logger method, silent (a variable, so it fits Logger with or without trace). */
const quiet = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** A DeviceSync stand-in that records what the runner asks of it. */
class FakeDevice {
  readonly calls: string[] = [];
  readonly stateEmitter = new Emitter<SyncStateChange>();
  readonly remoteEmitter = new Emitter<RemoteState>();
  connected: { clients: DeviceClientFactory; legacy?: LegacySlots } | undefined;
  /** Resolves the next connect() when set (to hold a restart in flight). */
  connectGate: Promise<void> | undefined;
  deleteFails = false;
  readonly port: SyncPort = {
    slotId: 'slot',
    state: { state: 'connecting' },
    getRemoteState: () => ({ slots: [] }),
    onDidChangeState: this.stateEmitter.event,
    onDidChangeRemote: this.remoteEmitter.event,
    publish: () => undefined,
    publishTombstone: () => undefined,
  } as unknown as SyncPort;

  async connect(clients: DeviceClientFactory, legacy?: LegacySlots): Promise<void> {
    this.calls.push('connect');
    this.connected = { clients, legacy };
    await this.connectGate;
  }
  async disconnect(): Promise<void> {
    this.calls.push('disconnect');
    this.connected = undefined;
  }
  async deleteDeviceSlot(): Promise<void> {
    this.calls.push('deleteDeviceSlot');
    if (this.deleteFails) throw new Error('server down');
  }
  async dispose(): Promise<void> {
    this.calls.push('dispose');
  }
}

interface Setup {
  runner: SyncRunner;
  device: FakeDevice;
  env: { key: Uint8Array | undefined; serverUrl: string; deviceName: string; connectionError?: Error };
  connections: Array<{ serverUrl: string; deviceName: string }>;
  deleted: string[];
  forgotten: number;
}

function setup(overrides: Partial<Pick<SyncRunnerOptions, 'crossDevice'>> & { key?: Uint8Array | undefined; serverUrl?: string } = {}): Setup {
  const device = new FakeDevice();
  const result = {
    device,
    env: { key: 'key' in overrides ? overrides.key : new Uint8Array(32), serverUrl: overrides.serverUrl ?? 'http://127.0.0.1:8787', deviceName: 'laptop' },
    connections: [] as Array<{ serverUrl: string; deviceName: string }>,
    deleted: [] as string[],
    forgotten: 0,
  } as Setup;
  result.runner = new SyncRunner({
    device,
    log: quiet,
    readKey: async () => result.env.key,
    settings: () => ({ serverUrl: result.env.serverUrl, deviceName: result.env.deviceName }),
    crossDevice: overrides.crossDevice ?? true,
    connection: (serverUrl, _key, deviceName): SyncConnection => {
      if (result.env.connectionError) throw result.env.connectionError;
      result.connections.push({ serverUrl, deviceName });
      return { account: { deleteSlot: async (slotId) => void result.deleted.push(slotId) }, clients: () => ({}) as never };
    },
    forgetCaches: async () => void result.forgotten++,
  });
  return result;
}

describe('SyncRunner', () => {
  it('is off, and not set up, without a key or a server URL; says why in the state', async () => {
    const noKey = setup({ key: undefined });
    await noKey.runner.restart();
    assert.deepEqual(noKey.runner.state, { state: 'off', detail: SYNC_OFF_TEXT['no-key'] });
    assert.equal(noKey.runner.configured, false);
    assert.equal(noKey.runner.client, undefined);
    assert.deepEqual(noKey.device.calls, []);

    const noServer = setup({ serverUrl: '' });
    await noServer.runner.restart();
    assert.deepEqual(noServer.runner.state, { state: 'off', detail: SYNC_OFF_TEXT['no-server'] });
    assert.equal(noServer.runner.configured, false);
  });

  it('is set up, but off, while sharing is off', async () => {
    const { runner, device } = setup({ crossDevice: false });
    await runner.restart();
    assert.equal(runner.state.state, 'off');
    assert.equal(runner.configured, true);
    assert.deepEqual(device.calls, []);
  });

  it('runs the device client with a key and a server URL, and follows its state and listing', async () => {
    const { runner, device, connections } = setup();
    const clients: Array<SyncPort | undefined> = [];
    const states: string[] = [];
    runner.onDidChangeClient((client) => clients.push(client));
    runner.onDidChangeState((change) => states.push(change.state));
    await runner.restart();
    assert.deepEqual(device.calls, ['connect']);
    assert.deepEqual(connections, [{ serverUrl: 'http://127.0.0.1:8787', deviceName: 'laptop' }]);
    assert.equal(runner.client, device.port);
    assert.deepEqual(clients, [device.port]);
    device.stateEmitter.fire({ state: 'live' });
    device.remoteEmitter.fire({ slots: [{ slotId: 'other' } as never] });
    assert.deepEqual(states, ['live']);
    assert.equal(runner.remote.slots.length, 1);
    assert.equal(runner.configured, true);
  });

  it('coalesces restarts asked for while one is waiting: one stop and start for a burst', async () => {
    const { runner, device } = setup();
    await runner.restart();
    device.calls.length = 0;
    await Promise.all([runner.restart(), runner.restart(), runner.restart(), runner.restart()]);
    assert.deepEqual(device.calls, ['disconnect', 'connect']);
  });

  it('never runs two restarts at once: a restart asked for during one runs after it', async () => {
    const { runner, device } = setup();
    let open!: () => void;
    device.connectGate = new Promise((resolve) => (open = resolve));
    const first = runner.restart();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(device.calls, ['connect']);
    device.connectGate = undefined;
    const second = runner.restart();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(device.calls, ['connect'], 'the second waits for the first');
    open();
    await Promise.all([first, second]);
    assert.deepEqual(device.calls, ['connect', 'disconnect', 'connect']);
  });

  it('turning sharing off tells it once, deletes this device slot and stops; on again starts', async () => {
    const { runner, device } = setup();
    const told: boolean[] = [];
    runner.onDidChangeCrossDevice((enabled) => told.push(enabled));
    await runner.restart();
    device.calls.length = 0;
    await runner.settingsChanged(false);
    assert.deepEqual(told, [false]);
    assert.deepEqual(device.calls, ['deleteDeviceSlot', 'disconnect']);
    assert.deepEqual(runner.state, { state: 'off', detail: SYNC_OFF_TEXT['cross-device-off'] });
    assert.equal(runner.client, undefined);

    device.calls.length = 0;
    await runner.settingsChanged(false); // another setting changed: no news, no slot deletion
    assert.deepEqual(told, [false]);
    assert.deepEqual(device.calls, []);

    await runner.settingsChanged(true);
    assert.deepEqual(told, [false, true]);
    assert.deepEqual(device.calls, ['connect']);
  });

  it('keeps going when the slot cannot be deleted (a stale listing at worst)', async () => {
    const { runner, device } = setup();
    await runner.restart();
    device.deleteFails = true;
    await runner.settingsChanged(false);
    assert.ok(device.calls.includes('disconnect'));
    assert.equal(runner.state.state, 'off');
  });

  it('shows an unusable server URL as an error, still set up', async () => {
    const { runner, env, device } = setup();
    env.connectionError = new Error('cannot resolve ssh host');
    await runner.restart();
    assert.deepEqual(runner.state, { state: 'error', detail: 'cannot resolve ssh host' });
    assert.equal(runner.configured, true);
    assert.deepEqual(device.calls, []);
  });

  it('stops with the slot deleted and the caches forgotten inside restartAfter (sign-out), then stays off', async () => {
    const s = setup();
    await s.runner.restart();
    s.device.calls.length = 0;
    await s.runner.restartAfter(async () => {
      await s.runner.stop({ deleteSlot: true, forget: true });
      s.env.key = undefined;
    });
    assert.deepEqual(s.device.calls, ['deleteDeviceSlot', 'disconnect']);
    assert.equal(s.forgotten, 1);
    assert.deepEqual(s.runner.state, { state: 'off', detail: SYNC_OFF_TEXT['no-key'] });
  });

  it('forgets another device only while running', async () => {
    const s = setup();
    await assert.rejects(s.runner.forgetDevice('other'), /not running/);
    await s.runner.restart();
    await s.runner.forgetDevice('other');
    assert.deepEqual(s.deleted, ['other']);
  });

  it('dispose stops the client and the device, tells no one, and nothing restarts after it', async () => {
    const { runner, device } = setup();
    await runner.restart();
    const clients: Array<SyncPort | undefined> = [];
    runner.onDidChangeClient((client) => clients.push(client));
    device.calls.length = 0;
    await runner.dispose();
    assert.deepEqual(device.calls, ['disconnect', 'dispose']);
    assert.deepEqual(clients, []);
    await runner.restart();
    assert.deepEqual(device.calls, ['disconnect', 'dispose'], 'no start after dispose');
  });
});
