/**
 * What a close and a kill say (issue 12, item 6), under plain Node: a fake sync port (in-memory
 * remote state) and fake sessions whose kill answers like the host would.
 */
import assert from 'node:assert/strict';
import type { SessionEntry } from '../../../src/sync/blob';
import { CrossDeviceSessions, type KillableSession, type SyncPort } from '../../../src/sync/crossDevice';
import { Emitter } from '../../../src/common/emitter';
import type { RemoteSlot } from '../../../src/sync/syncClient';
import type { KillOutcome } from '../../../src/multiplexer/multiplexer';
import { silentLogger } from '../../../src/common/logger';
import { newSessionId } from '../../../src/common/sessionId';

const entry = (): SessionEntry => ({ id: newSessionId(), hostLabel: 'h', user: 'u', hostName: '10.0.0.1', port: 22, multiplexer: 'tmux', cwd: '/', startedAt: Date.now() - 1000 });

function fakePort(slots: RemoteSlot[]): SyncPort {
  return {
    slotId: newSessionId(),
    state: { state: 'live' },
    getRemoteState: () => ({ slots }),
    onDidChangeRemote: new Emitter<never>().event,
    onDidChangeState: new Emitter<never>().event,
    publish: () => undefined,
    publishTombstone: () => undefined,
  };
}

function slotListing(deviceName: string, sessions: SessionEntry[]): RemoteSlot {
  const slotId = newSessionId();
  return { slotId, deviceName, version: 1, online: true, blob: { format: 1, slotId, deviceName, seq: 1, writtenAt: Date.now(), sessions, tombstones: [] } };
}

function fakeSession(id: string, answers: KillOutcome[]): KillableSession & { forced: boolean[]; detached: number } {
  const session = {
    id,
    forced: [] as boolean[],
    detached: 0,
    kill: async (options?: { force?: boolean }) => {
      session.forced.push(options?.force === true);
      return answers.shift() ?? { killed: false, reason: 'unconfirmed' as const };
    },
    detach: () => void session.detached++,
  };
  return session;
}

describe('closes and kills explain themselves', () => {
  it('a ✕ that only detaches names the device, or this device’s workspace that will restore it', async () => {
    const s = entry();
    const cross = new CrossDeviceSessions({ log: silentLogger });
    cross.useClient(fakePort([slotListing('laptop', [s])]));
    const session = fakeSession(s.id, []);
    assert.deepEqual(await cross.close(session, s), { action: 'detached', why: 'still open on laptop', devices: ['laptop'] });
    assert.deepEqual(session.forced, [], 'no kill was tried');

    const local = new CrossDeviceSessions({ log: silentLogger, localHolders: () => ['workspace "work" on this device, which will restore it'] });
    local.useClient(fakePort([]));
    const result = await local.close(fakeSession(s.id, []), s);
    assert.equal(result.action === 'detached' && result.why, 'still open in workspace "work" on this device, which will restore it');
  });

  it('a refused kill names the attached devices from the host, else from the listings, else counts clients', async () => {
    const s = entry();
    const cross = new CrossDeviceSessions({ log: silentLogger });
    cross.useClient(fakePort([slotListing('desktop', [s])]));
    const fromHost = await cross.kill(fakeSession(s.id, [{ killed: false, reason: 'in-use', clients: 2, attachedDevices: ['laptop'] }]));
    assert.deepEqual(fromHost, { action: 'detached', why: 'it is attached on laptop', refused: true, devices: ['laptop'] });
    const fromListing = await cross.kill(fakeSession(s.id, [{ killed: false, reason: 'in-use', clients: 2 }]));
    assert.equal(fromListing.action === 'detached' && fromListing.why, 'it is attached on desktop');
    cross.useClient(fakePort([]));
    const counted = await cross.kill(fakeSession(s.id, [{ killed: false, reason: 'in-use', clients: 3 }]));
    assert.equal(counted.action === 'detached' && counted.why, '3 other clients are attached on the host');
    const unconfirmed = await cross.kill(fakeSession(s.id, [{ killed: false, reason: 'unconfirmed' }]));
    assert.deepEqual(unconfirmed, { action: 'detached', why: 'the host did not confirm the kill', refused: false, devices: [] });
  });

  it('Kill anyway forces the host kill, which still has to be confirmed, and publishes a tombstone only then', async () => {
    const s = entry();
    const tombstones: string[] = [];
    const port = { ...fakePort([]), publishTombstone: (id: string) => void tombstones.push(id) };
    const cross = new CrossDeviceSessions({ log: silentLogger });
    cross.useClient(port);
    const notConfirmed = fakeSession(s.id, [{ killed: false, reason: 'unconfirmed' }]);
    assert.equal((await cross.kill(notConfirmed, { force: true })).action, 'detached');
    assert.deepEqual([notConfirmed.forced, tombstones], [[true], []]);
    const confirmed = fakeSession(s.id, [{ killed: true }]);
    assert.deepEqual(await cross.kill(confirmed, { force: true }), { action: 'killed' });
    assert.deepEqual([confirmed.forced, tombstones], [[true], [s.id]]);
  });
});
