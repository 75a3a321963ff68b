import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireSlotLease, knownSlotIds, processAlive, SlotLeaseError } from '../../../src/sync/slotLease';
import { isValidSessionId, newSessionId } from '../../../src/common/sessionId';

describe('slot lease (several windows on one machine)', () => {
  let dir: string;
  const alive = new Set<number>();
  const isAlive = (pid: number): boolean => alive.has(pid);

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tether-lease-'));
    alive.clear();
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('gives two live windows two different slots, and the first one back its own', async () => {
    alive.add(101).add(102);
    const first = await acquireSlotLease(dir, [], { pid: 101, isAlive });
    assert.ok(isValidSessionId(first.slotId));
    assert.equal(first.created, true);
    const second = await acquireSlotLease(dir, [first.slotId], { pid: 102, isAlive });
    assert.notEqual(second.slotId, first.slotId);
    await first.release();
    const third = await acquireSlotLease(dir, [first.slotId, second.slotId], { pid: 103, isAlive });
    assert.equal(third.slotId, first.slotId);
    assert.equal(third.created, false);
  });

  it('takes over the slot of a window that crashed (its pid is gone)', async () => {
    alive.add(201);
    const crashed = await acquireSlotLease(dir, [], { pid: 201, isAlive });
    alive.delete(201);
    const next = await acquireSlotLease(dir, [], { pid: 202, isAlive });
    assert.equal(next.slotId, crashed.slotId, 'found through the lock file even without globalState');
  });

  it('treats an unreadable lock as stale', async () => {
    const slotId = newSessionId();
    await fs.writeFile(path.join(dir, `slot-${slotId}.lock`), '{garbage');
    const lease = await acquireSlotLease(dir, [slotId], { pid: 301, isAlive });
    assert.equal(lease.slotId, slotId);
  });

  it('ignores malformed preferred IDs and stray files', async () => {
    await fs.writeFile(path.join(dir, 'slot-../../etc.lock'.replace(/\//g, '_')), '');
    await fs.writeFile(path.join(dir, 'sync-NOTANID.json'), '');
    const lease = await acquireSlotLease(dir, ['../../x', 'A'.repeat(26)], { pid: 401, isAlive });
    assert.ok(isValidSessionId(lease.slotId));
    assert.deepEqual(await knownSlotIds(dir), [lease.slotId]);
  });

  it('refuses to mint slots without bound', async () => {
    alive.add(501);
    await acquireSlotLease(dir, [], { pid: 501, isAlive, maxSlots: 1 });
    await assert.rejects(acquireSlotLease(dir, [], { pid: 502, isAlive, maxSlots: 1 }), (error: unknown) => SlotLeaseError.is(error) && error.reason === 'exhausted');
  });

  it('knows that this process is alive', () => {
    assert.equal(processAlive(process.pid), true);
    assert.equal(processAlive(-1), false);
  });
});
