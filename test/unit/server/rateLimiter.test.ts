import * as assert from 'node:assert/strict';
import { TokenBucketLimiter } from '../../../src/server/rateLimiter';

describe('server/rateLimiter', () => {
  let clock = 0;
  const now = (): number => clock;
  beforeEach(() => {
    clock = 1_000;
  });

  it('allows a burst, then refuses with a retry hint', () => {
    const limiter = new TokenBucketLimiter({ ratePerSecond: 2, burst: 3, now });
    for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take('a'), { allowed: true });
    const refused = limiter.take('a');
    assert.equal(refused.allowed, false);
    if (!refused.allowed) assert.equal(refused.retryAfterMs, 500);
  });

  it('refills at the configured rate and never above the burst', () => {
    const limiter = new TokenBucketLimiter({ ratePerSecond: 2, burst: 2, now });
    limiter.take('a');
    limiter.take('a');
    assert.equal(limiter.take('a').allowed, false);
    clock += 500;
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, false);
    clock += 60_000;
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, false, 'a long pause must not bank more than the burst');
  });

  it('keeps keys independent', () => {
    const limiter = new TokenBucketLimiter({ ratePerSecond: 1, burst: 1, now });
    assert.equal(limiter.take('a').allowed, true);
    assert.equal(limiter.take('a').allowed, false);
    assert.equal(limiter.take('b').allowed, true);
  });

  it('bounds the number of tracked keys', () => {
    const limiter = new TokenBucketLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 10, now });
    for (let i = 0; i < 100; i++) limiter.take(`ip${i}`);
    assert.ok(limiter.size <= 10, `tracked ${limiter.size} keys`);
    // The most recent key is still throttled after eviction of older ones.
    assert.equal(limiter.take('ip99').allowed, false);
  });

  it('rejects nonsense configuration', () => {
    assert.throws(() => new TokenBucketLimiter({ ratePerSecond: 0, burst: 1 }), RangeError);
    assert.throws(() => new TokenBucketLimiter({ ratePerSecond: 1, burst: 0 }), RangeError);
  });
});
