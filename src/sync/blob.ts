import { isValidSessionId } from '../common/sessionId';
import { ReasonError } from '../common/reasonError';

/**
 * The plaintext sync blob: one slot's view of its live sessions (docs/architecture.md, Sync key, envelope and blob).
 * Everything read from another device is untrusted: `validateBlob` rebuilds each value from
 * checked fields only, and drops bad entries one by one.
 */
export const BLOB_FORMAT = 1;
export const TOMBSTONE_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Allowed clock skew between devices before a time counts as "in the future". */
export const MAX_CLOCK_SKEW_MS = 24 * 60 * 60 * 1000;
/** Nothing in Tether predates this; earlier times are garbage. */
const EARLIEST_TIME_MS = Date.UTC(2020, 0, 1);

export const LIMITS = {
  sessions: 500,
  tombstones: 2000,
  deviceName: 64,
  hostLabel: 255,
  user: 64,
  hostName: 255,
  cwd: 4096,
  title: 256,
} as const;

export type Multiplexer = 'tmux' | 'screen';

export interface SessionEntry {
  readonly id: string;
  /** The Host alias the user knows the machine by (display only). */
  readonly hostLabel: string;
  readonly user: string;
  /** What to connect to, so a device without that Host entry can still join (docs/architecture.md, Remote commands). */
  readonly hostName: string;
  readonly port: number;
  readonly multiplexer: Multiplexer;
  readonly cwd: string;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly title?: string;
}

export interface Tombstone {
  readonly id: string;
  /** Epoch milliseconds. */
  readonly killedAt: number;
}

export interface SyncBlob {
  readonly format: typeof BLOB_FORMAT;
  readonly slotId: string;
  readonly deviceName: string;
  readonly seq: number;
  /** Epoch milliseconds. */
  readonly writtenAt: number;
  readonly sessions: readonly SessionEntry[];
  readonly tombstones: readonly Tombstone[];
}

export type BlobErrorReason = 'not-object' | 'format' | 'slot' | 'seq' | 'device-name' | 'written-at' | 'sessions' | 'tombstones';

/** The blob's envelope fields are unusable, so the whole blob is refused. */
export class BlobError extends ReasonError<BlobErrorReason> {
  override readonly name = 'BlobError';
}

export interface ValidatedBlob {
  readonly blob: SyncBlob;
  /** How many session and tombstone entries were dropped as malformed (for the log). */
  readonly dropped: number;
}

// C0 and C1 controls, DEL, and the Unicode bidi overrides that can disguise text in a tree view.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
// ANSI escape sequences (CSI, OSC, and single-character escapes), removed whole so no payload is left behind.
// eslint-disable-next-line no-control-regex
const ANSI_SEQUENCE = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[@-Z\\-_])|\u009b[0-?]*[ -/]*[@-~]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS_GLOBAL = new RegExp(CONTROL_CHARS.source, 'g');

/** SSH user names: a conservative POSIX-ish set; never starts with '-', so it can't become an option. */
const USER_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$/;
/** DNS names, IPv4 and IPv6 literals; never starts with '-'. */
const HOST_NAME_PATTERN = /^[A-Za-z0-9_.:[\]%][A-Za-z0-9_.:[\]%-]*$/;

function own(record: Record<string, unknown>, key: string): unknown {
  // Only own properties: a polluted Object.prototype must not supply a missing field.
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** For text that is only ever shown: strip escapes and controls, trim, bound the length. */
export function cleanDisplayString(value: unknown, maxLength: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (value.length > maxLength * 4) return undefined; // far beyond the bound: garbage, not a long name
  const cleaned = value.replace(ANSI_SEQUENCE, '').replace(CONTROL_CHARS_GLOBAL, '').trim();
  if (cleaned.length === 0 || cleaned.length > maxLength) return undefined;
  return cleaned;
}

/** For text that reaches a connection or a command (quoted): any control character rejects it. */
function strictString(value: unknown, maxLength: number, pattern?: RegExp): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) return undefined;
  if (CONTROL_CHARS.test(value)) return undefined;
  if (pattern && !pattern.test(value)) return undefined;
  return value;
}

function saneTime(value: unknown, now: number): number | undefined {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) return undefined;
  if (value < EARLIEST_TIME_MS || value > now + MAX_CLOCK_SKEW_MS) return undefined;
  return value;
}

function validateSession(value: unknown, now: number): SessionEntry | undefined {
  if (!isRecord(value)) return undefined;
  const id = own(value, 'id');
  if (!isValidSessionId(id)) return undefined;
  const hostLabel = cleanDisplayString(own(value, 'hostLabel'), LIMITS.hostLabel);
  const user = strictString(own(value, 'user'), LIMITS.user, USER_PATTERN);
  const hostName = strictString(own(value, 'hostName'), LIMITS.hostName, HOST_NAME_PATTERN);
  const port = own(value, 'port');
  const multiplexer = own(value, 'multiplexer');
  // cwd is data for a quoted `-c` argument: shell metacharacters are kept, control characters are not.
  const cwd = strictString(own(value, 'cwd'), LIMITS.cwd);
  const startedAt = saneTime(own(value, 'startedAt'), now);
  if (hostLabel === undefined || user === undefined || hostName === undefined || cwd === undefined || startedAt === undefined) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (multiplexer !== 'tmux' && multiplexer !== 'screen') return undefined;
  const rawTitle = own(value, 'title');
  let title: string | undefined;
  if (rawTitle !== undefined && rawTitle !== null) {
    title = cleanDisplayString(rawTitle, LIMITS.title);
    if (title === undefined && !(typeof rawTitle === 'string' && rawTitle.trim() === '')) return undefined;
  }
  return title === undefined
    ? { id, hostLabel, user, hostName, port, multiplexer, cwd, startedAt }
    : { id, hostLabel, user, hostName, port, multiplexer, cwd, startedAt, title };
}

function validateTombstone(value: unknown, now: number): Tombstone | undefined {
  if (!isRecord(value)) return undefined;
  const id = own(value, 'id');
  const killedAt = saneTime(own(value, 'killedAt'), now);
  if (!isValidSessionId(id) || killedAt === undefined) return undefined;
  return { id, killedAt };
}

export interface ValidateOptions {
  /** The slot the blob was stored under; a mismatch refuses the blob. */
  readonly expectedSlotId?: string;
  /** Epoch milliseconds; injectable for tests. */
  readonly now?: number;
}

/**
 * Strictly rebuilds a blob from untrusted JSON. Throws BlobError only when the envelope fields
 * (format, slotId, seq, deviceName, writtenAt, the two arrays) are unusable; a bad session or
 * tombstone is dropped and counted. Expired tombstones are dropped silently.
 */
export function validateBlob(value: unknown, options: ValidateOptions = {}): ValidatedBlob {
  const now = options.now ?? Date.now();
  if (!isRecord(value)) throw new BlobError('not-object', 'blob is not a JSON object');
  if (own(value, 'format') !== BLOB_FORMAT) throw new BlobError('format', `blob format ${String(own(value, 'format')).slice(0, 16)} is not supported; update Tether on this device`);
  const slotId = own(value, 'slotId');
  if (!isValidSessionId(slotId)) throw new BlobError('slot', 'blob has no valid slotId');
  if (options.expectedSlotId !== undefined && slotId !== options.expectedSlotId) throw new BlobError('slot', 'blob belongs to another slot');
  const seq = own(value, 'seq');
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new BlobError('seq', 'blob has no valid seq');
  const deviceName = cleanDisplayString(own(value, 'deviceName'), LIMITS.deviceName);
  if (deviceName === undefined) throw new BlobError('device-name', 'blob has no usable deviceName');
  const writtenAt = saneTime(own(value, 'writtenAt'), now);
  if (writtenAt === undefined) throw new BlobError('written-at', 'blob writtenAt is missing or not a sane time');
  const rawSessions = own(value, 'sessions');
  const rawTombstones = own(value, 'tombstones');
  if (!Array.isArray(rawSessions)) throw new BlobError('sessions', 'blob sessions is not a list');
  if (!Array.isArray(rawTombstones)) throw new BlobError('tombstones', 'blob tombstones is not a list');

  let dropped = 0;
  const sessions: SessionEntry[] = [];
  const seenSessions = new Set<string>();
  for (const raw of rawSessions) {
    const session = sessions.length < LIMITS.sessions ? validateSession(raw, now) : undefined;
    if (!session || seenSessions.has(session.id)) {
      dropped++;
      continue;
    }
    seenSessions.add(session.id);
    sessions.push(session);
  }
  const tombstones: Tombstone[] = [];
  const seenTombstones = new Set<string>();
  for (const raw of rawTombstones) {
    const tombstone = tombstones.length < LIMITS.tombstones ? validateTombstone(raw, now) : undefined;
    if (!tombstone || seenTombstones.has(tombstone.id)) {
      dropped++;
      continue;
    }
    if (tombstone.killedAt < now - TOMBSTONE_TTL_MS) continue;
    seenTombstones.add(tombstone.id);
    tombstones.push(tombstone);
  }
  return { blob: { format: BLOB_FORMAT, slotId, deviceName, seq, writtenAt, sessions, tombstones }, dropped };
}

/** Drops tombstones older than the TTL; used by the writer so its blob stays bounded. */
export function pruneTombstones(tombstones: readonly Tombstone[], now: number): Tombstone[] {
  return tombstones.filter((t) => t.killedAt >= now - TOMBSTONE_TTL_MS).slice(-LIMITS.tombstones);
}
