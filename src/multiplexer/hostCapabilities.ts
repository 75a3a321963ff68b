/** What a host offers (tmux and screen versions, OS), detected once per host and shared by every caller. */
import { ConnectionPool, type SshConnection } from '../ssh/sshConnection';
import type { ResolvedHost } from '../ssh/sshConfig';
import { type HostCapabilities, type MultiplexerScripts, detectScript, parseDetectOutput } from './multiplexer';
import { ScreenScripts } from './screenCommands';
import { TmuxScripts } from './tmuxCommands';

/** Capabilities per host (ConnectionPool.keyOf: user, address, port and hops), not per
 * connection: a reconnect does not detect again. A script that answers `unsupported` (or a failed
 * create) forgets the entry, and the next use detects again (issue 16). */
const capabilityCache = new Map<string, Promise<HostCapabilities>>();

/** What the host offers, asked once per host. */
export function hostCapabilities(connection: SshConnection, timeoutMs?: number): Promise<HostCapabilities> {
  const key = ConnectionPool.keyOf(connection.host);
  let cached = capabilityCache.get(key);
  if (!cached) {
    const detecting = connection.runScript(detectScript(), timeoutMs).then((result) => parseDetectOutput(result.output));
    detecting.catch(() => {
      if (capabilityCache.get(key) === detecting) capabilityCache.delete(key);
    });
    capabilityCache.set(key, detecting);
    cached = detecting;
  }
  return cached;
}

/** Drops a host's cached capabilities: the next use detects again. */
export function forgetHostCapabilities(host: ResolvedHost): void {
  capabilityCache.delete(ConnectionPool.keyOf(host));
}

export function scriptsFor(kind: 'tmux' | 'screen', capabilities: HostCapabilities): MultiplexerScripts {
  if (kind === 'tmux') return new TmuxScripts(capabilities.tmux ?? { major: 3, minor: 0, suffix: '' });
  return new ScreenScripts();
}
