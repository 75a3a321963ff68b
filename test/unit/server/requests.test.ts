import * as assert from 'node:assert/strict';
import { accountLabel, authenticate, hashToken, parseBearer } from '../../../src/server/auth';
import { HttpError } from '../../../src/server/errors';
import { maxBodyBytes, parseDeletePrecondition, parsePutBody, parsePutPrecondition, parseStreamLease,
  parseStreamSlot, parseVersionTag } from '../../../src/server/requests';
import { matchRoute } from '../../../src/server/router';

const SLOT = 'abcdefghijklmnopqrstuvwxyz';

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (HttpError.is(error)) return `${error.status} ${error.reason}`;
    throw error;
  }
  return 'no error';
}

describe('server/auth', () => {
  it('hashes tokens with sha256 and never returns the token itself', () => {
    const token = 'a-fairly-long-token-value-123';
    const account = authenticate(`Bearer ${token}`);
    assert.equal(account, hashToken(token));
    assert.match(account, /^[0-9a-f]{64}$/);
    assert.ok(!accountLabel(account).includes(token));
    assert.equal(accountLabel(account).length, 12);
  });

  it('accepts only a well-formed bearer header', () => {
    assert.equal(parseBearer('Bearer abcdefghijklmnop'), 'abcdefghijklmnop');
    assert.equal(parseBearer('bearer abcdefghijklmnop'), 'abcdefghijklmnop');
    for (const header of [undefined, '', 'Bearer', 'Bearer short', 'Basic abcdefghijklmnop', 'Bearer abcdefghijklmnop extra', 'Bearer abcdefgh"ijklmnop']) {
      assert.equal(parseBearer(header), undefined, String(header));
    }
    assert.equal(reason(() => authenticate(undefined)), '401 unauthorized');
  });

  it('is the known sha256 of a known token', () => {
    assert.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('server/router', () => {
  it('matches every route of the API', () => {
    assert.deepEqual(matchRoute('GET', '/healthz'), { name: 'healthz' });
    assert.deepEqual(matchRoute('GET', '/v1/blobs'), { name: 'listBlobs' });
    assert.deepEqual(matchRoute('GET', `/v1/blobs/${SLOT}`), { name: 'getBlob', slotId: SLOT });
    assert.deepEqual(matchRoute('PUT', `/v1/blobs/${SLOT}`), { name: 'putBlob', slotId: SLOT });
    assert.deepEqual(matchRoute('DELETE', `/v1/blobs/${SLOT}`), { name: 'deleteBlob', slotId: SLOT });
    assert.deepEqual(matchRoute('GET', '/v1/events'), { name: 'events' });
    assert.deepEqual(matchRoute('POST', `/v1/presence/${SLOT}`), { name: 'renewPresence', slotId: SLOT });
  });

  it('answers 404, 405 and 400 clearly', () => {
    assert.equal(reason(() => matchRoute('GET', '/v2/blobs')), '404 not_found');
    assert.equal(reason(() => matchRoute('POST', '/v1/blobs')), '405 method_not_allowed');
    assert.equal(reason(() => matchRoute('PATCH', `/v1/blobs/${SLOT}`)), '405 method_not_allowed');
    assert.equal(reason(() => matchRoute('GET', '/v1/blobs/../../etc')), '404 not_found');
    assert.equal(reason(() => matchRoute('PUT', '/v1/blobs/ABCDEFGHIJKLMNOPQRSTUVWXYZ')), '400 bad_request');
    assert.equal(reason(() => matchRoute('GET', `/v1/presence/${SLOT}`)), '405 method_not_allowed');
    assert.equal(reason(() => matchRoute('POST', '/v1/presence/x;rm')), '400 bad_request');
    assert.equal(reason(() => matchRoute('PUT', '/v1/blobs/%2e%2e')), '400 bad_request');
  });
});

describe('server/requests', () => {
  it('parses write preconditions', () => {
    assert.deepEqual(parsePutPrecondition(undefined, '*'), { kind: 'create' });
    assert.deepEqual(parsePutPrecondition('"12"', undefined), { kind: 'match', version: 12 });
    assert.equal(reason(() => parsePutPrecondition(undefined, undefined)), '428 precondition_required');
    assert.equal(reason(() => parsePutPrecondition('"1"', '*')), '400 bad_request');
    assert.equal(reason(() => parsePutPrecondition('W/"1"', undefined)), '400 bad_request');
    assert.equal(reason(() => parsePutPrecondition('1', undefined)), '400 bad_request');
    assert.equal(reason(() => parsePutPrecondition(undefined, '"1"')), '400 bad_request');
    assert.equal(parseVersionTag('"0"'), undefined);
    assert.equal(parseDeletePrecondition(undefined), undefined);
    assert.equal(parseDeletePrecondition('"3"'), 3);
  });

  it('validates the PUT body and the decoded blob size', () => {
    const data = Buffer.alloc(100, 7).toString('base64');
    assert.equal(parsePutBody(Buffer.from(JSON.stringify({ data })), 100), data);
    assert.equal(reason(() => parsePutBody(Buffer.from(JSON.stringify({ data })), 99)), '413 blob_too_large');
    assert.equal(reason(() => parsePutBody(Buffer.from('not json'), 100)), '400 bad_request');
    assert.equal(reason(() => parsePutBody(Buffer.from('[]'), 100)), '400 bad_request');
    assert.equal(reason(() => parsePutBody(Buffer.from('{"data":""}'), 100)), '400 bad_request');
    assert.equal(reason(() => parsePutBody(Buffer.from('{"data":"abc"}'), 100)), '400 bad_request');
    assert.equal(reason(() => parsePutBody(Buffer.from('{"data":"ab$="}'), 100)), '400 bad_request');
    assert.equal(reason(() => parsePutBody(Buffer.from('{"data":42}'), 100)), '400 bad_request');
  });

  it('sizes the body limit so the largest allowed blob fits', () => {
    const max = 100_000;
    const body = JSON.stringify({ data: Buffer.alloc(max).toString('base64') });
    assert.ok(Buffer.byteLength(body) <= maxBodyBytes(max));
    assert.ok(maxBodyBytes(max) < 1.5 * max, 'the body limit stays close to the blob limit');
  });

  it('validates the stream slot', () => {
    assert.equal(parseStreamSlot(null), undefined);
    assert.equal(parseStreamSlot(SLOT), SLOT);
    assert.equal(reason(() => parseStreamSlot('x')), '400 bad_request');
  });

  it('validates the stream lease (whole seconds, only with a slot)', () => {
    assert.equal(parseStreamLease(null, SLOT), undefined);
    assert.equal(parseStreamLease('30', SLOT), 30_000);
    assert.equal(parseStreamLease('3600', SLOT), 3_600_000);
    for (const bad of ['0', '3601', '1.5', '-1', '30s', ' 30', '99999']) assert.equal(reason(() => parseStreamLease(bad, SLOT)), '400 bad_request', bad);
    assert.equal(reason(() => parseStreamLease('30', undefined)), '400 bad_request');
  });
});
