import { strict as assert } from 'node:assert';
import { DEFAULT_RECONNECT_POLICY, ReconnectPolicy } from '../../../src/session/reconnectPolicy';

const noJitter = { baseDelayMs: 100, maxDelayMs: 5000, jitter: 0 };

function delays(policy: ReconnectPolicy, count: number): number[] {
  return Array.from({ length: count }, () => policy.nextDelay());
}

describe('ReconnectPolicy', () => {
  it('retries at once first', () => {
    assert.equal(new ReconnectPolicy(noJitter).nextDelay(), 0);
    assert.equal(new ReconnectPolicy().nextDelay(), 0);
    // Even with jitter at its maximum and any random value.
    assert.equal(new ReconnectPolicy({ ...noJitter, jitter: 1 }, () => 0.99).nextDelay(), 0);
  });

  it('doubles from the base delay and stops at the cap', () => {
    assert.deepEqual(delays(new ReconnectPolicy(noJitter), 10), [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    assert.deepEqual(delays(new ReconnectPolicy({ baseDelayMs: 500, maxDelayMs: 5000, jitter: 0 }), 7), [0, 500, 1000, 2000, 4000, 5000, 5000]);
  });

  it('never exceeds the cap, even after very many attempts', () => {
    const policy = new ReconnectPolicy(noJitter);
    for (let i = 0; i < 10_000; i++) {
      const delay = policy.nextDelay();
      assert.ok(Number.isFinite(delay) && delay >= 0 && delay <= 5000, `attempt ${i}: ${delay}`);
    }
    assert.equal(policy.nextDelay(), 5000);
  });

  it('caps a base delay that is larger than the cap', () => {
    assert.deepEqual(delays(new ReconnectPolicy({ baseDelayMs: 9000, maxDelayMs: 1000, jitter: 0 }), 3), [0, 1000, 1000]);
  });

  it('spreads each delay over [(1 - jitter) × delay, delay] with the injected random', () => {
    const options = { baseDelayMs: 1000, maxDelayMs: 8000, jitter: 0.5 };
    // random() = 0 gives the full delay; random() → 1 gives the lower bound.
    assert.deepEqual(delays(new ReconnectPolicy(options, () => 0), 5), [0, 1000, 2000, 4000, 8000]);
    assert.deepEqual(delays(new ReconnectPolicy(options, () => 0.999999), 5), [0, 500, 1000, 2000, 4000]);
    assert.deepEqual(delays(new ReconnectPolicy(options, () => 0.5), 5), [0, 750, 1500, 3000, 6000]);
    // Bounds hold for every random value in [0, 1).
    for (let r = 0; r < 1; r += 0.01) {
      const policy = new ReconnectPolicy(options, () => r);
      policy.nextDelay();
      for (const full of [1000, 2000, 4000, 8000, 8000]) {
        const delay = policy.nextDelay();
        assert.ok(delay >= full * 0.5 && delay <= full, `r=${r}: ${delay} not in [${full / 2}, ${full}]`);
      }
    }
  });

  it('uses the random source for every attempt after the first', () => {
    let calls = 0;
    const policy = new ReconnectPolicy({ baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.3 }, () => {
      calls++;
      return 0.25;
    });
    policy.nextDelay();
    assert.equal(calls, 0);
    delays(policy, 4);
    assert.equal(calls, 4);
  });

  it('clamps jitter into [0, 1]', () => {
    assert.deepEqual(delays(new ReconnectPolicy({ ...noJitter, jitter: -2 }, () => 0.9), 3), [0, 100, 200]);
    assert.deepEqual(delays(new ReconnectPolicy({ ...noJitter, jitter: 7 }, () => 0.5), 3), [0, 50, 100]);
    for (const delay of delays(new ReconnectPolicy({ ...noJitter, jitter: 7 }, () => 0.999), 20)) assert.ok(delay >= 0);
  });

  it('returns whole milliseconds', () => {
    const policy = new ReconnectPolicy({ baseDelayMs: 333, maxDelayMs: 5000, jitter: 0.37 }, () => 0.123456);
    for (const delay of delays(policy, 12)) assert.ok(Number.isInteger(delay), String(delay));
  });

  it('counts attempts and starts over on reset', () => {
    const policy = new ReconnectPolicy(noJitter);
    assert.equal(policy.attempts, 0);
    delays(policy, 4);
    assert.equal(policy.attempts, 4);
    policy.reset();
    assert.equal(policy.attempts, 0);
    assert.deepEqual(delays(policy, 3), [0, 100, 200]);
    assert.equal(policy.attempts, 3);
  });

  it('has sensible defaults', () => {
    assert.deepEqual(DEFAULT_RECONNECT_POLICY, { baseDelayMs: 500, maxDelayMs: 5000, jitter: 0.5 });
    const policy = new ReconnectPolicy(undefined, () => 0);
    assert.deepEqual(delays(policy, 6), [0, 500, 1000, 2000, 4000, 5000]);
  });
});
