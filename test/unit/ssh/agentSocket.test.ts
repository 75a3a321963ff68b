import { strict as assert } from 'node:assert';
import { chooseAgent, WINDOWS_OPENSSH_AGENT_PIPE, type AgentEnvironment } from '../../../src/ssh/agentSocket';

function on(platform: NodeJS.Platform, env: NodeJS.ProcessEnv, pipes: string[] = []): AgentEnvironment {
  return { platform, env, pipeExists: (pipe) => pipes.includes(pipe) };
}

describe('chooseAgent (OpenSSH IdentityAgent rules, per platform)', () => {
  for (const platform of ['linux', 'darwin', 'win32'] as const) {
    describe(platform, () => {
      it('uses SSH_AUTH_SOCK when IdentityAgent is unset and the variable is set', () => {
        assert.deepEqual(chooseAgent(undefined, on(platform, { SSH_AUTH_SOCK: '/tmp/a.sock' }, [WINDOWS_OPENSSH_AGENT_PIPE])), { agent: '/tmp/a.sock', source: 'SSH_AUTH_SOCK' });
      });

      it('IdentityAgent none means no agent, even with SSH_AUTH_SOCK set', () => {
        assert.equal(chooseAgent('none', on(platform, { SSH_AUTH_SOCK: '/tmp/a.sock' })).agent, undefined);
      });

      it('IdentityAgent SSH_AUTH_SOCK reads the variable, and finds nothing when it is unset (no fallback)', () => {
        assert.equal(chooseAgent('SSH_AUTH_SOCK', on(platform, { SSH_AUTH_SOCK: '/tmp/a.sock' })).agent, '/tmp/a.sock');
        assert.equal(chooseAgent('SSH_AUTH_SOCK', on(platform, {}, [WINDOWS_OPENSSH_AGENT_PIPE])).agent, undefined);
      });

      it('IdentityAgent $VAR and ${VAR} read that variable', () => {
        const env = { OP_AGENT: '/Users/a/1password/agent.sock' };
        assert.equal(chooseAgent('$OP_AGENT', on(platform, env)).agent, env.OP_AGENT);
        assert.equal(chooseAgent('${OP_AGENT}', on(platform, env)).agent, env.OP_AGENT);
        assert.equal(chooseAgent('$MISSING', on(platform, env)).agent, undefined);
      });

      it('IdentityAgent <path> is used as given, before SSH_AUTH_SOCK', () => {
        assert.deepEqual(chooseAgent('/Users/a/Library/Containers/com.maxgoedjen.Secretive/socket.ssh', on(platform, { SSH_AUTH_SOCK: '/tmp/a.sock' })), {
          agent: '/Users/a/Library/Containers/com.maxgoedjen.Secretive/socket.ssh',
          source: 'IdentityAgent',
        });
      });
    });
  }

  it('linux and macOS without SSH_AUTH_SOCK: no agent (no Windows fallbacks)', () => {
    assert.equal(chooseAgent(undefined, on('linux', {}, [WINDOWS_OPENSSH_AGENT_PIPE])).agent, undefined);
    assert.equal(chooseAgent(undefined, on('darwin', {}, [WINDOWS_OPENSSH_AGENT_PIPE])).agent, undefined);
  });

  it('Windows without SSH_AUTH_SOCK: the OpenSSH agent pipe when it exists', () => {
    assert.deepEqual(chooseAgent(undefined, on('win32', {}, [WINDOWS_OPENSSH_AGENT_PIPE])), { agent: '\\\\.\\pipe\\openssh-ssh-agent', source: 'Windows OpenSSH agent' });
  });

  it('Windows without SSH_AUTH_SOCK and without the OpenSSH agent: Pageant', () => {
    assert.deepEqual(chooseAgent(undefined, on('win32', {}, [])), { agent: 'pageant', source: 'Pageant' });
  });

  it('Windows: an empty SSH_AUTH_SOCK counts as unset', () => {
    assert.equal(chooseAgent(undefined, on('win32', { SSH_AUTH_SOCK: '' }, [WINDOWS_OPENSSH_AGENT_PIPE])).agent, WINDOWS_OPENSSH_AGENT_PIPE);
  });

  it('Windows: IdentityAgent naming a pipe is used as is', () => {
    assert.equal(chooseAgent('\\\\.\\pipe\\my-agent', on('win32', {})).agent, '\\\\.\\pipe\\my-agent');
  });
});
