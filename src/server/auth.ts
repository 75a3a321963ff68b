import { createHash } from 'node:crypto';
import { HttpError } from './errors';

/**
 * Tokens are opaque to the server, but we only accept a sane alphabet and length so that nothing
 * odd reaches logs or hashing, and so an empty or truncated header is a clear 401.
 */
const TOKEN_PATTERN = /^[A-Za-z0-9._~+/=-]{16,512}$/;

/** The account key: hex sha256 of the bearer token. The token itself is never stored or logged. */
export const ACCOUNT_PATTERN = /^[0-9a-f]{64}$/;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Extracts the token from an Authorization header, or undefined when it is absent or malformed. */
export function parseBearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
  if (!match || !TOKEN_PATTERN.test(match[1])) return undefined;
  return match[1];
}

/** The account hash for a request, or a 401. */
export function authenticate(header: string | undefined): string {
  const token = parseBearer(header);
  if (token === undefined) {
    throw new HttpError('unauthorized', 'missing or malformed Authorization: Bearer <token> header', {
      headers: { 'WWW-Authenticate': 'Bearer realm="tether"' },
    });
  }
  return hashToken(token);
}

/** A short, non-reversible label for an account in logs (a prefix of the hash, never the token). */
export function accountLabel(account: string): string {
  return account.slice(0, 12);
}
