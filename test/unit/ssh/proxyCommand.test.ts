import { strict as assert } from 'node:assert';
import { expandProxyCommand, proxyCommandArgv, ProxyCommandError } from '../../../src/ssh/proxyCommand';
import type { ResolvedHost } from '../../../src/ssh/sshConfig';

const host: ResolvedHost = {
  label: 'build-1',
  hostName: '10.0.0.5',
  user: 'builder',
  port: 2201,
  identityFiles: [],
  identitiesOnly: false,
  knownHostsFiles: [],
  proxyJump: [],
};

describe('ProxyCommand', () => {
  it('expands %h %p %r %n and %% as OpenSSH does', () => {
    assert.equal(expandProxyCommand('nc %h %p', host), 'nc 10.0.0.5 2201');
    assert.equal(expandProxyCommand('ssh -W %h:%p %r@bastion # %n 100%%', host), 'ssh -W 10.0.0.5:2201 builder@bastion # build-1 100%');
    assert.equal(expandProxyCommand('x %%h', host), 'x %h', 'one pass: %% is not expanded again');
  });

  it('%n is the host the user named, without a typed user or port', () => {
    assert.equal(expandProxyCommand('%n', { ...host, label: 'alice@web.example:2222' }), 'web.example');
  });

  it('refuses unknown tokens and a trailing %, as ssh does', () => {
    for (const command of ['nc %h %k', 'nc %h %']) {
      assert.throws(() => expandProxyCommand(command, host), (error: unknown) => ProxyCommandError.is(error) && error.reason === 'unknown-token', command);
    }
  });

  it('runs through the user\'s shell with exec on POSIX, and through the shell on Windows', () => {
    assert.deepEqual(proxyCommandArgv('nc a 22', 'linux', { SHELL: '/usr/bin/fish' }), { file: '/usr/bin/fish', args: ['-c', 'exec nc a 22'], shell: false });
    assert.deepEqual(proxyCommandArgv('nc a 22', 'darwin', {}), { file: '/bin/sh', args: ['-c', 'exec nc a 22'], shell: false });
    assert.deepEqual(proxyCommandArgv('nc a 22', 'win32', {}), { file: 'nc a 22', args: [], shell: true });
  });
});
