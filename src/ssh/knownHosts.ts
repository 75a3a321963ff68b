import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Read-only parser and matcher for OpenSSH known_hosts files (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
 * Matching follows OpenSSH's hostfile.c: host names are compared lower-cased, non-22 ports use the
 * "[host]:port" form, and any non-matching key for the host counts as a change.
 */
export interface KnownHostEntry {
  marker?: 'revoked' | 'cert-authority';
  patterns: string;
  keyType: string;
  keyBase64: string;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/[ \t]+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0].startsWith('@')) {
      const name = fields.shift();
      if (name === '@revoked') marker = 'revoked';
      else if (name === '@cert-authority') marker = 'cert-authority';
      else continue; // OpenSSH skips lines with unknown markers
    }
    if (fields.length < 3) continue;
    const [patterns, keyType, keyBase64] = fields;
    if (!BASE64.test(keyBase64)) continue;
    // A key whose blob does not name the type on the line is corrupt (or an RSA1 line); skip it.
    if (keyTypeOfBlob(Buffer.from(keyBase64, 'base64')) !== keyType) continue;
    entries.push(marker ? { marker, patterns, keyType, keyBase64 } : { patterns, keyType, keyBase64 });
  }
  return entries;
}

/** The name known_hosts uses for a host: "host" on port 22, "[host]:port" otherwise. */
export function hostPatternFor(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** "SHA256:<unpadded base64>", the form `ssh-keygen -l` and OpenSSH's prompts print. */
export function fingerprintSha256(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named by the first length-prefixed string of an SSH wire-format key blob. */
export function keyTypeOfBlob(keyBlob: Buffer): string | undefined {
  if (keyBlob.length < 4) return undefined;
  const length = keyBlob.readUInt32BE(0);
  if (length === 0 || length > 64 || 4 + length > keyBlob.length) return undefined;
  const type = keyBlob.subarray(4, 4 + length).toString('latin1');
  return /^[\x21-\x7e]+$/.test(type) ? type : undefined;
}

export type KnownHostStatus = 'match' | 'mismatch' | 'revoked' | 'unknown';

export function checkHostKey(
  entries: KnownHostEntry[],
  host: string,
  port: number,
  keyBlob: Buffer,
): { status: KnownHostStatus; knownFingerprints: string[] } {
  const keyType = keyTypeOfBlob(keyBlob);
  const keyBase64 = keyBlob.toString('base64');
  const name = hostPatternFor(host.toLowerCase(), port);
  // A revoked key must never be accepted, so unlike OpenSSH we do not require its line to name this host.
  if (entries.some((e) => e.marker === 'revoked' && e.keyType === keyType && e.keyBase64 === keyBase64)) {
    return { status: 'revoked', knownFingerprints: [] };
  }
  const knownFingerprints: string[] = [];
  let matched = false;
  for (const entry of entries) {
    // cert-authority lines vouch for host certificates, never for plain keys.
    if (entry.marker !== undefined || !hostMatches(entry.patterns, name)) continue;
    if (entry.keyType === keyType && entry.keyBase64 === keyBase64) {
      matched = true;
      continue;
    }
    const fingerprint = fingerprintSha256(Buffer.from(entry.keyBase64, 'base64'));
    if (!knownFingerprints.includes(fingerprint)) knownFingerprints.push(fingerprint);
  }
  if (matched) return { status: 'match', knownFingerprints };
  // Like OpenSSH: a known key of any type that differs, with none matching, is a changed key.
  return { status: knownFingerprints.length > 0 ? 'mismatch' : 'unknown', knownFingerprints };
}

/**
 * Key types known for a host, in file order. OpenSSH puts these first in its host-key algorithm
 * offer so that a server with several keys presents the one we know; callers can do the same with
 * ssh2's `algorithms.serverHostKey` to avoid a false "changed".
 */
export function knownKeyTypesFor(entries: KnownHostEntry[], host: string, port: number): string[] {
  const name = hostPatternFor(host.toLowerCase(), port);
  const types: string[] = [];
  for (const entry of entries) {
    if (entry.marker !== undefined || !hostMatches(entry.patterns, name)) continue;
    if (!types.includes(entry.keyType)) types.push(entry.keyType);
  }
  return types;
}

/** Whether a known_hosts host field (hashed, or a comma list of patterns) names `name`. */
export function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|')) return hashedHostMatches(patterns, name);
  return matchPatternList(name.toLowerCase(), patterns.toLowerCase());
}

function hashedHostMatches(field: string, name: string): boolean {
  const parts = field.split('|');
  // "|1|salt|hash": HMAC-SHA1 of the host name, keyed with the salt.
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== '1') return false;
  if (!BASE64.test(parts[2]) || !BASE64.test(parts[3])) return false;
  const salt = Buffer.from(parts[2], 'base64');
  const expected = Buffer.from(parts[3], 'base64');
  const actual = createHmac('sha1', salt).update(name.toLowerCase()).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** OpenSSH match_pattern_list: any negated match rejects; otherwise any positive match accepts. */
export function matchPatternList(name: string, list: string): boolean {
  let matched = false;
  for (const pattern of list.split(',')) {
    if (pattern === '') continue;
    const negated = pattern.startsWith('!');
    if (wildcardMatch(name, negated ? pattern.slice(1) : pattern)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Shell-style match with `*` (any run) and `?` (exactly one character), as OpenSSH's match_pattern. */
export function wildcardMatch(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
    } else if (starP !== -1) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
