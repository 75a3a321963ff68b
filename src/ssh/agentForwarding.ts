import { assertSessionId } from '../common/sessionId';

/**
 * Agent forwarding that survives reconnects (docs/architecture.md, "Agent forwarding").
 *
 * sshd gives each connection its own forwarded socket (/tmp/ssh-XXXX/agent.N), gone when the
 * connection drops. A shell inside a persistent session keeps the SSH_AUTH_SOCK it started with,
 * so it gets a stable path instead: ~/.tether/agent/<id>.sock (directory mode 700), a symlink that
 * this script re-points at the current connection's socket before every create, attach and
 * reconnect. The last device to attach wins; its socket is the one that certainly exists.
 */
export const AGENT_DIR = '$HOME/.tether/agent';

/** Prints `linked` once the session's link points at this connection's forwarded socket, or `no-agent`. */
export function agentLinkScript(id: string): string {
  assertSessionId(id);
  return [
    `d="${AGENT_DIR}"`,
    '{ [ -n "$SSH_AUTH_SOCK" ] && [ -S "$SSH_AUTH_SOCK" ]; } || { echo no-agent; exit 0; }',
    '(umask 077 && mkdir -p "$d") && chmod 700 "$d" || exit 1',
    `l="$d/${id}.sock"`,
    't="$l.$$"',
    // A new link renamed over the old one: a reader never sees the path missing.
    'ln -s "$SSH_AUTH_SOCK" "$t" && mv -f "$t" "$l" || { rm -f "$t"; exit 1; }',
    'echo linked',
  ].join('\n');
}

export type AgentLinkResult = 'linked' | 'no-agent' | 'failed';

export function parseAgentLinkOutput(output: string): AgentLinkResult {
  if (/^linked$/m.test(output)) return 'linked';
  if (/^no-agent$/m.test(output)) return 'no-agent';
  return 'failed';
}
