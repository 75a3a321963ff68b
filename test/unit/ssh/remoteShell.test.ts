import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Client, ClientChannel } from 'ssh2';
import { RemoteCommandError, channelOpenError } from '../../../src/ssh/remoteExec';
import { isChannelRefusal } from '../../../src/ssh/sshConnection';
import { RemoteShell } from '../../../src/ssh/remoteShell';

/**
 * A fake ssh2 client: `exec` runs the command with the local sh instead of over ssh (the
 * integration suite runs RemoteShell against a real sshd). Counts the channels it opened.
 */
function localClient(): { client: Client; execs: () => number } {
  let execs = 0;
  const client = {
    exec(command: string, callback: (error: Error | undefined, channel: ClientChannel) => void) {
      execs++;
      const child = spawn('sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
      const channel = Object.assign(new EventEmitter(), {
        stderr: child.stderr,
        write: (data: string) => child.stdin.write(data),
        end: () => child.stdin.end(),
        close: () => child.kill('SIGKILL'),
      });
      child.stdout.on('data', (chunk: Buffer) => channel.emit('data', chunk));
      child.stdin.on('error', () => undefined);
      child.on('close', () => channel.emit('close'));
      callback(undefined, channel as unknown as ClientChannel);
    },
  };
  return { client: client as unknown as Client, execs: () => execs };
}

describe('RemoteShell (one long-lived sh for many scripts)', () => {
  it('runs scripts one after another on one channel, each in its own subshell', async () => {
    const { client, execs } = localClient();
    const shell = new RemoteShell(client, { timeoutMs: 10_000 });
    try {
      // `exit` and `cd` end with the request; the next one starts where the shell was.
      assert.deepEqual((await shell.run('cd /; pwd; exit 3')).lines, ['/']);
      const answers = await Promise.all([shell.run('echo one'), shell.run('echo two; echo three'), shell.run('true')]);
      assert.deepEqual(answers.map((a) => a.lines), [['one'], ['two', 'three'], []]);
      assert.equal(execs(), 1);
    } finally {
      shell.close();
    }
  });

  it('gives a script its input as a quoted here-document, and nothing of the next request', async () => {
    const { client } = localClient();
    const shell = new RemoteShell(client, { timeoutMs: 10_000 });
    try {
      const first = shell.run('cat; echo end', 'QUJD$HOME`id`');
      const second = shell.run('cat; echo end');
      assert.deepEqual((await first).lines, ['QUJD$HOME`id`', 'end']);
      assert.deepEqual((await second).lines, ['end'], 'stdin is /dev/null without input');
      await assert.rejects(shell.run('cat', 'two\nlines'), TypeError);
    } finally {
      shell.close();
    }
  });

  it('ends itself on a timeout or an oversized answer, and says so', async () => {
    const { client } = localClient();
    const slow = new RemoteShell(client, { timeoutMs: 300 });
    await assert.rejects(slow.run('sleep 5'), (error: unknown) => RemoteCommandError.is(error) && error.reason === 'timeout');
    assert.equal(slow.alive, false);
    await assert.rejects(slow.run('echo late'), RemoteCommandError);

    const big = new RemoteShell(client, { timeoutMs: 10_000 });
    const answer = await big.run('echo first; head -c 100000 /dev/zero | tr "\\0" x; echo', undefined, 1000);
    assert.equal(answer.cut, true);
    assert.equal(big.alive, false);
  });

  it('fails the running request when the shell dies, and does not answer for it later', async () => {
    const { client } = localClient();
    const shell = new RemoteShell(client, { timeoutMs: 10_000 });
    await assert.rejects(shell.run('kill -9 $$; sleep 1; echo never'), RemoteCommandError);
    assert.equal(shell.alive, false);
  });
});

describe('ssh/channelOpenError: a refusal is told by its SSH reason, not its text', () => {
  it('marks an error that carries an SSH reason (CHANNEL_OPEN_FAILURE) as refused, anything else not', () => {
    const refused = Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 1 });
    const closedInstead = Object.assign(new Error('(SSH) Channel open failure: server closed channel unexpectedly'), { reason: '' });
    const notConnected = new Error('No response from server: channel open failure refused administratively prohibited');
    assert.equal(isChannelRefusal(channelOpenError(refused)), true);
    assert.equal(isChannelRefusal(channelOpenError(closedInstead)), true);
    assert.equal(isChannelRefusal(channelOpenError(notConnected)), false, 'words in a message decide nothing');
    assert.equal(channelOpenError(notConnected).reason, 'channel');
  });
});
