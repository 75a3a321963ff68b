/** Every Tether session a host runs, under tmux and screen, asked in one command. */
import type { HostCapabilities } from './multiplexer';
import { ScreenScripts } from './screenCommands';
import { TmuxScripts, parseSessionLines } from './tmuxCommands';

export interface HostSession {
  id: string;
  multiplexer: 'tmux' | 'screen';
  /** tmux counts clients; screen only says attached (1) or detached (0). */
  attachedClients: number;
  createdAt?: number;
}

const TMUX_MARK = '== tmux';
const SCREEN_MARK = '== screen';

export function inventoryScript(capabilities: HostCapabilities): string {
  const parts: string[] = [];
  if (capabilities.tmux) parts.push(`echo '${TMUX_MARK}'`, `( ${new TmuxScripts(capabilities.tmux).listSessions().replace(/\n/g, '; ')} )`);
  if (capabilities.screen) parts.push(`echo '${SCREEN_MARK}'`, `( ${new ScreenScripts().listSessions().replace(/\n/g, '; ')} )`);
  return parts.join('\n') || 'true';
}

export function parseInventory(output: string): HostSession[] {
  const sessions: HostSession[] = [];
  const tmuxStart = output.indexOf(`${TMUX_MARK}\n`);
  const screenStart = output.indexOf(`${SCREEN_MARK}\n`);
  const section = (start: number, other: number): string => (start < 0 ? '' : output.slice(start, other > start ? other : undefined));
  for (const [id, rest] of parseSessionLines(section(tmuxStart, screenStart))) {
    const [attached, created] = rest.split(' ').map(Number);
    sessions.push({ id, multiplexer: 'tmux', attachedClients: Number.isFinite(attached) ? attached : 0, createdAt: Number.isFinite(created) && created > 0 ? created * 1000 : undefined });
  }
  for (const [id, rest] of parseSessionLines(section(screenStart, tmuxStart))) {
    sessions.push({ id, multiplexer: 'screen', attachedClients: /(^|[ ,])attached/i.test(rest) && !/detached/i.test(rest) ? 1 : 0 });
  }
  return sessions;
}

/**
 * Listed sessions that the host's inventory proves gone. A session counts as gone only when the
 * inventory covered its multiplexer (a host whose tmux vanished from PATH proves nothing).
 */
export function provenGone(listed: readonly { id: string; multiplexer: 'tmux' | 'screen' }[], output: string): string[] {
  const covered = new Set<string>();
  if (output.includes(`${TMUX_MARK}\n`)) covered.add('tmux');
  if (output.includes(`${SCREEN_MARK}\n`)) covered.add('screen');
  const present = new Set(parseInventory(output).map((session) => session.id));
  return listed.filter((session) => covered.has(session.multiplexer) && !present.has(session.id)).map((session) => session.id);
}
