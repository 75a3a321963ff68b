/**
 * Which ssh-agent a connection talks to, decided the way OpenSSH decides it (ssh_config(5)
 * IdentityAgent; Win32-OpenSSH's default pipe), as a pure function so every platform is unit-tested.
 *
 * The result is what ssh2's createAgent() understands: a Unix socket path, a Windows named pipe
 * path, 'pageant' (ssh2's PageantAgent), or, on Windows, any other path for a Cygwin/MSYS agent.
 */

/** Where Win32-OpenSSH's ssh-agent service listens. */
export const WINDOWS_OPENSSH_AGENT_PIPE = '\\\\.\\pipe\\openssh-ssh-agent';

export interface AgentChoice {
  /** What to hand ssh2, or undefined for no agent. */
  agent: string | undefined;
  /** Where it came from, for the log: "IdentityAgent", "SSH_AUTH_SOCK", "Windows OpenSSH agent", … */
  source: string;
}

export interface AgentEnvironment {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  /** Whether a Windows named pipe exists (fs.existsSync works on \\.\pipe\ paths). */
  pipeExists: (pipe: string) => boolean;
}

/**
 * `identityAgent` is the host's IdentityAgent as sshConfig resolved it: undefined (not set),
 * 'none', 'SSH_AUTH_SOCK', '$VAR', or a path.
 */
export function chooseAgent(identityAgent: string | undefined, where: AgentEnvironment): AgentChoice {
  if (identityAgent !== undefined) {
    if (identityAgent === 'none') return { agent: undefined, source: 'IdentityAgent none' };
    if (identityAgent === 'SSH_AUTH_SOCK') return fromVariable('SSH_AUTH_SOCK', where);
    if (identityAgent.startsWith('$')) return fromVariable(identityAgent.slice(1).replace(/^\{(.*)\}$/, '$1'), where);
    return { agent: identityAgent, source: 'IdentityAgent' };
  }
  const fromEnv = fromVariable('SSH_AUTH_SOCK', where);
  if (fromEnv.agent !== undefined || where.platform !== 'win32') return fromEnv;
  // Windows without SSH_AUTH_SOCK: the OpenSSH agent service first (what Windows' own ssh.exe
  // uses), then Pageant (PuTTY's agent, which ssh2 reaches through its window messages).
  if (where.pipeExists(WINDOWS_OPENSSH_AGENT_PIPE)) return { agent: WINDOWS_OPENSSH_AGENT_PIPE, source: 'Windows OpenSSH agent' };
  return { agent: 'pageant', source: 'Pageant' };
}

function fromVariable(name: string, where: AgentEnvironment): AgentChoice {
  const value = where.env[name];
  return value ? { agent: value, source: name } : { agent: undefined, source: `${name} (unset)` };
}
