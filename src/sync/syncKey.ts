import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { base32Encode } from '../common/sessionId';
import { ReasonError } from '../common/reasonError';

/** The account's sync key is 32 random bytes; everything else is derived from it (docs/architecture.md, Sync key, envelope and blob). */
export const SYNC_KEY_BYTES = 32;

const PREFIX = 'tether1';
const CHECKSUM_BYTES = 4;
const GROUP = 6;
const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const HKDF_SALT = Buffer.from('tether-sync-v1', 'utf8');

export type SyncKeyErrorReason = 'prefix' | 'characters' | 'length' | 'checksum';

export class SyncKeyError extends ReasonError<SyncKeyErrorReason> {
  override readonly name = 'SyncKeyError';
}

export function generateSyncKey(): Uint8Array {
  return new Uint8Array(randomBytes(SYNC_KEY_BYTES));
}

function checksum(key: Uint8Array): Uint8Array {
  // Domain-separated so the checksum can never be mistaken for key material.
  return new Uint8Array(createHash('sha256').update('tether-sync-key-checksum').update(key).digest().subarray(0, CHECKSUM_BYTES));
}

/**
 * The user-facing form: `tether1-` then base32 of key‖checksum in dash-separated groups of six.
 * The 4-byte checksum turns a typo into a clear error instead of a silently different account.
 */
export function formatSyncKey(key: Uint8Array): string {
  if (key.length !== SYNC_KEY_BYTES) throw new SyncKeyError('length', `a sync key is ${SYNC_KEY_BYTES} bytes, got ${key.length}`);
  const body = base32Encode(Buffer.concat([key, checksum(key)]));
  const groups: string[] = [];
  for (let i = 0; i < body.length; i += GROUP) groups.push(body.slice(i, i + GROUP));
  return `${PREFIX}-${groups.join('-')}`;
}

function base32Decode(text: string): Uint8Array | undefined {
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of text) {
    const value = BASE32_ALPHABET.indexOf(ch);
    if (value < 0) return undefined;
    buffer = ((buffer << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  // Leftover bits must be zero padding, otherwise two strings would decode to one key.
  if ((buffer & ((1 << bits) - 1)) !== 0) return undefined;
  return new Uint8Array(out);
}

/** Parses a pasted key. Spaces, dashes, line breaks and case are ignored. */
export function parseSyncKey(text: string): Uint8Array {
  const compact = String(text).toLowerCase().replace(/[\s\-_]+/g, '');
  if (!compact.startsWith(PREFIX)) {
    throw new SyncKeyError('prefix', 'this is not a Tether sync key: it should start with "tether1-". Copy it again from Tether: Show Sync Key on the other device.');
  }
  const body = compact.slice(PREFIX.length);
  const expectedLength = Math.ceil(((SYNC_KEY_BYTES + CHECKSUM_BYTES) * 8) / 5);
  const bad = [...body].find((ch) => !BASE32_ALPHABET.includes(ch));
  if (bad !== undefined) {
    throw new SyncKeyError('characters', `the sync key contains ${JSON.stringify(bad.slice(0, 4))}, which cannot appear in a sync key (only a-z and 2-7). Check for a typo such as 0 for o or 1 for l.`);
  }
  if (body.length !== expectedLength) {
    throw new SyncKeyError('length', `the sync key has ${body.length} characters after "tether1-", expected ${expectedLength}; part of it may be missing.`);
  }
  const bytes = base32Decode(body);
  if (!bytes || bytes.length !== SYNC_KEY_BYTES + CHECKSUM_BYTES) {
    throw new SyncKeyError('checksum', 'the sync key does not check out: it has a typo. Copy it again from the other device.');
  }
  const key = bytes.subarray(0, SYNC_KEY_BYTES);
  const expected = checksum(key);
  const given = bytes.subarray(SYNC_KEY_BYTES);
  if (!expected.every((byte, i) => byte === given[i])) {
    throw new SyncKeyError('checksum', 'the sync key does not check out: it has a typo. Copy it again from the other device.');
  }
  return new Uint8Array(key);
}

export interface DerivedSyncKeys {
  /** The tweetnacl secretbox key for blob envelopes. */
  readonly encryptionKey: Uint8Array;
  /** The server bearer token; the server stores only its hash and cannot derive the encryption key from it. */
  readonly token: string;
}

function derive(key: Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', key, HKDF_SALT, Buffer.from(info, 'utf8'), 32));
}

export function deriveSyncKeys(key: Uint8Array): DerivedSyncKeys {
  if (key.length !== SYNC_KEY_BYTES) throw new SyncKeyError('length', `a sync key is ${SYNC_KEY_BYTES} bytes, got ${key.length}`);
  return {
    encryptionKey: derive(key, 'tether blob envelope v1'),
    token: Buffer.from(derive(key, 'tether server token v1')).toString('base64url'),
  };
}
