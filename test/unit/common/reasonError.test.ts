import assert from 'node:assert/strict';
import { BlobError } from '../../../src/sync/blob';
import { EnvelopeError } from '../../../src/sync/envelope';

describe('common/ReasonError: the shape the error classes share', () => {
  it('keeps reason, message and a literal name; is() narrows to the class it is called on', () => {
    const error: unknown = new EnvelopeError('replay', 'slot x seq 3 was already seen');
    assert.ok(EnvelopeError.is(error));
    assert.equal(error.reason, 'replay');
    assert.equal(error.name, 'EnvelopeError');
    assert.equal(error.message, 'slot x seq 3 was already seen');
    assert.ok(error instanceof Error);
    assert.equal(BlobError.is(error), false, 'another subclass is not matched');
    assert.equal(EnvelopeError.is(new Error('plain')), false);
    assert.equal(EnvelopeError.is(undefined), false);
    assert.match(String(new BlobError('format', 'bad format')), /^BlobError: bad format$/);
  });
});
