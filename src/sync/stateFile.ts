import { createHash } from 'node:crypto';

/**
 * Framing for the sync client's state file (issue 13): a header line with the body's length and
 * SHA-256, then the JSON body. The file is saved without fsync on the hot path (write a temporary
 * file, rename it over), so after a power loss it may be empty, old, or torn; the frame makes sure a
 * torn file is never read as valid. A reader that finds a bad frame starts with an empty cache (the
 * server refills it; see docs/protocol.md for why the slot's own counters need no fsync either).
 *
 *   tether-sync-state 2 <body bytes> <sha256 hex>\n<body>
 *
 * Files of format 1 (plain JSON, always written with fsync) are still read.
 */

const MAGIC = 'tether-sync-state';
const FRAME_VERSION = 2;

export type StateFrameError = 'torn' | 'unknown-format';

export function frameState(body: string): string {
  const bytes = Buffer.from(body, 'utf8');
  return `${MAGIC} ${FRAME_VERSION} ${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}\n${body}`;
}

/** The body of a framed state file, or why it cannot be trusted. Legacy plain JSON passes through. */
export function unframeState(text: string): { ok: true; body: string } | { ok: false; reason: StateFrameError } {
  if (text.startsWith('{')) return { ok: true, body: text }; // format 1: fsync'd plain JSON
  if (!text.startsWith(`${MAGIC} `)) return { ok: false, reason: text.length === 0 || text.startsWith('\0') ? 'torn' : 'unknown-format' };
  const newline = text.indexOf('\n');
  if (newline < 0) return { ok: false, reason: 'torn' };
  const match = /^tether-sync-state (\d+) (\d+) ([0-9a-f]{64})$/.exec(text.slice(0, newline));
  if (!match) return { ok: false, reason: 'torn' };
  if (Number(match[1]) !== FRAME_VERSION) return { ok: false, reason: 'unknown-format' };
  const body = Buffer.from(text.slice(newline + 1), 'utf8');
  if (body.length !== Number(match[2])) return { ok: false, reason: 'torn' };
  if (createHash('sha256').update(body).digest('hex') !== match[3]) return { ok: false, reason: 'torn' };
  return { ok: true, body: body.toString('utf8') };
}
