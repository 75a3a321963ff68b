import assert from 'node:assert/strict';
import { KeyedMutex } from '../../../src/common/keyedMutex';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('KeyedMutex', () => {
  it('lets one holder per key run at a time, in arrival order', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const work = (name: string) => async (): Promise<void> => {
      events.push(`${name} in`);
      await tick();
      await tick();
      events.push(`${name} out`);
    };
    await Promise.all([mutex.run('host', work('a')), mutex.run('host', work('b')), mutex.run('host', work('c'))]);
    assert.deepEqual(events, ['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
    assert.equal(mutex.busyKeys, 0, 'nothing is left behind');
  });

  it('does not serialise different keys', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const work = (name: string) => async (): Promise<void> => {
      events.push(`${name} in`);
      await tick();
      events.push(`${name} out`);
    };
    await Promise.all([mutex.run('one', work('a')), mutex.run('two', work('b'))]);
    assert.deepEqual(events, ['a in', 'b in', 'a out', 'b out']);
  });

  it('hands the key on when released early, and a second release is harmless', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const first = mutex.run('host', async (release) => {
      events.push('a in');
      release();
      release();
      await tick();
      await tick();
      events.push('a out');
    });
    const second = mutex.run('host', async () => {
      events.push('b in');
    });
    await Promise.all([first, second]);
    assert.deepEqual(events, ['a in', 'b in', 'a out']);
  });

  it('releases the key when the work throws', async () => {
    const mutex = new KeyedMutex();
    await assert.rejects(
      mutex.run('host', async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await mutex.run('host', async () => 'next'), 'next');
    assert.equal(mutex.busyKeys, 0);
  });
});
