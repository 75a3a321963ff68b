/**
 * What a Tether session carries on its host, beside the session itself: which device made or last
 * attached it, its title, when it was created, and who detached it on purpose and when. tmux keeps
 * these as user options (`@tether_device`, …), screen in a small file beside its SCREENDIR.
 *
 * Values are data. They come from users and other devices, so on the way to the host they are
 * cleaned, length-limited and percent-encoded: a stored value holds only `[A-Za-z0-9._~%]`, so it
 * can never be a tmux format (`#` is `%23`), never split a listing line, and is a plain word even
 * before `shellQuote` (which every value still passes through). No vscode import.
 */
import { stripControls } from '../common/displayText';

export const META_LIMITS = { device: 64, title: 100 } as const;

/** The metadata of one session, as read back from its host. Every field is optional: sessions
 * made before this existed, or by hand, carry none. */
export interface SessionMetadata {
  /** The device that created or last attached the session. */
  device?: string;
  title?: string;
  /** ms since the epoch. */
  createdAt?: number;
  /** Set by a deliberate detach; cleared by the next attach. */
  detachedBy?: string;
  detachedAt?: number;
}

/** Cleans a display value (controls become spaces, runs of spaces collapse) and bounds it. */
export function cleanMetaText(value: unknown, maxLength: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  const cleaned = stripControls(value).replace(/\s+/g, ' ').trim();
  if (!cleaned) return undefined;
  // Cut by code points so a surrogate pair is never split.
  return [...cleaned].slice(0, maxLength).join('').trim() || undefined;
}

/** Percent-encodes a cleaned value: only `[A-Za-z0-9._~]` stay as they are. */
export function encodeMetaValue(value: unknown, maxLength: number): string | undefined {
  const cleaned = cleanMetaText(value, maxLength);
  if (cleaned === undefined) return undefined;
  let out = '';
  for (const byte of Buffer.from(cleaned, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9._~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Reads a stored value back; anything that is not our encoding (set by hand, cut off) is dropped. */
export function decodeMetaValue(raw: string | undefined, maxLength: number): string | undefined {
  if (!raw || raw.length > maxLength * 12 || !/^(?:[A-Za-z0-9._~]|%[0-9A-F]{2})+$/.test(raw)) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  return cleanMetaText(decoded, maxLength);
}

/** Seconds since the epoch, as the host's `date +%s` printed them, to ms; junk gives undefined. */
export function parseEpochSeconds(raw: string | undefined): number | undefined {
  if (!raw || !/^\d{1,12}$/.test(raw)) return undefined;
  const seconds = Number(raw);
  return seconds > 0 ? seconds * 1000 : undefined;
}

/** Builds metadata from the `key=value` pairs a host printed (keys as in the tmux options). */
export function metadataFromFields(fields: ReadonlyMap<string, string>): SessionMetadata {
  const meta: SessionMetadata = {
    device: decodeMetaValue(fields.get('device'), META_LIMITS.device),
    title: decodeMetaValue(fields.get('title'), META_LIMITS.title),
    createdAt: parseEpochSeconds(fields.get('created_at')),
    detachedBy: decodeMetaValue(fields.get('detached_by'), META_LIMITS.device),
    detachedAt: parseEpochSeconds(fields.get('detached_at')),
  };
  for (const key of Object.keys(meta) as (keyof SessionMetadata)[]) if (meta[key] === undefined) delete meta[key];
  return meta;
}

export function hasMetadata(meta: SessionMetadata | undefined): boolean {
  return !!meta && (meta.device !== undefined || meta.title !== undefined || meta.detachedBy !== undefined);
}

/** The names of the devices whose clients are attached, from `client =<encoded device>` lines
 * (`client =` for a client that is not ours, e.g. a hand-run `tmux attach`). */
export function parseClientDevices(lines: readonly string[]): { devices: string[]; unknown: number } {
  const devices: string[] = [];
  let unknown = 0;
  for (const line of lines) {
    const match = /^client =(\S*)$/.exec(line.trim());
    if (!match) continue;
    const device = decodeMetaValue(match[1], META_LIMITS.device);
    if (device === undefined) unknown += 1;
    else if (!devices.includes(device)) devices.push(device);
  }
  return { devices, unknown };
}
