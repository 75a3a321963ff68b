import assert from 'node:assert/strict';
import { type SchedulerClock, type WriteOutcome, WriteScheduler } from '../../../src/sync/writeScheduler';

/** A fake clock: time moves only when the test says so (the scheduler's policy, no real timing). */
class FakeClock implements SchedulerClock {
  time = 1000;
  private timers = new Map<number, { due: number; callback: () => void }>();
  private nextId = 1;
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { due: this.time + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves time forward, firing due timers in order (and letting promise callbacks run between). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await settle();
      const next = [...this.timers.entries()].filter(([, t]) => t.due <= end).sort((a, b) => a[1].due - b[1].due)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = Math.max(this.time, next[1].due);
      next[1].callback();
    }
    this.time = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** A write that the test completes by hand, recording when each one started. */
class Writes {
  readonly starts: number[] = [];
  private pending: Array<(outcome?: WriteOutcome) => void> = [];
  constructor(private readonly clock: FakeClock) {}
  readonly write = (): Promise<WriteOutcome | void> => {
    this.starts.push(this.clock.now());
    return new Promise((resolve) => this.pending.push(resolve));
  };
  /** Completes the oldest running write. */
  async finish(outcome?: WriteOutcome): Promise<void> {
    const resolve = this.pending.shift();
    assert.ok(resolve, 'a write is running');
    resolve(outcome);
    await settle();
  }
  get running(): number {
    return this.pending.length;
  }
}

describe('write scheduler (fake clock)', () => {
  let clock: FakeClock;
  let writes: Writes;
  let scheduler: WriteScheduler;
  beforeEach(() => {
    clock = new FakeClock();
    writes = new Writes(clock);
    scheduler = new WriteScheduler(writes.write, { windowMs: 100, clock });
  });
  afterEach(() => scheduler.dispose());

  it('writes the first change after a quiet moment at once, in the same turn', () => {
    scheduler.changed();
    assert.deepEqual(writes.starts, [1000]);
  });

  it('makes at most two writes for a burst of 50 changes (one at once, one for the rest)', async () => {
    for (let i = 0; i < 50; i++) {
      scheduler.changed();
      await clock.advance(1);
    }
    assert.equal(writes.starts.length, 1, 'the rest wait while the first write runs');
    await clock.advance(5);
    await writes.finish();
    await clock.advance(200);
    assert.equal(writes.starts.length, 2);
    // The follow-up goes at the end of the window measured from the first write's start.
    assert.equal(writes.starts[1], 1100);
    await writes.finish();
    await clock.advance(1000);
    assert.equal(writes.starts.length, 2, 'nothing more once the burst is written');
  });

  it('groups a synchronous burst the same way', async () => {
    for (let i = 0; i < 1000; i++) scheduler.changed();
    await writes.finish();
    await clock.advance(100);
    assert.equal(writes.starts.length, 2);
    await writes.finish();
    await clock.advance(500);
    assert.equal(writes.starts.length, 2);
  });

  it('writes a change that follows a finished write at the end of the window, and one after a pause at once', async () => {
    scheduler.changed();
    await clock.advance(10);
    await writes.finish();
    await clock.advance(20); // t = 1030: inside the window
    scheduler.changed();
    assert.equal(writes.starts.length, 1);
    assert.equal(scheduler.scheduledIn, 70);
    await clock.advance(70);
    assert.deepEqual(writes.starts, [1000, 1100]);
    await writes.finish();
    await clock.advance(300); // quiet again
    scheduler.changed();
    assert.deepEqual(writes.starts, [1000, 1100, 1400]);
  });

  it('never runs two writes at once, and a change during a write gets a follow-up after it', async () => {
    scheduler.changed();
    await clock.advance(500); // a slow write: longer than the window
    scheduler.changed();
    assert.equal(writes.running, 1);
    await writes.finish();
    assert.deepEqual(writes.starts, [1000, 1500], 'the window is over, so the follow-up goes at once');
  });

  it('a burst longer than the window makes at most one write per window', async () => {
    for (let t = 0; t < 1000; t += 5) {
      scheduler.changed();
      await clock.advance(5);
      if (writes.running) await writes.finish();
    }
    await clock.advance(200);
    if (writes.running) await writes.finish();
    assert.ok(writes.starts.length <= 11, `${writes.starts.length} writes for 200 changes over 1 s`);
    for (let i = 1; i < writes.starts.length; i++) assert.ok(writes.starts[i]! - writes.starts[i - 1]! >= 100);
  });

  it('retries a failed write after its backoff, with the changes made meanwhile', async () => {
    scheduler.changed();
    scheduler.changed();
    await writes.finish({ retryInMs: 2000 });
    assert.equal(scheduler.scheduledIn, 2000);
    scheduler.changed(); // rides along with the retry, does not cut the backoff short
    await clock.advance(1999);
    assert.equal(writes.starts.length, 1);
    await clock.advance(1);
    assert.equal(writes.starts.length, 2);
    await writes.finish();
    await clock.advance(1000);
    assert.equal(writes.starts.length, 2);
  });

  it('retryIn(0) cuts a backoff short (the server is back)', async () => {
    scheduler.changed();
    await writes.finish({ retryInMs: 60_000 });
    scheduler.retryIn(0);
    assert.equal(writes.starts.length, 2);
  });

  it('flush waits for the running write, then writes at once', async () => {
    scheduler.changed();
    scheduler.changed();
    const flushed = scheduler.flush();
    let done = false;
    void flushed.then(() => (done = true));
    await settle();
    assert.equal(done, false);
    await writes.finish();
    assert.equal(writes.starts.length, 2, 'the flush wrote without waiting for the window');
    await writes.finish();
    await flushed;
    await clock.advance(1000);
    assert.equal(writes.starts.length, 2, 'no stray follow-up after the flush');
  });

  it('does nothing after dispose', async () => {
    scheduler.changed();
    scheduler.changed();
    scheduler.dispose();
    await writes.finish();
    await clock.advance(1000);
    scheduler.changed();
    assert.equal(writes.starts.length, 1);
  });

  it('with a window of 0 every change is written, one write at a time', async () => {
    const zero = new WriteScheduler(writes.write, { windowMs: 0, clock });
    zero.changed();
    zero.changed();
    zero.changed();
    assert.equal(writes.starts.length, 1);
    await writes.finish();
    assert.equal(writes.starts.length, 2, 'the two changes made during the write go in one write');
    await writes.finish();
    assert.equal(writes.starts.length, 2);
    zero.dispose();
  });
});
