import { HttpError } from './errors';
import { SLOT_ID_PATTERN } from './router';

/** What a write asks of the slot's current version (docs/protocol.md). */
export type Precondition = { kind: 'create' } | { kind: 'match'; version: number };

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Parses `"<version>"` (an entity tag holding a version). Weak tags never match a write. */
export function parseVersionTag(value: string): number | undefined {
  const match = /^\s*"(\d{1,15})"\s*$/.exec(value);
  if (!match) return undefined;
  const version = Number(match[1]);
  return version >= 1 ? version : undefined;
}

export function versionTag(version: number): string {
  return `"${version}"`;
}

/** A PUT's precondition: If-Match replaces a known version, If-None-Match: * creates. Exactly one. */
export function parsePutPrecondition(ifMatch: string | undefined, ifNoneMatch: string | undefined): Precondition {
  if (ifMatch !== undefined && ifNoneMatch !== undefined) {
    throw new HttpError('bad_request', 'send either If-Match or If-None-Match, not both');
  }
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== '*') throw new HttpError('bad_request', 'If-None-Match on PUT must be *');
    return { kind: 'create' };
  }
  if (ifMatch !== undefined) {
    const version = parseVersionTag(ifMatch);
    if (version === undefined) throw new HttpError('bad_request', 'If-Match must be a quoted version, e.g. "3"');
    return { kind: 'match', version };
  }
  throw new HttpError('precondition_required', 'PUT needs If-Match: "<version>" to replace or If-None-Match: * to create');
}

/** DELETE takes an optional If-Match. */
export function parseDeletePrecondition(ifMatch: string | undefined): number | undefined {
  if (ifMatch === undefined) return undefined;
  const version = parseVersionTag(ifMatch);
  if (version === undefined) throw new HttpError('bad_request', 'If-Match must be a quoted version, e.g. "3"');
  return version;
}

/** The largest PUT body that could carry a blob of `maxBlobBytes`: base64 growth plus JSON framing. */
export function maxBodyBytes(maxBlobBytes: number): number {
  return Math.ceil(maxBlobBytes / 3) * 4 + 1024;
}

/** Validates a PUT body `{"data":"<base64>"}` and returns the base64 text. */
export function parsePutBody(body: Buffer, maxBlobBytes: number): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError('bad_request', 'body must be JSON {"data":"<base64>"}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError('bad_request', 'body must be a JSON object {"data":"<base64>"}');
  }
  const data = (parsed as Record<string, unknown>).data;
  if (typeof data !== 'string' || data.length === 0) throw new HttpError('bad_request', 'body.data must be a non-empty base64 string');
  if (!STRICT_BASE64.test(data)) throw new HttpError('bad_request', 'body.data must be standard padded base64');
  const decoded = (data.length / 4) * 3 - (data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0);
  if (decoded > maxBlobBytes) {
    throw new HttpError('blob_too_large', `blob is ${decoded} bytes; the limit is ${maxBlobBytes}`, {
      fields: { limit: maxBlobBytes },
    });
  }
  return data;
}

/** The `slot` query parameter of /v1/events, if any. */
/** Longest lease a stream may ask for; longer would keep a vanished device "online" for too long. */
export const MAX_STREAM_LEASE_SECONDS = 3600;

/**
 * `lease=<seconds>` on the events URL: the client promises to renew its slot's presence
 * (`POST /v1/presence/<slot>`) within that time, and the server ends the stream when it does not
 * (a device whose network vanished sends no FIN). Absent: no lease, as for older clients.
 */
export function parseStreamLease(value: string | null, slotId: string | undefined): number | undefined {
  if (value === null || value === '') return undefined;
  if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > MAX_STREAM_LEASE_SECONDS) {
    throw new HttpError('bad_request', `lease must be a whole number of seconds from 1 to ${MAX_STREAM_LEASE_SECONDS}`);
  }
  if (slotId === undefined) throw new HttpError('bad_request', 'lease needs slot: only a slot renews its presence');
  return Number(value) * 1000;
}

export function parseStreamSlot(value: string | null): string | undefined {
  if (value === null || value === '') return undefined;
  if (!SLOT_ID_PATTERN.test(value)) throw new HttpError('bad_request', 'slot must match ^[a-z2-7]{26}$');
  return value;
}
