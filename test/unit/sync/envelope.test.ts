import assert from 'node:assert/strict';
import { EnvelopeError, MIN_ENVELOPE_BYTES, openEnvelope, sealEnvelope, SeqGuard } from '../../../src/sync/envelope';
import { deriveSyncKeys, generateSyncKey } from '../../../src/sync/syncKey';
import { newSessionId } from '../../../src/common/sessionId';

function expectEnvelopeError(fn: () => unknown, reason: EnvelopeError['reason']): void {
  assert.throws(fn, (error: unknown) => EnvelopeError.is(error) && error.reason === reason);
}

describe('envelope', () => {
  const { encryptionKey } = deriveSyncKeys(generateSyncKey());
  const slotId = newSessionId();
  const plaintext = { slotId, seq: 7, note: 'hello; rm -rf / $(x)' };

  it('round-trips and uses a fresh nonce each time', () => {
    const a = sealEnvelope(encryptionKey, plaintext);
    const b = sealEnvelope(encryptionKey, plaintext);
    assert.equal(a[0], 1);
    assert.notDeepEqual(a.subarray(1, 25), b.subarray(1, 25));
    assert.deepEqual(openEnvelope(encryptionKey, a, slotId), plaintext);
    assert.deepEqual(openEnvelope(encryptionKey, b, slotId), plaintext);
  });

  it('rejects a change to any byte position with a typed error', () => {
    const sealed = sealEnvelope(encryptionKey, plaintext);
    for (let i = 0; i < sealed.length; i++) {
      const tampered = new Uint8Array(sealed);
      tampered[i] = tampered[i]! ^ 0x01;
      expectEnvelopeError(() => openEnvelope(encryptionKey, tampered, slotId), i === 0 ? 'unsupported-version' : 'decrypt');
    }
  });

  it('rejects every truncation and an appended byte', () => {
    const sealed = sealEnvelope(encryptionKey, plaintext);
    for (let length = 0; length < sealed.length; length++) {
      assert.throws(() => openEnvelope(encryptionKey, sealed.subarray(0, length), slotId), (error: unknown) =>
        EnvelopeError.is(error) && error.reason === (length < MIN_ENVELOPE_BYTES ? 'too-short' : 'decrypt'));
    }
    const longer = new Uint8Array(sealed.length + 1);
    longer.set(sealed);
    expectEnvelopeError(() => openEnvelope(encryptionKey, longer, slotId), 'decrypt');
  });

  it('rejects an envelope sealed with another key', () => {
    const other = deriveSyncKeys(generateSyncKey()).encryptionKey;
    expectEnvelopeError(() => openEnvelope(other, sealEnvelope(encryptionKey, plaintext), slotId), 'decrypt');
  });

  it('rejects a blob moved to another slot', () => {
    const sealed = sealEnvelope(encryptionKey, plaintext);
    expectEnvelopeError(() => openEnvelope(encryptionKey, sealed, newSessionId()), 'wrong-slot');
  });

  it('rejects a plaintext without a valid seq', () => {
    for (const seq of [-1, 1.5, '3', null, Number.MAX_SAFE_INTEGER + 2]) {
      const sealed = sealEnvelope(encryptionKey, { slotId, seq } as unknown as { slotId: string; seq: number });
      expectEnvelopeError(() => openEnvelope(encryptionKey, sealed, slotId), 'payload');
    }
  });

  it('rejects replay and rollback of seq, per slot, across a snapshot', () => {
    const guard = new SeqGuard();
    const other = newSessionId();
    guard.check(slotId, 5);
    guard.accept(slotId, 5);
    expectEnvelopeError(() => guard.check(slotId, 5), 'replay');
    expectEnvelopeError(() => guard.check(slotId, 4), 'rollback');
    guard.check(slotId, 6);
    guard.check(other, 1); // another slot has its own counter
    const restored = new SeqGuard();
    restored.restore(guard.snapshot());
    expectEnvelopeError(() => restored.check(slotId, 3), 'rollback');
    restored.accept(slotId, 4); // accepting a lower seq never lowers the mark
    assert.equal(restored.highestSeen(slotId), 5);
  });
});
