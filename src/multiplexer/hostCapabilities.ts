/** What a host offers (tmux and screen versions, OS), detected once per host and shared by every caller. */
import type { SshConnection } from '../ssh/sshConnection';
import { HostFact } from '../ssh/hostFacts';
import { type HostCapabilities, type MultiplexerScripts, detectScript, parseDetectOutput } from './multiplexer';
import { ScreenScripts } from './screenCommands';
import { TmuxScripts } from './tmuxCommands';

/** Kept per host by the connection's pool (HostFacts), not per connection: a reconnect does not
 * detect again. A script that answers `unsupported` (or a failed create) forgets it, and the next
 * use detects again (issue 16). */
const CAPABILITIES = new HostFact<HostCapabilities>('capabilities');

/** What the host offers, asked once per host. */
export function hostCapabilities(connection: SshConnection, timeoutMs?: number): Promise<HostCapabilities> {
  return connection.facts.learn(connection.host, CAPABILITIES, async () => parseDetectOutput((await connection.runScript(detectScript(), timeoutMs)).output));
}

/** What is known about the host or being detected; never detects. */
export function knownHostCapabilities(connection: SshConnection): Promise<HostCapabilities> | undefined {
  return connection.facts.peek(connection.host, CAPABILITIES);
}

/** Drops the host's cached capabilities: the next use detects again. */
export function forgetHostCapabilities(connection: SshConnection): void {
  connection.facts.forget(connection.host, CAPABILITIES);
}

export function scriptsFor(kind: 'tmux' | 'screen', capabilities: Pick<HostCapabilities, 'tmux'>): MultiplexerScripts {
  if (kind === 'tmux') return new TmuxScripts(capabilities.tmux ?? { major: 3, minor: 0, suffix: '' });
  return new ScreenScripts();
}
