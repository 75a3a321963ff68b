/** Every Tether session a host runs, under tmux and screen, asked in one command. */
import type { HostCapabilities } from './multiplexer';
import { ScreenScripts } from './screenCommands';
import { SessionMetadata, hasMetadata, metadataFromFields, parseClientDevices } from './sessionMetadata';
import { META_KEYS, TmuxScripts, parseSessionLines } from './tmuxCommands';

export interface HostSession {
  id: string;
  multiplexer: 'tmux' | 'screen';
  /** tmux counts clients; screen only says attached (1) or detached (0). */
  attachedClients: number;
  createdAt?: number;
  /** What the session carries on the host (device, title, detach); absent when it carries none. */
  meta?: SessionMetadata;
  /** tmux: the devices of the attached Tether clients, one per client (unknown clients left out). */
  clientDevices?: string[];
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
  const tmuxText = section(tmuxStart, screenStart);
  const clients = new Map<string, string[]>();
  for (const line of tmuxText.split('\n')) {
    const match = /^client tether_([a-z2-7]{26}) (=\S*)$/.exec(line);
    if (match) clients.set(match[1], [...(clients.get(match[1]) ?? []), ...parseClientDevices([`client ${match[2]}`]).devices]);
  }
  for (const [id, rest] of parseSessionLines(tmuxText)) {
    const [attachedText, createdText, ...metaFields] = rest.split(' ');
    const attached = Number(attachedText);
    const created = Number(createdText);
    const fields = new Map<string, string>();
    META_KEYS.forEach((key, index) => {
      const field = metaFields[index];
      if (field?.startsWith('=') && field.length > 1) fields.set(key, field.slice(1));
    });
    const session: HostSession = { id, multiplexer: 'tmux', attachedClients: Number.isFinite(attached) ? attached : 0, createdAt: Number.isFinite(created) && created > 0 ? created * 1000 : undefined };
    const meta = metadataFromFields(fields);
    if (hasMetadata(meta)) session.meta = meta;
    if (clients.has(id)) session.clientDevices = clients.get(id);
    sessions.push(session);
  }
  const screenText = section(screenStart, tmuxStart);
  const screenMeta = new Map<string, Map<string, string>>();
  for (const line of screenText.split('\n')) {
    const match = /^meta tether_([a-z2-7]{26}) ([a-z_]+)=(\S*)$/.exec(line);
    if (!match) continue;
    const fields = screenMeta.get(match[1]) ?? new Map<string, string>();
    if (!fields.has(match[2])) fields.set(match[2], match[3]);
    screenMeta.set(match[1], fields);
  }
  for (const [id, rest] of parseSessionLines(screenText)) {
    const session: HostSession = { id, multiplexer: 'screen', attachedClients: /(^|[ ,])attached/i.test(rest) && !/detached/i.test(rest) ? 1 : 0 };
    const meta = metadataFromFields(screenMeta.get(id) ?? new Map());
    if (hasMetadata(meta)) session.meta = meta;
    if (meta.createdAt) session.createdAt = meta.createdAt;
    sessions.push(session);
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
