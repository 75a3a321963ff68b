import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import { AttachDriver, ChannelLifecycle, type DriverClose } from '../../../src/session/sessionDriver';

/** A FAKE ssh2 channel: only the events the lifecycle listens to. */
function fakeChannel(): ClientChannel & EventEmitter {
  const channel = new EventEmitter() as ClientChannel & EventEmitter;
  Object.assign(channel, { stderr: new EventEmitter(), close: () => channel.emit('close'), resume: () => undefined });
  return channel;
}

describe('session/ChannelLifecycle: the channel bookkeeping both drivers share', () => {
  it('reports the exit status once, to listeners added before and after the close', async () => {
    const channel = fakeChannel();
    const order: string[] = [];
    const lifecycle = new ChannelLifecycle(channel, () => order.push(`before (open: ${lifecycle.isOpen})`));
    const seen: DriverClose[] = [];
    lifecycle.onClose((info) => seen.push(info));
    channel.emit('exit', 3);
    channel.emit('error', new Error('reset'));
    channel.emit('close');
    channel.emit('close');
    assert.deepEqual(seen, [{ exitCode: 3 }], 'once, with the exit status');
    assert.deepEqual(order, ['before (open: false)']);
    assert.equal(lifecycle.isOpen, false);
    const late = await new Promise<DriverClose>((resolve) => lifecycle.onClose(resolve));
    assert.deepEqual(late, { exitCode: 3 }, 'a listener added after the close is not left waiting');
  });

  it('a signal or a missing status reads as exit code null', () => {
    const channel = fakeChannel();
    const lifecycle = new ChannelLifecycle(channel);
    const seen: DriverClose[] = [];
    lifecycle.onClose((info) => seen.push(info));
    channel.emit('exit', null, 'HUP');
    channel.emit('close');
    assert.deepEqual(seen, [{ exitCode: null }]);
  });

  it('AttachDriver: onClose after the channel closed still fires (it did not before)', async () => {
    const channel = fakeChannel();
    const driver = new AttachDriver(channel);
    channel.emit('exit', 0);
    channel.emit('close');
    assert.equal(driver.isOpen, false);
    const info = await Promise.race([new Promise<DriverClose>((resolve) => driver.onClose(resolve)), new Promise((resolve) => setTimeout(() => resolve('never'), 200))]);
    assert.deepEqual(info, { exitCode: 0 });
  });
});
