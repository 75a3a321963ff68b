/**
 * The snapshot of a window's open Tether tabs, kept in workspaceState and written on every change
 * (never only at deactivate, which does not run after a crash). Decoding is tolerant: a corrupt
 * record is dropped on its own, an older format is migrated, garbage gives an empty snapshot.
 */
import { isValidSessionId, shortId } from '../common/sessionId';
import type { MultiplexerKind } from '../multiplexer/multiplexer';
import { META_LIMITS, cleanMetaText, decodeMetaValue } from '../multiplexer/sessionMetadata';

export const SNAPSHOT_FORMAT = 2;
export const SNAPSHOT_KEY = 'tether.snapshot';

export interface TabRecord {
  id: string;
  /** The host as the user named it (an ssh config alias or a typed user@host[:port]). */
  hostLabel: string;
  user: string;
  hostName: string;
  port: number;
  multiplexer: MultiplexerKind;
  name: string;
  location: 'panel' | 'editor';
  cwd?: string;
  startedAt: number;
  /** Set by Rename Session (here or on another device); the tab is named by it. */
  title?: string;
  /** tmux tabs: the version their scripts were built for ("3.3a"), so a restore need not detect. */
  tmuxVersion?: string;
}

/** A tab's name: its title, or `host · abc123`. */
export function tabName(record: Pick<TabRecord, 'hostLabel' | 'id' | 'title'>): string {
  return record.title ?? `${record.hostLabel} · ${shortId(record.id)}`;
}

export interface Snapshot {
  format: typeof SNAPSHOT_FORMAT;
  /** In tab order. */
  tabs: TabRecord[];
}

export interface DecodedSnapshot {
  tabs: TabRecord[];
  /** Records that were unreadable and left out. */
  dropped: number;
  /** Set when the stored value was not a snapshot at all. */
  corrupt: boolean;
}

const MAX_TABS = 200;
/** As formatVersion writes it: "3.3a", "3.4", "99.0master", "3.5-rc". */
const TMUX_VERSION = /^\d{1,3}\.\d{1,3}[a-z0-9-]{0,12}$/;
const MAX_TEXT = 1024;

export function encodeSnapshot(tabs: readonly TabRecord[]): Snapshot {
  return { format: SNAPSHOT_FORMAT, tabs: tabs.map((tab) => ({ ...tab })) };
}

/** Parses `title tether_<id> =<encoded>` lines (currentDirectories prints them beside the cwds). */
export function parseTitles(output: string): Map<string, string | undefined> {
  const result = new Map<string, string | undefined>();
  for (const line of output.split('\n')) {
    const match = /^title tether_([a-z2-7]{26}) =(\S*)$/.exec(line);
    if (match) result.set(match[1], decodeMetaValue(match[2], META_LIMITS.title));
  }
  return result;
}

export function decodeSnapshot(raw: unknown): DecodedSnapshot {
  if (raw === undefined || raw === null) return { tabs: [], dropped: 0, corrupt: false };
  let value = raw;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return { tabs: [], dropped: 0, corrupt: true };
    }
  }
  // Format 1 was a bare array of { sessionId, host, user, hostName, port, multiplexer, name }.
  if (Array.isArray(value)) value = { format: 1, tabs: value };
  if (!isObject(value) || !Array.isArray(value.tabs) || typeof value.format !== 'number' || value.format > SNAPSHOT_FORMAT) {
    return { tabs: [], dropped: 0, corrupt: true };
  }
  const format = value.format;
  const tabs: TabRecord[] = [];
  const seen = new Set<string>();
  let dropped = 0;
  for (const entry of value.tabs.slice(0, MAX_TABS)) {
    const record = format === 1 ? decodeV1(entry) : decodeV2(entry);
    if (!record || seen.has(record.id)) {
      dropped += 1;
      continue;
    }
    seen.add(record.id);
    tabs.push(record);
  }
  dropped += Math.max(0, value.tabs.length - MAX_TABS);
  return { tabs, dropped, corrupt: false };
}

function decodeV2(entry: unknown): TabRecord | undefined {
  // Format 2 stores records under their own field names; buildRecord checks every field.
  return isObject(entry) ? buildRecord(entry as Record<keyof TabRecord, unknown>) : undefined;
}

function decodeV1(entry: unknown): TabRecord | undefined {
  if (!isObject(entry)) return undefined;
  return buildRecord({
    id: entry.sessionId,
    hostLabel: entry.host,
    user: entry.user,
    hostName: entry.hostName ?? entry.host,
    port: entry.port ?? 22,
    multiplexer: entry.multiplexer ?? 'tmux',
    name: entry.name,
    location: 'panel',
    cwd: undefined,
    startedAt: undefined,
    title: undefined,
    tmuxVersion: undefined,
  });
}

function buildRecord(fields: Record<keyof TabRecord, unknown>): TabRecord | undefined {
  const { id, hostLabel, user, hostName, port, multiplexer, name, location, cwd, startedAt, tmuxVersion } = fields;
  const title = cleanMetaText(fields.title, META_LIMITS.title);
  if (!isValidSessionId(id)) return undefined;
  if (!isText(hostLabel) || !isText(user) || !isText(hostName)) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (multiplexer !== 'tmux' && multiplexer !== 'screen' && multiplexer !== 'none') return undefined;
  return {
    id,
    hostLabel,
    user,
    hostName,
    port,
    multiplexer,
    name: title ?? (isText(name) ? name : tabName({ hostLabel, id })),
    location: location === 'editor' ? 'editor' : 'panel',
    cwd: isText(cwd) ? cwd : undefined,
    startedAt: typeof startedAt === 'number' && Number.isFinite(startedAt) && startedAt > 0 ? startedAt : Date.now(),
    ...(title === undefined ? {} : { title }),
    ...(multiplexer === 'tmux' && typeof tmuxVersion === 'string' && TMUX_VERSION.test(tmuxVersion) ? { tmuxVersion } : {}),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT && !value.includes('\0');
}

/** Parses `<id> <cwd>` lines from a multiplexer's directory listing. */
export function parseDirectories(output: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const line of output.split('\n')) {
    const match = /^tether_([a-z2-7]{26}) (\/.*)$/.exec(line);
    if (match) result.set(match[1], match[2]);
  }
  return result;
}
