import * as assert from 'node:assert/strict';
import { ConcurrencyCounter, NewAccountLimiter } from '../../../src/server/ipLimits';

describe('server/ipLimits', () => {
  it('counts concurrent holders per key', () => {
    const counter = new ConcurrencyCounter();
    assert.ok(counter.tryAcquire('a', 2));
    assert.ok(counter.tryAcquire('a', 2));
    assert.ok(!counter.tryAcquire('a', 2));
    assert.ok(counter.tryAcquire('b', 2));
    counter.release('a');
    assert.ok(counter.tryAcquire('a', 2));
    counter.release('a');
    counter.release('a');
    counter.release('b');
    assert.equal(counter.size, 0);
  });

  it('lets an address start a bounded number of empty accounts per window', async () => {
    let now = 0;
    const limiter = new NewAccountLimiter({ maxPerWindow: 2, windowMs: 1000, now: () => now });
    const empty = async () => true;
    const existing = async () => false;
    assert.deepEqual(await limiter.admit('ip', 'a1', empty), { allowed: true, counted: true });
    assert.deepEqual(await limiter.admit('ip', 'a1', empty), { allowed: true, counted: false }, 'the same account again is free');
    assert.deepEqual(await limiter.admit('ip', 'a2', empty), { allowed: true, counted: true });
    const refused = await limiter.admit('ip', 'a3', empty);
    assert.equal(refused.allowed, false);
    if (!refused.allowed) assert.equal(refused.retryAfterMs, 1000);
    assert.deepEqual(await limiter.admit('ip', 'old', existing), { allowed: true, counted: false }, 'an account with slots is never refused');
    assert.deepEqual(await limiter.admit('other-ip', 'a3', empty), { allowed: true, counted: true }, 'budgets are per address');
    now = 1001;
    assert.deepEqual(await limiter.admit('ip', 'a3', empty), { allowed: true, counted: true }, 'the window slides');
  });

  it('does not spend the budget on an account that turns out to exist', async () => {
    const limiter = new NewAccountLimiter({ maxPerWindow: 1, now: () => 0 });
    for (let i = 0; i < 5; i++) assert.ok((await limiter.admit('ip', `existing${i}`, async () => false)).allowed);
    assert.ok((await limiter.admit('ip', 'new', async () => true)).allowed);
    assert.ok(!(await limiter.admit('ip', 'new2', async () => true)).allowed);
  });

  it('forgets the least recently active address beyond its bound', async () => {
    const limiter = new NewAccountLimiter({ maxPerWindow: 1, maxAddresses: 3, now: () => 0 });
    for (let i = 0; i < 10; i++) await limiter.admit(`ip${i}`, 'a', async () => true);
    assert.equal(limiter.addresses, 3);
  });
});
