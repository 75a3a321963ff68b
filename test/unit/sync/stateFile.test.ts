import assert from 'node:assert/strict';
import { frameState, unframeState } from '../../../src/sync/stateFile';

describe('sync state file framing', () => {
  const body = JSON.stringify({ format: 1, ownSeq: 42, remote: [{ slotId: 'x', data: 'ünïcode' }] });

  it('round-trips a body', () => {
    assert.deepEqual(unframeState(frameState(body)), { ok: true, body });
  });

  it('never reads a torn file as valid: every truncation, an empty file, zero fill, a flipped byte', () => {
    const framed = frameState(body);
    for (let cut = 0; cut < framed.length; cut++) {
      assert.equal(unframeState(framed.slice(0, cut)).ok, false, `cut at ${cut}`);
    }
    assert.deepEqual(unframeState(''), { ok: false, reason: 'torn' });
    assert.deepEqual(unframeState('\0'.repeat(4096)), { ok: false, reason: 'torn' });
    const flipped = framed.slice(0, -5) + (framed.at(-5) === 'a' ? 'b' : 'a') + framed.slice(-4);
    assert.deepEqual(unframeState(flipped), { ok: false, reason: 'torn' });
    assert.deepEqual(unframeState(`${framed}trailing`), { ok: false, reason: 'torn' });
  });

  it('still reads the fsync-written plain JSON of format 1, and refuses an unknown frame', () => {
    assert.deepEqual(unframeState(body), { ok: true, body });
    assert.deepEqual(unframeState(frameState(body).replace('tether-sync-state 2', 'tether-sync-state 3')), { ok: false, reason: 'unknown-format' });
    assert.equal(unframeState('garbage').ok, false);
  });
});
