import { isIP } from 'node:net';

/**
 * Whether the connection to the sync server is encrypted in transit. Blobs are end-to-end encrypted
 * either way; plain http:// exposes the bearer token (anyone on the path could write junk to the
 * account or delete slots) and the traffic's timing and sizes. Pure: imports no vscode.
 */
export type TransportSecurity =
  | { readonly kind: 'tls' }
  /** Plain HTTP that never leaves this machine. */
  | { readonly kind: 'loopback' }
  /** Plain HTTP to another machine. */
  | { readonly kind: 'plain'; readonly host: string };

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host) || /^::ffff:7f[0-9a-f]{2}:/.test(host);
  return false;
}

/** Undefined for a URL that does not parse or is neither http nor https (the URL validator says why). */
export function transportSecurity(serverUrl: string): TransportSecurity | undefined {
  let url: URL;
  try {
    url = new URL(serverUrl.trim());
  } catch {
    return undefined;
  }
  if (url.protocol === 'https:') return { kind: 'tls' };
  if (url.protocol !== 'http:') return undefined;
  return isLoopbackHost(url.hostname) ? { kind: 'loopback' } : { kind: 'plain', host: url.host };
}

/** Set Up Sync asks before it saves a plain http:// URL to another machine. */
export function needsPlainHttpConfirmation(serverUrl: string): boolean {
  return transportSecurity(serverUrl)?.kind === 'plain';
}
