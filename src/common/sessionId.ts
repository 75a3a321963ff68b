import { randomBytes } from 'node:crypto';
import { quoteForMessage } from './displayText';

/** Session and slot IDs: 16 random bytes as 26 lowercase RFC 4648 base32 characters (docs/architecture.md, Sessions). */
export const SESSION_ID_PATTERN = /^[a-z2-7]{26}$/;

const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

export function newSessionId(): string {
  return base32Encode(randomBytes(16));
}

export function isValidSessionId(value: unknown): value is string {
  return typeof value === 'string' && SESSION_ID_PATTERN.test(value);
}

export class InvalidSessionIdError extends Error {
  constructor(readonly value: unknown) {
    super(`invalid Tether session ID ${quoteForMessage(value, 64)}: expected 26 characters of a-z and 2-7`);
    this.name = 'InvalidSessionIdError';
  }
  static is(error: unknown): error is InvalidSessionIdError {
    return error instanceof InvalidSessionIdError;
  }
}

/** Throws unless `value` is a well-formed ID; call this before an ID goes near a command line. */
export function assertSessionId(value: unknown): string {
  if (!isValidSessionId(value)) throw new InvalidSessionIdError(value);
  return value;
}

const SESSION_PREFIX = 'tether_';

/** The multiplexer session name for an ID: `tether_<id>`. */
export function sessionName(id: string): string {
  return `${SESSION_PREFIX}${assertSessionId(id)}`;
}

/** A short, human-friendly form of an ID for terminal names. */
export function shortId(id: string): string {
  return id.slice(0, 6);
}

/** The session name shortened for messages: `tether_<first 6 of the id>`. */
export function shortSessionName(id: string): string {
  return `${SESSION_PREFIX}${shortId(id)}`;
}
